// Int-dot GEMV decoders (included by gemv.wgsl under INT_DOT; include-only): weight blocks
// against activations quantized to int8 by quantize_q8.wgsl, in packed int8 dot products.
// Reads x, xs, w and lane8 from gemv.wgsl, and word_at / f16_at / scale_min_words from
// blocks.wgsl.

// x arrives quantized by quantize_q8.wgsl — int8 values packed four to a word (binding 2) and
// per 32-element block (scale, sum of values) (binding 5) — and each weight block meets its
// activation block in packed int8 dot products: 8 dot4I8Packed per 32 weights instead of 32
// decodes and multiply-adds. Block sums are exact in i32; f32 products apply the scales.
@group(0) @binding(5) var<storage, read> xs: array<vec2<f32>>;

// k-quant sub-block pair c (elements 64c..64c+64 of the weight block that starts at activation
// block xb0): `lo` / `hi` are its low- and high-nibble quant words at word j, as int8 values.
// Returns the two sub-blocks' (Σ q·xq) scaled by their activation scales, and the same for
// Σ xq, so the caller applies d·sc and dmin·m once per sub-block.
fn kquant_pair(lo: u32, hi: u32, xb0: u32, c: u32, j: u32) -> vec4<f32> {
    let xa = x[(xb0 + 2u * c) * 8u + j];
    let xh = x[(xb0 + 2u * c + 1u) * 8u + j];
    return vec4<f32>(
        f32(dot4I8Packed(lo, xa)), f32(dot4I8Packed(hi, xh)),
        f32(sum4(xa)), f32(sum4(xh)),
    );
}

// The eight x words of activation block b, one per lane (REDUCE_SERIAL_SHUFFLE; nothing
// otherwise): `x_word` hands word j of them to every lane.
fn x_window(b: u32) -> u32 {
#ifdef REDUCE_SERIAL_SHUFFLE
    return x[b * 8u + lane8];
#else
    return 0u;
#endif
}

// Word j of activation block b, from its window or from memory.
fn x_word(window: u32, b: u32, j: u32) -> u32 {
#ifdef REDUCE_SERIAL_SHUFFLE
    return subgroupShuffle(window, j);
#else
    return x[b * 8u + j];
#endif
}

// The (scale, Σ xq) of activation blocks b0..b0+8, one per lane (REDUCE_SERIAL_SHUFFLE;
// nothing otherwise): `xs_of` hands block b0 + i's to every lane.
fn xs_window(b0: u32) -> vec2<f32> {
#ifdef REDUCE_SERIAL_SHUFFLE
    return xs[b0 + lane8];
#else
    return vec2<f32>(0.0);
#endif
}

fn xs_of(window: vec2<f32>, b0: u32, i: u32) -> vec2<f32> {
#ifdef REDUCE_SERIAL_SHUFFLE
    return subgroupShuffle(window, i);
#else
    return xs[b0 + i];
#endif
}

#ifdef PAIR_MUL
// PAIR_MUL (the 16-byte shuffled reader on CPU adapters, for the dtypes where it measured
// faster than dot4I8Packed, which llvmpipe emulates byte by byte): two int8 products per
// 32-bit multiply. A weight word w0..w3 splits into 16-bit fields (w0, w2) and (w1, w3), an
// activation word x0..x3 into (x2, x0) and (x3, x1), each field sign-extended (a negative low
// field borrows from the high one, so the value is x2 + 65536·x0). Then
//   (w0 + 65536·w2)(x2 + 65536·x0) = w0·x2 + 65536·(w0·x0 + w2·x2) + 2^32·w2·x0,
// and modulo 2^32 the middle field holds the sum of the two products. Summed in u32 over four
// words the middle stays exact while |Σ middle| and |Σ low| are under 2^15: with weights
// |w| ≤ 32 and activations |x| ≤ 127 (quantize_q8.wgsl clamps them), |Σ middle| ≤
// 4·2·32·127 = 32512 and |Σ low| ≤ 4·32·127 = 16256. Rounding off the low half of the i32
// total leaves Σ middle. Weights are 5-bit unsigned (q4_0/q5_0/q5_1/q5_k quants, their
// offsets applied from Σx afterwards) or, with PAIR_MUL_SIGNED, q6_k's int8 in [-32, 31].
// q8_0's quants span the whole int8 range (PAIR_MUL_WIDE): each word's two pair products are
// rounded on their own (|middle| ≤ 2·128·127 = 32512, |low| ≤ 128·127 = 16256).
// The activations are split once per window lane before the shuffles hand them round.

// Four activation words as (even, odd) sign-extended pairs.
struct XWords {
    e: vec4<u32>,
    o: vec4<u32>,
}

// Fields (lo, hi) = (byte 0, byte 2) of each word of b, sign-extended.
fn signed_fields(b: vec4<u32>) -> vec4<u32> {
    let bias = vec4<u32>(0x00800080u);
    return ((b & vec4<u32>(0x00ff00ffu)) ^ bias) - bias;
}

fn x_words_of(b: vec4<u32>) -> XWords {
    // Rotated by 16 bits, bytes 0 and 2 are x2 and x0; rotated by 24, x3 and x1.
    return XWords(
        signed_fields((b >> vec4<u32>(16u)) | (b << vec4<u32>(16u))),
        signed_fields((b >> vec4<u32>(24u)) | (b << vec4<u32>(8u))),
    );
}

// Σ middle field of a u32 sum of pair products.
fn middle(s: u32) -> i32 {
    return (bitcast<i32>(s) + 0x8000) >> 16u;
}
#else
// Four activation words as they are: four int8 each.
alias XWords = vec4<u32>;

fn x_words_of(b: vec4<u32>) -> XWords {
    return b;
}
#endif

// The eight x words of an activation block: words 0..3 (its elements 0..15) and 4..7.
struct XBlock {
    lo: XWords,
    hi: XWords,
}

// The words of a k-quant block's (or a group of eight blocks') eight activation blocks in
// shared windows (INT_DOT_VEC4 with REDUCE_SERIAL_SHUFFLE): blocks 0..3 and 4..7, a 16-byte
// vector per lane; nothing otherwise. `x_block8` hands block i's words to every lane.
struct XWindows {
    lo: XWords,
    hi: XWords,
}

#ifdef INT_DOT_VEC4
// The weights again, 16 bytes per element (the same buffer, bound twice). On CPU adapters a
// kernel costs about its count of per-lane loads, whatever their width: eight q8_0 blocks
// are 17 of these loads against 68 word loads. Used for groups of eight 32-element blocks
// in rows of whole groups (which then start on 16-byte boundaries: KernelKey::for_cols),
// every q4_k (144-byte) and q5_k (176-byte) block, and every q6_k block, realigned.
#ifdef W_U64
// W_U64 (the shuffled reader, where shader-int64 is usable): both bound as 32-byte vectors.
// llvmpipe's loads cost about the same whatever their width, so the group and block readers,
// which take their vectors two per load (gemv.wgsl's group_loadsN), and the activation windows
// (a whole block per lane) halve their loads; other reads take half a load (w4_at, x4_at).
@group(0) @binding(6) var<storage, read> w4: array<vec4<u64>>;
@group(0) @binding(7) var<storage, read> x4: array<vec4<u64>>;

