// Quantize an activation row to 8 bits per 32-element block, for the int-dot GEMV kernels
// (packed int8 dot products, dot4I8Packed): xq holds the int8 values packed four to a word
// (element k in byte k % 4 of word k / 4), xs per block the scale d = max|x| / 127 and the
// sum of the block's int8 values (q4_0 kernels subtract 8 × that sum for their offset).
// Rounding is round-half-to-even (WGSL's round), as the CPU reference in ops/quantize.rs.
// One invocation per block; `blocks` = cols / 32 (cols is a whole number of blocks).

struct Params {
    blocks: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<vec2<f32>>;

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = (wg.y * p.groups_x + wg.x) * WG_SIZE + lid;
    if (b >= p.blocks) {
        return;
    }
    var amax = 0.0;
    for (var i = 0u; i < 32u; i = i + 1u) {
        amax = max(amax, abs(x[b * 32u + i]));
    }
    let d = amax / 127.0;
    let inv = select(0.0, 1.0 / d, d > 0.0);
    var sum = 0;
    for (var w = 0u; w < 8u; w = w + 1u) {
        var word = 0u;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let q = i32(clamp(round(x[b * 32u + 4u * w + j] * inv), -127.0, 127.0));
            sum = sum + q;
            word = word | ((bitcast<u32>(q) & 0xffu) << (8u * j));
        }
        xq[b * 8u + w] = word;
    }
    xs[b] = vec2<f32>(d, f32(sum));
}
