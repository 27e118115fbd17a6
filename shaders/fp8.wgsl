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
// every branch. The magnitude's seven bits shifted into place are an f32 with exponent
// exp + 120 (bias 127 − 7) once 120 << 23 is added; the sign is or-ed in as a bit.
fn fp8(v: u32) -> f32 {
    let mag = v & 0x7fu;
    let normal = bitcast<f32>((mag << 20u) + 0x3c000000u);
    let subnormal = f32(mag) * 0.001953125; // exp 0: man / 8 * 2^-6
    let value = bitcast<u32>(select(normal, subnormal, mag < 8u)) | ((v & 0x80u) << 24u);
    return select(bitcast<f32>(value), bitcast<f32>(0x7fc00000u), mag == 0x7fu);
}
#endif

// The four fp8 of a word, low byte first.
fn fp8x4(word: u32) -> vec4<f32> {
    return vec4<f32>(fp8(word & 0xffu), fp8((word >> 8u) & 0xffu), fp8((word >> 16u) & 0xffu), fp8(word >> 24u));
}