// 16-byte vector v of the quantized activations.
fn x4_at(v: u32) -> vec4<u32> {
    return half_of(x4[v / 2u], (v & 1u) == 1u);
}
#else
@group(0) @binding(6) var<storage, read> w4: array<vec4<u32>>;
// The quantized activations again, 16 bytes (half a block) per element.
@group(0) @binding(7) var<storage, read> x4: array<vec4<u32>>;

fn x4_at(v: u32) -> vec4<u32> {
    return x4[v];
}
#endif

// Activation blocks b0..b0 + 4 as one vector per lane (with REDUCE_SERIAL_SHUFFLE).
fn x_window4(b0: u32) -> vec4<u32> {
#ifdef REDUCE_SERIAL_SHUFFLE
    return x4_at(2u * b0 + lane8);
#else
    return vec4<u32>(0u);
#endif
}
#endif

fn x_windows8(b0: u32) -> XWindows {
#ifdef W_U64
    // Lane l holds block b0 + l whole: its words 0..3 (lo) and 4..7 (hi).
    let q = x4[b0 + lane8];
    return XWindows(x_words_of(half_of(q, false)), x_words_of(half_of(q, true)));
#else
#ifdef INT_DOT_VEC4
    return XWindows(x_words_of(x_window4(b0)), x_words_of(x_window4(b0 + 4u)));
#else
    return XWindows(x_words_of(vec4<u32>(0u)), x_words_of(vec4<u32>(0u)));
#endif
#endif
}

#ifdef REDUCE_SERIAL_SHUFFLE
// Window lane l's words (of windows.lo, or of windows.hi if `hi`) handed to every lane.
fn shuffled_words(windows: XWindows, hi: bool, l: u32) -> XWords {
#ifdef PAIR_MUL
    return XWords(
        subgroupShuffle(select(windows.lo.e, windows.hi.e, hi), l),
        subgroupShuffle(select(windows.lo.o, windows.hi.o, hi), l),
    );
#else
    return subgroupShuffle(select(windows.lo, windows.hi, hi), l);
#endif
}
#endif

// Activation block b0 + i (i < 8): from the windows, or two 16-byte loads (INT_DOT_VEC4), or
// one word window and eight shuffles / eight word loads.
fn x_block8(windows: XWindows, b0: u32, i: u32) -> XBlock {
#ifdef INT_DOT_VEC4
#ifdef W_U64
    return XBlock(shuffled_words(windows, false, i), shuffled_words(windows, true, i));
#else
#ifdef REDUCE_SERIAL_SHUFFLE
    return XBlock(shuffled_words(windows, i >= 4u, 2u * (i % 4u)), shuffled_words(windows, i >= 4u, 2u * (i % 4u) + 1u));
#else
    return XBlock(x_words_of(x4_at(2u * (b0 + i))), x_words_of(x4_at(2u * (b0 + i) + 1u)));
#endif
#endif
#else
    return x_block(b0 + i);
#endif
}

// Activation block b, read as words (shared through one window when REDUCE_SERIAL_SHUFFLE).
fn x_block(b: u32) -> XBlock {
    let window = x_window(b);
    return XBlock(x_words_of(x_words(window, b, 0u)), x_words_of(x_words(window, b, 4u)));
}

// Words first..first + 4 of activation block b (window from x_window).
fn x_words(window: u32, b: u32, first: u32) -> vec4<u32> {
    return vec4<u32>(
        x_word(window, b, first), x_word(window, b, first + 1u),
        x_word(window, b, first + 2u), x_word(window, b, first + 3u),
    );
}

// Vector v (bytes 16v..16v + 16) of W: one 16-byte load with INT_DOT_VEC4, four word loads
// otherwise.
fn w_vector(v: u32) -> vec4<u32> {
#ifdef INT_DOT_VEC4
    return w4_at(v);
#else
    return w_words(4u * v);
#endif
}

// Σ of four packed int8 dot products: weights q against activations xq.
fn dot4x4(q: vec4<u32>, xq: XWords) -> i32 {
#ifdef PAIR_MUL
#ifdef PAIR_MUL_WIDE
    // q8_0's int8 quants: each word's pair products on their own.
    let pe = bitcast<vec4<i32>>(signed_fields(q) * xq.e);
    let po = bitcast<vec4<i32>>(signed_fields(q >> vec4<u32>(8u)) * xq.o);
    let r = ((pe + vec4<i32>(0x8000)) >> vec4<u32>(16u)) + ((po + vec4<i32>(0x8000)) >> vec4<u32>(16u));
    return r.x + r.y + r.z + r.w;
#else
#ifdef PAIR_MUL_SIGNED
    let pe = signed_fields(q) * xq.e;
    let po = signed_fields(q >> vec4<u32>(8u)) * xq.o;
#else
    let m = vec4<u32>(0x00ff00ffu);
    let pe = (q & m) * xq.e;
    let po = ((q >> vec4<u32>(8u)) & m) * xq.o;
#endif
    return middle(pe.x + pe.y + pe.z + pe.w) + middle(po.x + po.y + po.z + po.w);
#endif
#else
    return dot4I8Packed(q.x, xq.x) + dot4I8Packed(q.y, xq.y) + dot4I8Packed(q.z, xq.z)
        + dot4I8Packed(q.w, xq.w);
#endif
}

// Σ of the four int8 in a packed word.
fn sum4(v: u32) -> i32 {
    return dot4I8Packed(0x01010101u, v);
}

#ifdef UNITWISE
// Unit u (one quant word) of weight block `blk` against activation block `xb` (for k-quants,
// `xb` is the weight block's index in its row, its first activation block xb * 8): with a
// workgroup or subgroup per row, neighbouring invocations take neighbouring words.
fn int_dot_unit(blk: u32, u: u32, xb: u32) -> f32 {
#ifdef W_Q8_0
    let base = blk * 34u;
    return f16_at(base) * xs[xb].x * f32(dot4I8Packed(word_at(base + 2u + 4u * u), x[xb * 8u + u]));
#endif
#ifdef W_Q4_0
    let base = blk * 18u;
    let q = word_at(base + 2u + 4u * u);
    let xa = x[xb * 8u + u];
    let xh = x[xb * 8u + 4u + u];
    let s = dot4I8Packed(q & 0x0f0f0f0fu, xa) + dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, xh)
        - 8 * (sum4(xa) + sum4(xh));
    return f16_at(base) * xs[xb].x * f32(s);
