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
// The activations as 16-byte vectors (a block is eight of them): a kernel's cost on CPU
// adapters is about its count of per-lane loads, and 32 scalar loads per block, twice, cost
// more than the quantization itself.
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<vec2<f32>>;

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = (wg.y * p.groups_x + wg.x) * WG_SIZE + lid;
    if (b >= p.blocks) {
        return;
    }
    // The block's eight vectors, loaded once for both passes.
    var v: array<vec4<f32>, 8>;
    var amax4 = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i = i + 1u) {
        v[i] = x[b * 8u + i];
        amax4 = max(amax4, abs(v[i]));
    }
    let amax = max(max(amax4.x, amax4.y), max(amax4.z, amax4.w));
    let d = amax / 127.0;
    let inv = select(0.0, 1.0 / d, d > 0.0);
    var sum = vec4<i32>(0);
    for (var w = 0u; w < 8u; w = w + 1u) {
        let q = vec4<i32>(clamp(round(v[w] * inv), vec4<f32>(-127.0), vec4<f32>(127.0)));
        sum = sum + q;
        let bytes = bitcast<vec4<u32>>(q) & vec4<u32>(0xffu);
        xq[b * 8u + w] = bytes.x | (bytes.y << 8u) | (bytes.z << 16u) | (bytes.w << 24u);
    }
    xs[b] = vec2<f32>(d, f32(sum.x + sum.y + sum.z + sum.w));
}
