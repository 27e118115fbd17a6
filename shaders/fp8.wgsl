// fp8 bytes as f32, bit-exact with the CPU reference: one definition for the element
// decoders (blocks.wgsl) and GEMV's word-wise path (gemv.wgsl, four per word). Include-only.

#ifdef W_F8_E5M2
// E5M2 is the high byte of an f16 (only .x of unpack2x16float is read: see the self-test).
fn fp8(v: u32) -> f32 {
    return unpack2x16float(v << 8u).x;
}
#endif

#ifdef W_F8_E4M3
// E4M3 (no infinities; S.1111.111 is NaN): exponent bias 7, subnormals m/8 · 2^-6.
// Branch-free (selects, not ifs): SIMD lanes decoding different bytes would otherwise run
// every branch.
fn fp8(v: u32) -> f32 {
    let sign = select(1.0, -1.0, (v & 0x80u) != 0u);
    let exp = (v >> 3u) & 0xfu;
    let man = v & 7u;
    let normal = bitcast<f32>(((exp + 120u) << 23u) | (man << 20u));
    let subnormal = f32(man) * 0.001953125; // man / 8 * 2^-6
    let value = sign * select(normal, subnormal, exp == 0u);
    return select(value, bitcast<f32>(0x7fc00000u), exp == 15u && man == 7u);
}
#endif

// The four fp8 of a word, low byte first.
fn fp8x4(word: u32) -> vec4<f32> {
    return vec4<f32>(fp8(word & 0xffu), fp8((word >> 8u) & 0xffu), fp8((word >> 16u) & 0xffu), fp8(word >> 24u));
}