#endif
#ifdef W_Q4_1
    // d·dx·Σ q·xq + m·dx·Σ xq over the unit's eight elements.
    let base = blk * 20u;
    let q = w[(base + 4u + 4u * u) >> 2u];
    let xa = x[xb * 8u + u];
    let xh = x[xb * 8u + 4u + u];
    let s = dot4I8Packed(q & 0x0f0f0f0fu, xa) + dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, xh);
    return xs[xb].x * (f16_at(base) * f32(s) + f16_at(base + 2u) * f32(sum4(xa) + sum4(xh)));
#endif
#ifdef W_Q5_0
    // As q4_0, with the fifth bits of the unit's elements from qh (offset 16).
    let base = blk * 22u;
    let qh = word_at(base + 2u);
    let q = word_at(base + 6u + 4u * u);
    let xa = x[xb * 8u + u];
    let xh = x[xb * 8u + 4u + u];
    let quants = q5_quants(q, qh, u);
    let s = dot4I8Packed(quants.x, xa) + dot4I8Packed(quants.y, xh) - 16 * (sum4(xa) + sum4(xh));
    return f16_at(base) * xs[xb].x * f32(s);
#endif
#ifdef W_Q5_1
    let base = blk * 24u;
    let qh = w[(base + 4u) >> 2u];
    let q = w[(base + 8u + 4u * u) >> 2u];
    let xa = x[xb * 8u + u];
    let xh = x[xb * 8u + 4u + u];
    let quants = q5_quants(q, qh, u);
    let s = dot4I8Packed(quants.x, xa) + dot4I8Packed(quants.y, xh);
    return xs[xb].x * (f16_at(base) * f32(s) + f16_at(base + 2u) * f32(sum4(xa) + sum4(xh)));
#endif
#ifdef W_Q4_K
    // Word u of the 128 quant bytes: sub-blocks 2c (low nibbles) and 2c + 1 (high).
    let base = blk * 144u;
    let c = u / 8u;
    let q = w[(base + 16u + 4u * u) >> 2u];
    return kquant_words(base, xb * 8u, c, u % 8u, q & 0x0f0f0f0fu, (q >> 4u) & 0x0f0f0f0fu);
#endif
#ifdef W_Q5_K
    // As q4_k, with the fifth bits of qh byte l (bit = sub-block) in bit 4 of each byte.
    let base = blk * 176u;
    let c = u / 8u;
    let q = w[(base + 48u + 4u * u) >> 2u];
    let h = w[(base + 16u + 4u * (u % 8u)) >> 2u];
    let quants = q5k_quants(q, h, c);
    return kquant_words(base, xb * 8u, c, u % 8u, quants.x, quants.y);
#endif
#ifdef W_Q6_K
    // Four elements of one (half, quarter) group, one int8 scale.
    let base = blk * 210u;
    let h = u / 32u;
    let qt = (u % 32u) / 8u;
    let l = 4u * (u % 8u);
    let lw = (word_at(base + 64u * h + 32u * (qt & 1u) + l) >> (4u * (qt / 2u))) & 0x0f0f0f0fu;
    let hw = (word_at(base + 128u + 32u * h + l) >> (2u * qt)) & 0x03030303u;
    let xbk = xb * 8u + 4u * h + qt;
    let xv = x[xbk * 8u + u % 8u];
    let s = dot4I8Packed(lw | (hw << 4u), xv) - 32 * sum4(xv);
    return f16_at(base + 208u) * xs[xbk].x * i8_of(byte_at(base + 192u + 8u * h + l / 16u + 2u * qt)) * f32(s);
#endif
}
#endif

// Chunk c (sub-blocks 2c and 2c + 1) of a q4_k/q5_k block, from the two sub-blocks'
// integer sums Σ q·xq, the block's scale_min_words and the activation blocks' xs_window:
// (Σ sc·dx·Σ q·xq, Σ m·dx·Σ xq), which the block scales by d and dmin once.
fn kquant_chunk(sm: vec4<u32>, xsw: vec2<f32>, xb0: u32, c: u32, s: vec2<i32>) -> vec2<f32> {
    let lo = scale_min_of(sm, 2u * c);
    let hi = scale_min_of(sm, 2u * c + 1u);
    let x_lo = xs_of(xsw, xb0, 2u * c);
    let x_hi = xs_of(xsw, xb0, 2u * c + 1u);
    return vec2<f32>(
        lo.x * x_lo.x * f32(s.x) + hi.x * x_hi.x * f32(s.y),
        lo.y * x_lo.x * x_lo.y + hi.y * x_hi.x * x_hi.y,
    );
}

#ifdef W_KQUANT45
// Chunk c's integer sums (its two sub-blocks against their activation blocks) from its quant
// vectors q0, q1 (q5_k's fifth bits in h_lo, h_hi).
fn kquant_chunk_sums(q0: vec4<u32>, q1: vec4<u32>, h_lo: vec4<u32>, h_hi: vec4<u32>, xw: XWindows, xb0: u32, c: u32) -> vec2<i32> {
    let xa = x_block8(xw, xb0, 2u * c);
    let xh = x_block8(xw, xb0, 2u * c + 1u);
    return vec2<i32>(
        dot4x4(kquant_quants(q0, h_lo, 2u * c), xa.lo) + dot4x4(kquant_quants(q1, h_hi, 2u * c), xa.hi),
        dot4x4(kquant_quants(q0 >> vec4<u32>(4u), h_lo, 2u * c + 1u), xh.lo)
            + dot4x4(kquant_quants(q1 >> vec4<u32>(4u), h_hi, 2u * c + 1u), xh.hi),
    );
}

#ifdef INT_DOT_VEC4
// A q4_k (9 vectors) or q5_k (11) block's vectors as loaded (gemv.wgsl's group loaders: two
// per 32-byte load with W_U64).
fn kquant_vectors(blk: u32) -> array<vec4<u32>, KQUANT_VECTORS> {
#ifdef W_Q5_K
    return group_loads11(GroupAt(blk * KQUANT_VECTORS, 0u, false));
#else
    return group_loads9(GroupAt(blk * KQUANT_VECTORS, 0u, false));
#endif
}
#endif
#endif

// A q4_k/q5_k block's sum from its chunks' kquant_chunk totals: d·t.x − dmin·t.y, with d and
// dmin the two f16 of the block's first word, dm.
fn kquant_total(dm: u32, t: vec2<f32>) -> f32 {
    return unpack2x16float(dm).x * t.x - unpack2x16float(dm >> 16u).x * t.y;
}

// The contribution of quant word j of chunk c (both sub-blocks) of the q4_k/q5_k block at
// byte `base`, whose first activation block is xb0; lo / hi hold the sub-blocks' quants
// (q5_k's fifth bits already in bit 4 of each byte).
fn kquant_words(base: u32, xb0: u32, c: u32, j: u32, lo: u32, hi: u32) -> f32 {
    let t = kquant_pair(lo, hi, xb0, c, j);
    // Both sub-blocks' scales from one read of the three scale words.
    let sm = scale_min_words(base + 4u);
    let sm_lo = scale_min_of(sm, 2u * c);
    let sm_hi = scale_min_of(sm, 2u * c + 1u);
    let dx_lo = xs[xb0 + 2u * c].x;
    let dx_hi = xs[xb0 + 2u * c + 1u].x;
    return f16_at(base) * (sm_lo.x * dx_lo * t.x + sm_hi.x * dx_hi * t.y)
        - f16_at(base + 2u) * (sm_lo.y * dx_lo * t.z + sm_hi.y * dx_hi * t.w);
}

