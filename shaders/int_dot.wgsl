// Int-dot GEMV decoders (included by gemv.wgsl under INT_DOT; include-only): weight blocks
// against activations quantized to int8 by quantize_q8.wgsl, in packed int8 dot products.
// Reads x, xs, w and lane8 from gemv.wgsl, and word_at / f16_at / scale_min_words from
// blocks.wgsl.

// x arrives quantized by quantize_q8.wgsl — int8 values packed four to a word (binding 2) and
// per 32-element block (scale, sum of values) (binding 5) — and each weight block meets its
// activation block in packed int8 dot products: 8 dot4I8Packed per 32 weights instead of 32
// decodes and multiply-adds. Block sums are exact in i32; f32 products apply the scales.
@group(0) @binding(5) var<storage, read> xs: array<vec2<f32>>;

#ifndef UNITWISE
#ifdef W_Q4_K
const BLOCK_ELEMS: u32 = 256u;
#else
#ifdef W_Q5_K
const BLOCK_ELEMS: u32 = 256u;
#else
#ifdef W_Q6_K
const BLOCK_ELEMS: u32 = 256u;
#else
const BLOCK_ELEMS: u32 = 32u;
#endif
#endif
#endif
#endif

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

// Σ of the four int8 in a packed word.
fn sum4(v: u32) -> i32 {
    return dot4I8Packed(0x01010101u, v);
}

#ifdef UNITWISE
// Unit u (one quant word) of weight block `blk` against activation block `xb`: with a
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
#ifdef W_Q4_K
    // Word u of the 128 quant bytes: sub-blocks 2c (low nibbles) and 2c + 1 (high).
    let base = blk * 144u;
    let c = u / 8u;
    let q = w[(base + 16u + 4u * u) >> 2u];
    return kquant_words(base, xb * 8u, c, u % 8u, q & 0x0f0f0f0fu, (q >> 4u) & 0x0f0f0f0fu);
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

// A q4_k/q5_k block's sum from its chunks' kquant_chunk totals: d·t.x − dmin·t.y, with d and
// dmin the two f16 of the block's first word.
fn kquant_total(base: u32, t: vec2<f32>) -> f32 {
    let dm = w[base >> 2u];
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
// Σ q·xq of a q4_0/q4_1 block's four quant words against activation block xb (window xw):
// low nibbles are elements 0..15, high nibbles 16..31.
fn nibble_sum(q0: u32, q1: u32, q2: u32, q3: u32, xw: u32, xb: u32) -> i32 {
    let q = vec4<u32>(q0, q1, q2, q3);
    var s = 0;
    for (var j = 0u; j < 4u; j = j + 1u) {
        s = s + dot4I8Packed(q[j] & 0x0f0f0f0fu, x_word(xw, xb, j))
            + dot4I8Packed((q[j] >> 4u) & 0x0f0f0f0fu, x_word(xw, xb, 4u + j));
    }
    return s;
}

// The same for q5_0/q5_1: the fifth bits from qh set bit 4 of each byte.
fn nibble5_sum(qh: u32, q0: u32, q1: u32, q2: u32, q3: u32, xw: u32, xb: u32) -> i32 {
    let q = vec4<u32>(q0, q1, q2, q3);
    var s = 0;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let lo = (q[j] & 0x0f0f0f0fu) | spread_bit4((qh >> (4u * j)) & 0xfu);
        let hi = ((q[j] >> 4u) & 0x0f0f0f0fu) | spread_bit4((qh >> (16u + 4u * j)) & 0xfu);
        s = s + dot4I8Packed(lo, x_word(xw, xb, j)) + dot4I8Packed(hi, x_word(xw, xb, 4u + j));
    }
    return s;
}

// A 32-element weight block `blk` against activation block `xb`, whose (scale, Σ xq) is sx.
// Quants are unsigned with an offset (q4_0: 8, q5_0: 16): Σ (q - o)·x = Σ q·x - o·Σ x; or
// d·q + m (q4_1, q5_1): d·dx·Σ q·xq + m·dx·Σ xq.
fn int_dot_block32(blk: u32, xb: u32, sx: vec2<f32>) -> f32 {
    let xw = x_window(xb);
#ifdef W_Q8_0
    let base = blk * 34u;
    var s = 0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        s = s + dot4I8Packed(word_at(base + 2u + 4u * j), x_word(xw, xb, j));
    }
    return f16_at(base) * sx.x * f32(s);
#endif
#ifdef W_Q4_0
    let base = blk * 18u;
    let s = nibble_sum(word_at(base + 2u), word_at(base + 6u), word_at(base + 10u), word_at(base + 14u), xw, xb);
    return f16_at(base) * sx.x * (f32(s) - 8.0 * sx.y);
