// 32-byte loads (W_U64, where shader-int64 is usable): included by gemv.wgsl and gemm.wgsl,
// never compiled alone. On CPU adapters every storage load is a loop over the SIMD lanes with
// a bounds check per component (Mesa's llvmpipe: about 36 instructions per load per lane,
// whatever its width), so a vec4<u64> load moves twice the bytes of a vec4<u32> one for about
// the same cost. Loads are taken apart into 16-byte vectors of u32 words here.

// The low (or, with `high`, the high) 16 bytes of a 32-byte load, as u32 words.
fn half_of(q: vec4<u64>, high: bool) -> vec4<u32> {
    let lo = vec4<u32>(u32(q.x), u32(q.x >> 32u), u32(q.y), u32(q.y >> 32u));
    let hi = vec4<u32>(u32(q.z), u32(q.z >> 32u), u32(q.w), u32(q.w >> 32u));
    return select(lo, hi, high);
}