#ifdef INT_DOT_32
// Σ q·xq of a q4_0/q4_1 block's four quant words against its activation block: low nibbles
// are elements 0..15, high nibbles 16..31.
fn nibble_sum(q: vec4<u32>, xq: XBlock) -> i32 {
    let m = vec4<u32>(0x0f0f0f0fu);
    return dot4x4(q & m, xq.lo) + dot4x4((q >> vec4<u32>(4u)) & m, xq.hi);
}

// The same for q5_0/q5_1: the fifth bits from qh set bit 4 of each byte.
fn nibble5_sum(qh: u32, q: vec4<u32>, xq: XBlock) -> i32 {
    let m = vec4<u32>(0x0f0f0f0fu);
    return dot4x4((q & m) | spread_bits16(qh), xq.lo)
        + dot4x4(((q >> vec4<u32>(4u)) & m) | spread_bits16(qh >> 16u), xq.hi);
}

// The low 16 bits of h into bit 4 of each byte of four words, four bits per word.
fn spread_bits16(h: u32) -> vec4<u32> {
    return vec4<u32>(
        spread_bit4(h & 0xfu), spread_bit4((h >> 4u) & 0xfu),
        spread_bit4((h >> 8u) & 0xfu), spread_bit4((h >> 12u) & 0xfu),
    );
}

// A 32-element weight block `blk` against activation block `xb`, whose (scale, Σ xq) is sx.
// Quants are unsigned with an offset (q4_0: 8, q5_0: 16): Σ (q - o)·x = Σ q·x - o·Σ x; or
// d·q + m (q4_1, q5_1): d·dx·Σ q·xq + m·dx·Σ xq.
fn int_dot_block32(blk: u32, xb: u32, sx: vec2<f32>) -> f32 {
#ifdef W_Q8_0
    let xq = x_block(xb);
    let base = blk * 34u;
    let s = dot4x4(words_at(base + 2u), xq.lo) + dot4x4(words_at(base + 18u), xq.hi);
    return f16_at(base) * sx.x * f32(s);
#endif
#ifdef W_Q4_0
    let base = blk * 18u;
    let s = nibble_sum(words_at(base + 2u), x_block(xb));
    return f16_at(base) * sx.x * (f32(s) - 8.0 * sx.y);
#endif
#ifdef W_Q4_1
    let i = blk * 5u;
    return q4_1_block(w[i], w_words(i + 1u), x_block(xb), sx);
#endif
#ifdef W_Q5_0
    let base = blk * 22u;
    let s = nibble5_sum(word_at(base + 2u), words_at(base + 6u), x_block(xb));
    return f16_at(base) * sx.x * (f32(s) - 16.0 * sx.y);
#endif
#ifdef W_Q5_1
    let i = blk * 6u;
    return q5_1_block(w[i], w[i + 1u], w_words(i + 2u), x_block(xb), sx);
#endif
}

// The four words from (2-aligned) byte b.
fn words_at(b: u32) -> vec4<u32> {
    return vec4<u32>(word_at(b), word_at(b + 4u), word_at(b + 8u), word_at(b + 12u));
}

#ifdef W_Q4_1
// A q4_1 block from its words: dm (d, m as two f16) and its four quant words, against
// its activation block xq with scale sx: d·dx·Σ q·xq + m·dx·Σ xq.
fn q4_1_block(dm: u32, q: vec4<u32>, xq: XBlock, sx: vec2<f32>) -> f32 {
    let s = nibble_sum(q, xq);
    return sx.x * (unpack2x16float(dm).x * f32(s) + unpack2x16float(dm >> 16u).x * sx.y);
}
#endif

#ifdef W_Q5_1
// A q5_1 block from its words: dm, qh (the fifth bits) and its four quant words.
fn q5_1_block(dm: u32, qh: u32, q: vec4<u32>, xq: XBlock, sx: vec2<f32>) -> f32 {
    let s = nibble5_sum(qh, q, xq);
    return sx.x * (unpack2x16float(dm).x * f32(s) + unpack2x16float(dm >> 16u).x * sx.y);
}
#endif

#ifdef INT_DOT_GROUPS
// Whole groups of eight 32-element blocks (one invocation per row, rows of an even number of
// blocks). q8_0, q4_0 and q5_0 blocks are 34, 18 and 22 bytes, so every other one starts
// mid-word and a block-at-a-time reader loads two words per quant word; a pair starts on a
// word boundary and is read as whole words, each once. The pair readers below take a pair's
// words as vectors, from word loads (int_dot_pair) or from 16-byte loads (INT_DOT_VEC4).

#ifdef W_Q8_0
// Two q8_0 blocks from their 17 words (a, b, c, d: words 0..15, e: word 16) against
// activation blocks xa, xb with scales sa, sb: word 0's low half is d_a, block a's quants
// are words 0..8 shifted by half a word, word 8's high half is d_b, words 9..16 block b's.
fn q8_0_pair(a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, d: vec4<u32>, e: u32, xa: XBlock, xb: XBlock, sa: vec2<f32>, sb: vec2<f32>) -> f32 {
    let s_a = dot4x4(mid_words(a, vec4<u32>(a.yzw, b.x)), xa.lo)
        + dot4x4(mid_words(b, vec4<u32>(b.yzw, c.x)), xa.hi);
    let s_b = dot4x4(vec4<u32>(c.yzw, d.x), xb.lo) + dot4x4(vec4<u32>(d.yzw, e), xb.hi);
    return unpack2x16float(a.x).x * sa.x * f32(s_a) + unpack2x16float(c.x >> 16u).x * sb.x * f32(s_b);
}
#endif

#ifdef W_Q4_0
// Two q4_0 blocks from their 9 words (a, b: words 0..7, e: word 8): word 0's low half is
// d_a, block a's quants are words 0..4 shifted by half a word, word 4's high half is d_b,
// words 5..8 block b's quants.
fn q4_0_pair(a: vec4<u32>, b: vec4<u32>, e: u32, xa: XBlock, xb: XBlock, sa: vec2<f32>, sb: vec2<f32>) -> f32 {
    let s_a = nibble_sum(mid_words(a, vec4<u32>(a.yzw, b.x)), xa);
    let s_b = nibble_sum(vec4<u32>(b.yzw, e), xb);
    return unpack2x16float(a.x).x * sa.x * (f32(s_a) - 8.0 * sa.y)
        + unpack2x16float(b.x >> 16u).x * sb.x * (f32(s_b) - 8.0 * sb.y);
}
#endif