#endif
#ifdef W_Q4_1
    let i = blk * 5u;
    let dm = w[i];
    let s = nibble_sum(w[i + 1u], w[i + 2u], w[i + 3u], w[i + 4u], xw, xb);
    return sx.x * (unpack2x16float(dm).x * f32(s) + unpack2x16float(dm >> 16u).x * sx.y);
#endif
#ifdef W_Q5_0
    let base = blk * 22u;
    let s = nibble5_sum(word_at(base + 2u), word_at(base + 6u), word_at(base + 10u), word_at(base + 14u), word_at(base + 18u), xw, xb);
    return f16_at(base) * sx.x * (f32(s) - 16.0 * sx.y);
#endif
#ifdef W_Q5_1
    let i = blk * 6u;
    let dm = w[i];
    let s = nibble5_sum(w[i + 1u], w[i + 2u], w[i + 3u], w[i + 4u], w[i + 5u], xw, xb);
    return sx.x * (unpack2x16float(dm).x * f32(s) + unpack2x16float(dm >> 16u).x * sx.y);
#endif
}

#ifdef INT_DOT_GROUPS
// Two 32-element blocks from an even block `blk` (their 68, 36 or 44 bytes start on a word
// boundary) against activation blocks xb, xb + 1 with scales sa, sb. q8_0, q4_0 and q5_0
// blocks are 34, 18 and 22 bytes, so every other one starts mid-word and a block-at-a-time
// reader loads two words per quant word; a pair is read as whole words, each once.
fn int_dot_pair(blk: u32, xb: u32, sa: vec2<f32>, sb: vec2<f32>) -> f32 {
    let xwa = x_window(xb);
    let xwb = x_window(xb + 1u);
#ifdef W_Q8_0
    // Words 0..8: d_a, then block a's quants at byte 2 (each the high half of one word and
    // the low half of the next); word 8's high half is d_b; words 9..17 block b's quants.
    let i = (blk / 2u) * 17u;
    let first = w[i];
    var prev = first;
    var s_a = 0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let next = w[i + 1u + j];
        s_a = s_a + dot4I8Packed(mid_word(prev, next), x_word(xwa, xb, j));
        prev = next;
    }
    var s_b = 0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        s_b = s_b + dot4I8Packed(w[i + 9u + j], x_word(xwb, xb + 1u, j));
    }
    return unpack2x16float(first).x * sa.x * f32(s_a)
        + unpack2x16float(prev >> 16u).x * sb.x * f32(s_b);
#endif
#ifdef W_Q4_0
    // Words 0..4: d_a, block a's quants at byte 2; word 4's high half is d_b; words 5..9
    // block b's quants.
    let i = (blk / 2u) * 9u;
    let w0 = w[i];
    let w1 = w[i + 1u];
    let w2 = w[i + 2u];
    let w3 = w[i + 3u];
    let w4 = w[i + 4u];
    let s_a = nibble_sum(mid_word(w0, w1), mid_word(w1, w2), mid_word(w2, w3), mid_word(w3, w4), xwa, xb);
    let s_b = nibble_sum(w[i + 5u], w[i + 6u], w[i + 7u], w[i + 8u], xwb, xb + 1u);
    return unpack2x16float(w0).x * sa.x * (f32(s_a) - 8.0 * sa.y)
        + unpack2x16float(w4 >> 16u).x * sb.x * (f32(s_b) - 8.0 * sb.y);
#endif
#ifdef W_Q5_0
    // Words 0..5: d_a, qh_a at byte 2, block a's quants at byte 6; word 5's high half is
    // d_b; word 6 qh_b; words 7..11 block b's quants.
    let i = (blk / 2u) * 11u;
    let w0 = w[i];
    let w1 = w[i + 1u];
    let w2 = w[i + 2u];
    let w3 = w[i + 3u];
    let w4 = w[i + 4u];
    let w5 = w[i + 5u];
    let s_a = nibble5_sum(mid_word(w0, w1), mid_word(w1, w2), mid_word(w2, w3), mid_word(w3, w4), mid_word(w4, w5), xwa, xb);
    let s_b = nibble5_sum(w[i + 6u], w[i + 7u], w[i + 8u], w[i + 9u], w[i + 10u], xwb, xb + 1u);
    return unpack2x16float(w0).x * sa.x * (f32(s_a) - 16.0 * sa.y)
        + unpack2x16float(w5 >> 16u).x * sb.x * (f32(s_b) - 16.0 * sb.y);
#endif
#ifdef W_Q4_1
    return int_dot_block32(blk, xb, sa) + int_dot_block32(blk + 1u, xb + 1u, sb);
#endif
#ifdef W_Q5_1
    return int_dot_block32(blk, xb, sa) + int_dot_block32(blk + 1u, xb + 1u, sb);
#endif
}

// The word that starts halfway through word a and ends halfway through the next one, b.
fn mid_word(a: u32, b: u32) -> u32 {
    return (a >> 16u) | (b << 16u);
}

