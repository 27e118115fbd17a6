// Dequantize: out[e] = element e of a tensor of any storage dtype with a decoder, as f32.
// Used by `wgllm dump` and as the tests' GPU view of every block layout. The decoders live in
// blocks.wgsl (one W_* define selects the dtype); the grid is 2D past 65,535 workgroups.

#include "blocks.wgsl"

struct Params {
    elements: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = (wg.y * p.groups_x + wg.x) * WG_SIZE + lid;
    if (e >= p.elements) {
        return;
    }
    out[e] = dequant(e);
}