#ifdef W_Q5_0
// Two q5_0 blocks from their 11 words (a, b: words 0..7, c: words 8..10): word 0's low half
// is d_a, qh_a and block a's quants are words 0..5 shifted by half a word, word 5's high half
// is d_b, word 6 qh_b, words 7..10 block b's quants.
fn q5_0_pair(a: vec4<u32>, b: vec4<u32>, c: vec3<u32>, xa: XBlock, xb: XBlock, sa: vec2<f32>, sb: vec2<f32>) -> f32 {
    let qa = mid_words(vec4<u32>(a.yzw, b.x), vec4<u32>(a.zw, b.xy));
    let s_a = nibble5_sum(mid_word(a.x, a.y), qa, xa);
    let s_b = nibble5_sum(b.z, vec4<u32>(b.w, c), xb);
    return unpack2x16float(a.x).x * sa.x * (f32(s_a) - 16.0 * sa.y)
        + unpack2x16float(b.y >> 16u).x * sb.x * (f32(s_b) - 16.0 * sb.y);
}
#endif

// Two blocks from an even block `blk` against activation blocks xb, xb + 1 with scales sa, sb,
// read as words.
fn int_dot_pair(blk: u32, xb: u32, sa: vec2<f32>, sb: vec2<f32>) -> f32 {
#ifdef W_Q8_0
    let i = (blk / 2u) * 17u;
    return q8_0_pair(w_words(i), w_words(i + 4u), w_words(i + 8u), w_words(i + 12u), w[i + 16u], x_block(xb), x_block(xb + 1u), sa, sb);
#endif
#ifdef W_Q4_0
    let i = (blk / 2u) * 9u;
    return q4_0_pair(w_words(i), w_words(i + 4u), w[i + 8u], x_block(xb), x_block(xb + 1u), sa, sb);
#endif
#ifdef W_Q5_0
    let i = (blk / 2u) * 11u;
    return q5_0_pair(w_words(i), w_words(i + 4u), vec3<u32>(w[i + 8u], w[i + 9u], w[i + 10u]), x_block(xb), x_block(xb + 1u), sa, sb);
#endif
#ifdef W_Q4_1
    return int_dot_block32(blk, xb, sa) + int_dot_block32(blk + 1u, xb + 1u, sb);
#endif
#ifdef W_Q5_1
    return int_dot_block32(blk, xb, sa) + int_dot_block32(blk + 1u, xb + 1u, sb);
#endif
}

#ifdef INT_DOT_VEC4
#ifdef W_Q4_1
// Blocks i..i + 4 of a q4_1 group from their five loaded vectors r0..r4 (realigned against
// the next one, r5).
fn q4_1_four(g: GroupAt, r0: vec4<u32>, r1: vec4<u32>, r2: vec4<u32>, r3: vec4<u32>, r4: vec4<u32>, r5: vec4<u32>, xw: XWindows, b0: u32, sw: vec2<f32>, i: u32) -> f32 {
    let v0 = group_vector(g, r0, r1);
    let v1 = group_vector(g, r1, r2);
    let v2 = group_vector(g, r2, r3);
    let v3 = group_vector(g, r3, r4);
    let v4 = group_vector(g, r4, r5);
    return q4_1_block(v0.x, vec4<u32>(v0.yzw, v1.x), x_block8(xw, b0, i), xs_of(sw, b0, i))
        + q4_1_block(v1.y, vec4<u32>(v1.zw, v2.xy), x_block8(xw, b0, i + 1u), xs_of(sw, b0, i + 1u))
        + q4_1_block(v2.z, vec4<u32>(v2.w, v3.xyz), x_block8(xw, b0, i + 2u), xs_of(sw, b0, i + 2u))
        + q4_1_block(v3.w, v4, x_block8(xw, b0, i + 3u), xs_of(sw, b0, i + 3u));
}
#endif

#ifdef W_Q5_1
// Blocks i, i + 1 of a q5_1 group from their three loaded vectors r0..r2 (realigned against
// the next one, r3).
fn q5_1_two(g: GroupAt, r0: vec4<u32>, r1: vec4<u32>, r2: vec4<u32>, r3: vec4<u32>, xw: XWindows, b0: u32, sw: vec2<f32>, i: u32) -> f32 {
    let v0 = group_vector(g, r0, r1);
    let v1 = group_vector(g, r1, r2);
    let v2 = group_vector(g, r2, r3);
    return q5_1_block(v0.x, v0.y, vec4<u32>(v0.zw, v1.xy), x_block8(xw, b0, i), xs_of(sw, b0, i))
        + q5_1_block(v1.z, v1.w, v2, x_block8(xw, b0, i + 1u), xs_of(sw, b0, i + 1u));
}
#endif