// Eight blocks of a row from block b0 (blk0 in the tensor; both even): the eight activation
// scales arrive in one window, lane l loading block b0 + l's.
fn int_dot_group(blk0: u32, b0: u32) -> f32 {
    let sw = xs[b0 + lane8];
    return int_dot_pair(blk0, b0, subgroupShuffle(sw, 0u), subgroupShuffle(sw, 1u))
        + int_dot_pair(blk0 + 2u, b0 + 2u, subgroupShuffle(sw, 2u), subgroupShuffle(sw, 3u))
        + int_dot_pair(blk0 + 4u, b0 + 4u, subgroupShuffle(sw, 4u), subgroupShuffle(sw, 5u))
        + int_dot_pair(blk0 + 6u, b0 + 6u, subgroupShuffle(sw, 6u), subgroupShuffle(sw, 7u));
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
#ifdef W_Q4_K
    // xb is the weight block's column index; its 8 sub-blocks meet activation blocks 8xb + s.
    // Integer sums per sub-block first, scales once per sub-block.
    let base = blk * 144u;
    let sm = scale_min_words(base + 4u);
    let xsw = xs_window(xb * 8u);
    var acc = vec2<f32>(0.0);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let xa = xb * 8u + 2u * c;
        let xwa = x_window(xa);
        let xwb = x_window(xa + 1u);
        var s = vec2<i32>(0);
        for (var j = 0u; j < 8u; j = j + 1u) {
            let q = w[(base + 16u + 32u * c + 4u * j) >> 2u];
            s = s + vec2<i32>(
                dot4I8Packed(q & 0x0f0f0f0fu, x_word(xwa, xa, j)),
                dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, x_word(xwb, xa + 1u, j)),
            );
        }
        acc = acc + kquant_chunk(sm, xsw, xb * 8u, c, s);
    }
    return kquant_total(base, acc);
#endif
#ifdef W_Q6_K
    // Each ql, qh and scale word is read once: a half h (128 elements) takes ql words
    // 64h + 4m and 64h + 32 + 4m and qh word 32h + 4m for m = 0..7, which together hold four
    // quant words, one in each of the half's four activation blocks.
    let base = blk * 210u;
    let xsw = xs_window(xb * 8u);
    let sh = (base & 3u) * 8u;
    let i = (base + 192u) >> 2u;
    let w0 = w[i];
    let w1 = w[i + 1u];
    let w2 = w[i + 2u];
    let w3 = w[i + 3u];
    let w4 = w[i + 4u];
    let sc = vec4<u32>(shifted(w0, w1, sh), shifted(w1, w2, sh), shifted(w2, w3, sh), shifted(w3, w4, sh));
    let acc = q6k_half(base, xb * 8u, 0u, sc, xsw) + q6k_half(base, xb * 8u, 1u, sc, xsw);
    return f16_at(base + 208u) * acc;
#endif
#ifdef W_Q5_K
    let base = blk * 176u;
    let sm = scale_min_words(base + 4u);
    let xsw = xs_window(xb * 8u);
    // The 32 fifth-bit bytes serve all four chunks (bits 2c, 2c + 1): read once.
    let hw = base / 4u + 4u;
    let h_lo = vec4<u32>(w[hw], w[hw + 1u], w[hw + 2u], w[hw + 3u]);
    let h_hi = vec4<u32>(w[hw + 4u], w[hw + 5u], w[hw + 6u], w[hw + 7u]);
    var acc = vec2<f32>(0.0);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let xa = xb * 8u + 2u * c;
        let xwa = x_window(xa);
        let xwb = x_window(xa + 1u);
        var s = vec2<i32>(0);
        for (var j = 0u; j < 8u; j = j + 1u) {
            let q = w[(base + 48u + 32u * c + 4u * j) >> 2u];
            let h = select(h_lo[j % 4u], h_hi[j % 4u], j >= 4u);
            let lo = (q & 0x0f0f0f0fu) | (((h >> (2u * c)) & 0x01010101u) << 4u);
            let hi = ((q >> 4u) & 0x0f0f0f0fu) | (((h >> (2u * c + 1u)) & 0x01010101u) << 4u);
            s = s + vec2<i32>(
                dot4I8Packed(lo, x_word(xwa, xa, j)),
                dot4I8Packed(hi, x_word(xwb, xa + 1u, j)),
            );
        }
        acc = acc + kquant_chunk(sm, xsw, xb * 8u, c, s);
    }
    return kquant_total(base, acc);
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
#endif

// Four bits, one into bit 4 of each byte of a word (the fifth bit of q5 quants).
fn spread_bit4(b: u32) -> u32 {
    return ((b & 1u) << 4u) | ((b & 2u) << 11u) | ((b & 4u) << 18u) | ((b & 8u) << 25u);
}