// Groups of eight 32-element blocks are read through gemv.wgsl's group helpers (group_at,
// group_vector, realign_load; GROUPS_REALIGN in rows that are not whole groups).
// Eight blocks from block blk0 (whose group starts where group_at says) against activation
// blocks b0..b0 + 8, whose scales are in the window sw. A q8_0/q4_0/q5_0 pair p of W words
// starts at word pW = 4·(pW / 4) + p·(W % 4): its vectors are read realigned by p·(W % 4)
// words.
fn int_dot_group_vec4(blk0: u32, b0: u32, sw: vec2<f32>) -> f32 {
    let xw = x_windows8(b0);
#ifdef W_Q8_0
    // 8 blocks = 272 bytes = 17 vectors; pair p starts at word 17p (vector 4p, component p).
    let g = group_at(blk0, 34u);
    let r = group_loads17(g);
    let r_end = realign_load(g, 17u);
    let v0 = group_vector(g, r[0], r[1]);
    let v1 = group_vector(g, r[1], r[2]);
    let v2 = group_vector(g, r[2], r[3]);
    let v3 = group_vector(g, r[3], r[4]);
    let v4 = group_vector(g, r[4], r[5]);
    var acc = q8_0_pair(v0, v1, v2, v3, v4.x, x_block8(xw, b0, 0u), x_block8(xw, b0, 1u), xs_of(sw, b0, 0u), xs_of(sw, b0, 1u));
    let v5 = group_vector(g, r[5], r[6]);
    let v6 = group_vector(g, r[6], r[7]);
    let v7 = group_vector(g, r[7], r[8]);
    let v8 = group_vector(g, r[8], r[9]);
    acc = acc + q8_0_pair(
        vec4<u32>(v4.yzw, v5.x), vec4<u32>(v5.yzw, v6.x), vec4<u32>(v6.yzw, v7.x), vec4<u32>(v7.yzw, v8.x), v8.y,
        x_block8(xw, b0, 2u), x_block8(xw, b0, 3u), xs_of(sw, b0, 2u), xs_of(sw, b0, 3u),
    );
    let v9 = group_vector(g, r[9], r[10]);
    let v10 = group_vector(g, r[10], r[11]);
    let v11 = group_vector(g, r[11], r[12]);
    let v12 = group_vector(g, r[12], r[13]);
    acc = acc + q8_0_pair(
        vec4<u32>(v8.zw, v9.xy), vec4<u32>(v9.zw, v10.xy), vec4<u32>(v10.zw, v11.xy), vec4<u32>(v11.zw, v12.xy), v12.z,
        x_block8(xw, b0, 4u), x_block8(xw, b0, 5u), xs_of(sw, b0, 4u), xs_of(sw, b0, 5u),
    );
    let v13 = group_vector(g, r[13], r[14]);
    let v14 = group_vector(g, r[14], r[15]);
    let v15 = group_vector(g, r[15], r[16]);
    let v16 = group_vector(g, r[16], r_end);
    return acc + q8_0_pair(
        vec4<u32>(v12.w, v13.xyz), vec4<u32>(v13.w, v14.xyz), vec4<u32>(v14.w, v15.xyz), vec4<u32>(v15.w, v16.xyz), v16.w,
        x_block8(xw, b0, 6u), x_block8(xw, b0, 7u), xs_of(sw, b0, 6u), xs_of(sw, b0, 7u),
    );
#endif
#ifdef W_Q4_0
    // 8 blocks = 144 bytes = 9 vectors; pair p starts at word 9p (vector 2p, component p).
    let v = group_vectors9(group_at(blk0, 18u));
    return q4_0_pair(v[0], v[1], v[2].x, x_block8(xw, b0, 0u), x_block8(xw, b0, 1u), xs_of(sw, b0, 0u), xs_of(sw, b0, 1u))
        + q4_0_pair(vec4<u32>(v[2].yzw, v[3].x), vec4<u32>(v[3].yzw, v[4].x), v[4].y, x_block8(xw, b0, 2u), x_block8(xw, b0, 3u), xs_of(sw, b0, 2u), xs_of(sw, b0, 3u))
        + q4_0_pair(vec4<u32>(v[4].zw, v[5].xy), vec4<u32>(v[5].zw, v[6].xy), v[6].z, x_block8(xw, b0, 4u), x_block8(xw, b0, 5u), xs_of(sw, b0, 4u), xs_of(sw, b0, 5u))
        + q4_0_pair(vec4<u32>(v[6].w, v[7].xyz), vec4<u32>(v[7].w, v[8].xyz), v[8].w, x_block8(xw, b0, 6u), x_block8(xw, b0, 7u), xs_of(sw, b0, 6u), xs_of(sw, b0, 7u));
#endif
#ifdef W_Q5_0
    // 8 blocks = 176 bytes = 11 vectors; pair p starts at word 11p (vector 2p + p / 2...):
    // words 0, 11, 22, 33 are v0.x, v2.w, v5.z, v8.y.
    let g = group_at(blk0, 22u);
    let r = group_loads11(g);
    let r_end = realign_load(g, 11u);
    let v0 = group_vector(g, r[0], r[1]);
    let v1 = group_vector(g, r[1], r[2]);
    let v2 = group_vector(g, r[2], r[3]);
    let v3 = group_vector(g, r[3], r[4]);
    let v4 = group_vector(g, r[4], r[5]);
    let v5 = group_vector(g, r[5], r[6]);
    let v6 = group_vector(g, r[6], r[7]);
    let v7 = group_vector(g, r[7], r[8]);
    let v8 = group_vector(g, r[8], r[9]);
    let v9 = group_vector(g, r[9], r[10]);
    let v10 = group_vector(g, r[10], r_end);
    return q5_0_pair(v0, v1, v2.xyz, x_block8(xw, b0, 0u), x_block8(xw, b0, 1u), xs_of(sw, b0, 0u), xs_of(sw, b0, 1u))
        + q5_0_pair(vec4<u32>(v2.w, v3.xyz), vec4<u32>(v3.w, v4.xyz), vec3<u32>(v4.w, v5.xy), x_block8(xw, b0, 2u), x_block8(xw, b0, 3u), xs_of(sw, b0, 2u), xs_of(sw, b0, 3u))
        + q5_0_pair(vec4<u32>(v5.zw, v6.xy), vec4<u32>(v6.zw, v7.xy), vec3<u32>(v7.zw, v8.x), x_block8(xw, b0, 4u), x_block8(xw, b0, 5u), xs_of(sw, b0, 4u), xs_of(sw, b0, 5u))
        + q5_0_pair(vec4<u32>(v8.yzw, v9.x), vec4<u32>(v9.yzw, v10.x), v10.yzw, x_block8(xw, b0, 6u), x_block8(xw, b0, 7u), xs_of(sw, b0, 6u), xs_of(sw, b0, 7u));
#endif
#ifdef W_Q4_1
    // 8 blocks = 160 bytes = 10 vectors; block j (5 words: dm, four quant words) starts at
    // word 5j: four blocks per five vectors.
    let g = group_at(blk0, 20u);
    let r = group_loads10(g);
    let r_end = realign_load(g, 10u);
    return q4_1_four(g, r[0], r[1], r[2], r[3], r[4], r[5], xw, b0, sw, 0u)
        + q4_1_four(g, r[5], r[6], r[7], r[8], r[9], r_end, xw, b0, sw, 4u);
#endif
#ifdef W_Q5_1
    // 8 blocks = 192 bytes = 12 vectors; block j (6 words: dm, qh, four quant words) starts
    // at word 6j: two blocks per three vectors.
    let g = group_at(blk0, 24u);
    let r = group_loads12(g);
    let r_end = realign_load(g, 12u);
    return q5_1_two(g, r[0], r[1], r[2], r[3], xw, b0, sw, 0u)
        + q5_1_two(g, r[3], r[4], r[5], r[6], xw, b0, sw, 2u)
        + q5_1_two(g, r[6], r[7], r[8], r[9], xw, b0, sw, 4u)
        + q5_1_two(g, r[9], r[10], r[11], r_end, xw, b0, sw, 6u);
#endif
}
#endif

// Eight blocks of a row from block b0 (blk0 in the tensor; both even): the eight activation
// scales arrive in one window (lane l loading block b0 + l's, with shared activations).
fn int_dot_group(blk0: u32, b0: u32) -> f32 {
    let sw = xs_window(b0);
#ifdef INT_DOT_VEC4
    return int_dot_group_vec4(blk0, b0, sw);
#else
    return int_dot_pair(blk0, b0, xs_of(sw, b0, 0u), xs_of(sw, b0, 1u))
        + int_dot_pair(blk0 + 2u, b0 + 2u, xs_of(sw, b0, 2u), xs_of(sw, b0, 3u))
        + int_dot_pair(blk0 + 4u, b0 + 4u, xs_of(sw, b0, 4u), xs_of(sw, b0, 5u))
        + int_dot_pair(blk0 + 6u, b0 + 6u, xs_of(sw, b0, 6u), xs_of(sw, b0, 7u));
#endif
}
#endif
#endif

// Weight block `blk` (of the whole tensor) against activation block `xb`.
fn int_dot_block(blk: u32, xb: u32) -> f32 {
#ifdef W_Q8_0
    return int_dot_block32(blk, xb, xs[xb]);
#endif
#ifdef W_Q4_0
    return int_dot_block32(blk, xb, xs[xb]);
#endif
#ifdef W_Q4_1
    return int_dot_block32(blk, xb, xs[xb]);
#endif
#ifdef W_Q5_0
    return int_dot_block32(blk, xb, xs[xb]);
#endif
#ifdef W_Q5_1
    return int_dot_block32(blk, xb, xs[xb]);
#endif
#ifdef W_KQUANT45
    // q4_k / q5_k: xb is the weight block's column index; its 8 sub-blocks meet activation
    // blocks 8xb + s. Integer sums per sub-block first, scales once per sub-block. Vectors
    // (16 bytes) of the block: d, dmin and three words of scales; q5_k's 32 fifth-bit bytes
    // (bits 2c, 2c + 1 of each byte serve chunk c: read once for all four); then chunk c's
    // 32 quant bytes.
    let v = blk * KQUANT_VECTORS;
#ifdef W_U64
    // The block's vectors two per 32-byte load (9 -> 5 for q4_k, 11 -> 6 for q5_k).
    let r = kquant_vectors(blk);
    let head = r[0];
#ifdef W_Q5_K
    let h_lo = r[1];
    let h_hi = r[2];
#endif
#else
    let head = w_vector(v);
#ifdef W_Q5_K
    let h_lo = w_vector(v + 1u);
    let h_hi = w_vector(v + 2u);
#endif
#endif
#ifndef W_Q5_K
    let h_lo = vec4<u32>(0u);
    let h_hi = vec4<u32>(0u);
#endif
    let sm = scale_min_unpack(head.y, head.z, head.w);
    let xsw = xs_window(xb * 8u);
    let xw = x_windows8(xb * 8u);
#ifdef W_U64
    // Chunks written out, so that every index into r is a constant.
    let c0 = kquant_chunk(sm, xsw, xb * 8u, 0u, kquant_chunk_sums(r[KQUANT_VECTORS - 8u], r[KQUANT_VECTORS - 7u], h_lo, h_hi, xw, xb * 8u, 0u));
    let c1 = kquant_chunk(sm, xsw, xb * 8u, 1u, kquant_chunk_sums(r[KQUANT_VECTORS - 6u], r[KQUANT_VECTORS - 5u], h_lo, h_hi, xw, xb * 8u, 1u));
    let c2 = kquant_chunk(sm, xsw, xb * 8u, 2u, kquant_chunk_sums(r[KQUANT_VECTORS - 4u], r[KQUANT_VECTORS - 3u], h_lo, h_hi, xw, xb * 8u, 2u));
    let c3 = kquant_chunk(sm, xsw, xb * 8u, 3u, kquant_chunk_sums(r[KQUANT_VECTORS - 2u], r[KQUANT_VECTORS - 1u], h_lo, h_hi, xw, xb * 8u, 3u));
    return kquant_total(head.x, c0 + c1 + c2 + c3);
#else
    var acc = vec2<f32>(0.0);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let q0 = w_vector(v + KQUANT_VECTORS - 8u + 2u * c);
        let q1 = w_vector(v + KQUANT_VECTORS - 7u + 2u * c);
        acc = acc + kquant_chunk(sm, xsw, xb * 8u, c, kquant_chunk_sums(q0, q1, h_lo, h_hi, xw, xb * 8u, c));
    }
    return kquant_total(head.x, acc);
#endif
#endif
#ifdef W_Q6_K
    // Each ql, qh and scale word is read once: a half h (128 elements) takes ql words
    // 64h + 4m and 64h + 32 + 4m and qh word 32h + 4m for m = 0..7, which together hold four
    // quant words, one in each of the half's four activation blocks.
#ifdef INT_DOT_VEC4
    return q6k_block_vec4(blk, xb);
#else
    let base = blk * 210u;
    let xsw = xs_window(xb * 8u);
    let sh = (base & 3u) * 8u;
    let i = (base + 192u) >> 2u;
    let s0 = w[i];
    let s1 = w[i + 1u];
    let s2 = w[i + 2u];
    let s3 = w[i + 3u];
    let s4 = w[i + 4u];
    let sc = vec4<u32>(shifted(s0, s1, sh), shifted(s1, s2, sh), shifted(s2, s3, sh), shifted(s3, s4, sh));
    let acc = q6k_half(base, xb * 8u, 0u, sc, xsw) + q6k_half(base, xb * 8u, 1u, sc, xsw);
    return f16_at(base + 208u) * acc;
#endif
#endif
}

#ifdef W_Q6_K
// Quant words of q6_k half h as signed int8 (q - 32, -32..31, so no offset term is needed):
// ((q | 0x80) - 0x20) ^ 0x80 per byte subtracts 32 without borrowing across bytes.
fn q6k_signed(lo4: u32, hi2: u32) -> u32 {
    let q = (lo4 & 0x0f0f0f0fu) | ((hi2 & 0x03030303u) << 4u);
    return ((q | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
}

// Integer sums of group g (words 4g..4g+4 of each activation block) of q6_k half h, one per
// activation block 4h + qt (windows xw0..xw3). q6_k blocks are 210 bytes, so every other one
// starts mid-word: the ql and qh words are read as three streams of five aligned words
// (`shifted` in blocks.wgsl), each word once.
fn q6k_group(base: u32, xb0: u32, h: u32, g: u32, xw0: u32, xw1: u32, xw2: u32, xw3: u32) -> vec4<i32> {
    let sh = (base & 3u) * 8u;
    let ia = (base + 64u * h + 16u * g) >> 2u;
    let ib = (base + 64u * h + 32u + 16u * g) >> 2u;
    let ih = (base + 128u + 32u * h + 16u * g) >> 2u;
    var pa = w[ia];
    var pb = w[ib];
    var ph = w[ih];
    let xa = xb0 + 4u * h;
    var s = vec4<i32>(0);
    for (var m4 = 0u; m4 < 4u; m4 = m4 + 1u) {
        let m = 4u * g + m4;
        let na = w[ia + m4 + 1u];
        let nb = w[ib + m4 + 1u];
        let nh = w[ih + m4 + 1u];
        let a = shifted(pa, na, sh);
        let b = shifted(pb, nb, sh);
        let hb = shifted(ph, nh, sh);
        pa = na;
        pb = nb;
        ph = nh;
        s = s + vec4<i32>(
            dot4I8Packed(q6k_signed(a, hb), x_word(xw0, xa, m)),
            dot4I8Packed(q6k_signed(b, hb >> 2u), x_word(xw1, xa + 1u, m)),
            dot4I8Packed(q6k_signed(a >> 4u, hb >> 4u), x_word(xw2, xa + 2u, m)),
            dot4I8Packed(q6k_signed(b >> 4u, hb >> 6u), x_word(xw3, xa + 3u, m)),
        );
    }
    return s;
}

// Half h of a q6_k block: Σ over its activation blocks 4h + qt of dx · Σ_g sc[8h + 2qt + g] ·
// (group sum); `sc` holds the 16 int8 scales, `xsw` the block's activation-scale window.
fn q6k_half(base: u32, xb0: u32, h: u32, sc: vec4<u32>, xsw: vec2<f32>) -> f32 {
    let xa = xb0 + 4u * h;
    let xw0 = x_window(xa);
    let xw1 = x_window(xa + 1u);
    let xw2 = x_window(xa + 2u);
    let xw3 = x_window(xa + 3u);
    let s0 = q6k_group(base, xb0, h, 0u, xw0, xw1, xw2, xw3);
    let s1 = q6k_group(base, xb0, h, 1u, xw0, xw1, xw2, xw3);
    return q6k_scaled(s0, s1, h, sc, xsw, xb0);
}

// Half h of a q6_k block from its integer sums (s0, s1: groups 0 and 1, one per activation
// block 4h + qt), with the 16 int8 scales `sc` and the activation scales' window xsw.
fn q6k_scaled(s0: vec4<i32>, s1: vec4<i32>, h: u32, sc: vec4<u32>, xsw: vec2<f32>, xb0: u32) -> f32 {
    var acc = 0.0;
    for (var qt = 0u; qt < 4u; qt = qt + 1u) {
        // Scales 8h + 2qt and 8h + 2qt + 1: word 2h + qt / 2, bytes 2 (qt % 2) and + 1.
        let word = sc[2u * h + qt / 2u] >> (16u * (qt % 2u));
        let g0 = f32(bitcast<i32>(word << 24u) >> 24u);
        let g1 = f32(bitcast<i32>(word << 16u) >> 24u);
        acc = acc + xs_of(xsw, xb0, 4u * h + qt).x * (g0 * f32(s0[qt]) + g1 * f32(s1[qt]));
    }
    return acc;
}

#ifdef INT_DOT_VEC4
// q6k_signed for four words.
fn q6k_signed4(lo4: vec4<u32>, hi2: vec4<u32>) -> vec4<u32> {
    let q = (lo4 & vec4<u32>(0x0f0f0f0fu)) | ((hi2 & vec4<u32>(0x03030303u)) << vec4<u32>(4u));
    return ((q | vec4<u32>(0x80808080u)) - vec4<u32>(0x20202020u)) ^ vec4<u32>(0x80808080u);
}

// A q6_k block read as 16-byte vectors: block `blk` starts at byte 210·blk, which is 2j bytes
// into vector ⌊210·blk / 16⌋ for j = blk % 8 (210 ≡ 2 mod 16), and spans 14 vectors (buffers
// are whole vectors, so the last block's are there too). Each is loaded once (against 66
// word loads) and realigned in registers: ql (vectors 0..7), qh (8..11), the scales (12),
// d (in 13).
fn q6k_block_vec4(blk: u32, xb: u32) -> f32 {
    let j = blk % 8u;
    let v = (blk / 8u) * 105u + (210u * j) / 16u;
    let o = j / 2u;
    let half = j % 2u == 1u;
    let xsw = xs_window(xb * 8u);
    let xw = x_windows8(xb * 8u);
    let l = group_loads14(GroupAt(v, 0u, false));
    let l0 = l[0];
    let l1 = l[1];
    let l2 = l[2];
    let l3 = l[3];
    let l4 = l[4];
    let l5 = l[5];
    let l6 = l[6];
    let l7 = l[7];
    let l8 = l[8];
    let l9 = l[9];
    let l10 = l[10];
    let l11 = l[11];
    let l12 = l[12];
    let l13 = l[13];
    let sc = realigned(l12, l13, o, half);
    // d: block bytes 208, 209, which are 2j bytes into vector 13.
    let d = unpack2x16float(l13[o] >> select(0u, 16u, half)).x;
    let acc = q6k_half_vec4(
        realigned(l0, l1, o, half), realigned(l1, l2, o, half), realigned(l2, l3, o, half), realigned(l3, l4, o, half),
        realigned(l8, l9, o, half), realigned(l9, l10, o, half), 0u, sc, xsw, xw, xb * 8u,
    );
    return d * (acc + q6k_half_vec4(
        realigned(l4, l5, o, half), realigned(l5, l6, o, half), realigned(l6, l7, o, half), realigned(l7, l8, o, half),
        realigned(l10, l11, o, half), realigned(l11, l12, o, half), 1u, sc, xsw, xw, xb * 8u,
    ));
}

// Half h of a q6_k block from its realigned vectors: ql a0, a1 (bytes 64h, 64h + 16), b0, b1
// (64h + 32, + 48) and qh h0, h1 (128 + 32h, + 16).
fn q6k_half_vec4(a0: vec4<u32>, a1: vec4<u32>, b0: vec4<u32>, b1: vec4<u32>, h0: vec4<u32>, h1: vec4<u32>, h: u32, sc: vec4<u32>, xsw: vec2<f32>, xw: XWindows, xb0: u32) -> f32 {
    let x0 = x_block8(xw, xb0, 4u * h);
    let x1 = x_block8(xw, xb0, 4u * h + 1u);
    let x2 = x_block8(xw, xb0, 4u * h + 2u);
    let x3 = x_block8(xw, xb0, 4u * h + 3u);
    let four = vec4<u32>(4u);
    let s0 = vec4<i32>(
        dot4x4(q6k_signed4(a0, h0), x0.lo),
        dot4x4(q6k_signed4(b0, h0 >> vec4<u32>(2u)), x1.lo),
        dot4x4(q6k_signed4(a0 >> four, h0 >> four), x2.lo),
        dot4x4(q6k_signed4(b0 >> four, h0 >> vec4<u32>(6u)), x3.lo),
    );
    let s1 = vec4<i32>(
        dot4x4(q6k_signed4(a1, h1), x0.hi),
        dot4x4(q6k_signed4(b1, h1 >> vec4<u32>(2u)), x1.hi),
        dot4x4(q6k_signed4(a1 >> four, h1 >> four), x2.hi),
        dot4x4(q6k_signed4(b1 >> four, h1 >> vec4<u32>(6u)), x3.hi),
    );
    return q6k_scaled(s0, s1, h, sc, xsw, xb0);
}
#endif
#endif

#ifdef W_KQUANT45
// Four q4_k/q5_k quant words (low four bits of each byte in q) with, for q5_k, their fifth
// bits: bit `bit` of each byte of h, moved to bit 4 (q4_k has none: h is ignored).
fn kquant_quants(q: vec4<u32>, h: vec4<u32>, bit: u32) -> vec4<u32> {
    let low = q & vec4<u32>(0x0f0f0f0fu);
#ifdef W_Q5_K
    return low | (((h >> vec4<u32>(bit)) & vec4<u32>(0x01010101u)) << vec4<u32>(4u));
#else
    return low;
#endif
}
#endif
