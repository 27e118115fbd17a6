// Element decoders for every storage dtype with a kernel: `fn dequant(e: u32) -> f32` returns
// element `e` of a row-major tensor held in the including shader's `w: array<u32>` binding.
// Included (`#include "blocks.wgsl"`), never compiled alone. Exactly one W_* define selects
// the dtype. Block layouts are ggml's (see src/ops/dequantize.rs, which pins them with size
// asserts and is the CPU reference); most blocks are not word-aligned (18, 20, 22, 34, 210
// bytes), so bytes are extracted from u32 words. Every scale product here is exact in f32,
// so results equal the f64 CPU reference bit for bit.

fn byte_at(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// The f16 at an even byte address, moved to the low half first: only `.x` of
// unpack2x16float is used, which every driver the self-test has seen gets right.
fn f16_at(b: u32) -> f32 {
    return unpack2x16float(w[b >> 2u] >> ((b & 2u) * 8u)).x;
}

// The four words of W from word i.
fn w_words(i: u32) -> vec4<u32> {
    return vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

// A byte as a signed 8-bit integer.
fn i8_of(v: u32) -> f32 {
    return f32(bitcast<i32>(v << 24u) >> 24u);
}

// The 6-bit scale (x) and min (y) of sub-block j of a q4_K/q5_K block whose 12 scale bytes
// start at byte s (4-aligned; ggml's get_scale_min_k4), without a branch on j: both sides
// of a branch run on CPU adapters, and the byte-wise form read five bytes where the three
// words hold them all.
fn scale_min_k4(j: u32, s: u32) -> vec2<f32> {
    return scale_min_of(scale_min_words(s), j);
}

// The 12 scale bytes of a q4_K/q5_K block, at 4-aligned byte s, unpacked a word at a time:
// (scales of sub-blocks 0-3, scales of 4-7, mins of 0-3, mins of 4-7), one 6-bit value per
// byte. get_scale_min_k4 for four sub-blocks at once, from three loads instead of up to 24.
fn scale_min_words(s: u32) -> vec4<u32> {
    return scale_min_unpack(w[s >> 2u], w[(s >> 2u) + 1u], w[(s >> 2u) + 2u]);
}

// The same from the three scale words a, b, c.
fn scale_min_unpack(a: u32, b: u32, c: u32) -> vec4<u32> {
    return vec4<u32>(
        a & 0x3f3f3f3fu,
        (c & 0x0f0f0f0fu) | ((a >> 2u) & 0x30303030u),
        b & 0x3f3f3f3fu,
        ((c >> 4u) & 0x0f0f0f0fu) | ((b >> 2u) & 0x30303030u),
    );
}

// Scale (x) and min (y) of sub-block j, from scale_min_words.
fn scale_min_of(words: vec4<u32>, j: u32) -> vec2<f32> {
    let shift = 8u * (j % 4u);
    let upper = j >= 4u;
    return vec2<f32>(
        f32((select(words.x, words.y, upper) >> shift) & 0xffu),
        f32((select(words.z, words.w, upper) >> shift) & 0xffu),
    );
}

#ifdef W_F8_E4M3
#include "fp8.wgsl"
#endif
#ifdef W_F8_E5M2
#include "fp8.wgsl"
#endif

#ifdef W_NF4
// Code c (0..16) of bitsandbytes' NF4 code book, by a tree of selects over constants: a table
// indexed at run time (var<private>) is a per-lane stack array on CPU adapters and
// thread-local memory on GPUs, where these are 15 register selects.
fn nf4(c: u32) -> f32 {
    let quarters = array<vec4<f32>, 4>(
        vec4<f32>(-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453),
        vec4<f32>(-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0),
        vec4<f32>(0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224),
        vec4<f32>(0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0),
    );
    let b2 = (c & 4u) != 0u;
    let q = select(select(quarters[0], quarters[1], b2), select(quarters[2], quarters[3], b2), c >= 8u);
    let pair = select(q.xy, q.zw, (c & 2u) != 0u);
    return select(pair.x, pair.y, (c & 1u) != 0u);
}

#ifdef NF4_BOOK
// The code book held across a subgroup (NF4_BOOK: layouts where every lane runs and the
// subgroup has at least eight lanes): lane l of each eight keeps entries l and l + 8.
fn nf4_book_of(l: u32) -> vec2<f32> {
    return vec2<f32>(nf4(l), nf4(l + 8u));
}

// The codes in c (one per component) looked up in the book: each entry arrives by a shuffle
// from the lane that holds it. On lavapipe a shuffle by a per-lane index is a vector permute,
// where the select tree `nf4` costs 15 blends per code: a probe of nf4's GEMV loop ran 2x
// faster with it (session 8).
fn nf4_lookup(book: vec2<f32>, c: vec4<u32>) -> vec4<f32> {
    let i = c & vec4<u32>(7u);
    let lo = vec4<f32>(
        subgroupShuffle(book.x, i.x), subgroupShuffle(book.x, i.y),
        subgroupShuffle(book.x, i.z), subgroupShuffle(book.x, i.w),
    );
    let hi = vec4<f32>(
        subgroupShuffle(book.y, i.x), subgroupShuffle(book.y, i.y),
        subgroupShuffle(book.y, i.z), subgroupShuffle(book.y, i.w),
    );
    return select(lo, hi, c >= vec4<u32>(8u));
}
#endif
#endif

fn dequant(e: u32) -> f32 {
#ifdef W_F32
    return bitcast<f32>(w[e]);
#endif
#ifdef W_F16
    return f16_at(e * 2u);
#endif
#ifdef W_BF16
    let word = w[e >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (e & 1u) == 1u));
#endif
#ifdef W_F8_E5M2
    return fp8(byte_at(e));
#endif
#ifdef W_F8_E4M3
    return fp8(byte_at(e));
#endif
#ifdef W_Q8_0
    let base = (e / 32u) * 34u;
    return f16_at(base) * i8_of(byte_at(base + 2u + e % 32u));
#endif
#ifdef W_Q4_0
    let base = (e / 32u) * 18u;
    let j = e % 32u;
    let q = byte_at(base + 2u + j % 16u) >> (4u * (j / 16u));
    return f16_at(base) * (f32(q & 0xfu) - 8.0);
#endif
#ifdef W_Q4_1
    let base = (e / 32u) * 20u;
    let j = e % 32u;
    let q = byte_at(base + 4u + j % 16u) >> (4u * (j / 16u));
    return f16_at(base) * f32(q & 0xfu) + f16_at(base + 2u);
#endif
#ifdef W_Q5_0
    let base = (e / 32u) * 22u;
    let j = e % 32u;
    let hbit = (byte_at(base + 2u + j / 8u) >> (j % 8u)) & 1u;
    let q = ((byte_at(base + 6u + j % 16u) >> (4u * (j / 16u))) & 0xfu) | (hbit << 4u);
    return f16_at(base) * (f32(q) - 16.0);
#endif
#ifdef W_Q5_1
    let base = (e / 32u) * 24u;
    let j = e % 32u;
    let hbit = (byte_at(base + 4u + j / 8u) >> (j % 8u)) & 1u;
    let q = ((byte_at(base + 8u + j % 16u) >> (4u * (j / 16u))) & 0xfu) | (hbit << 4u);
    return f16_at(base) * f32(q) + f16_at(base + 2u);
#endif
#ifdef W_Q4_K
    let base = (e / 256u) * 144u;
    let j = e % 256u;
    let chunk = j / 64u;
    let upper = (j % 64u) / 32u;
    let l = j % 32u;
    let sm = scale_min_k4(2u * chunk + upper, base + 4u);
    let q = (byte_at(base + 16u + 32u * chunk + l) >> (4u * upper)) & 0xfu;
    return f16_at(base) * sm.x * f32(q) - f16_at(base + 2u) * sm.y;
#endif
#ifdef W_Q5_K
    let base = (e / 256u) * 176u;
    let j = e % 256u;
    let chunk = j / 64u;
    let upper = (j % 64u) / 32u;
    let l = j % 32u;
    let sub = 2u * chunk + upper;
    let sm = scale_min_k4(sub, base + 4u);
    let hbit = (byte_at(base + 16u + l) >> sub) & 1u;
    let q = ((byte_at(base + 48u + 32u * chunk + l) >> (4u * upper)) & 0xfu) + 16u * hbit;
    return f16_at(base) * sm.x * f32(q) - f16_at(base + 2u) * sm.y;
#endif
#ifdef W_Q6_K
    let base = (e / 256u) * 210u;
    let j = e % 256u;
    let half = j / 128u;
    let quarter = (j % 128u) / 32u;
    let l = j % 32u;
    let low = (byte_at(base + 64u * half + l + 32u * (quarter & 1u)) >> (4u * (quarter / 2u))) & 0xfu;
    let high = (byte_at(base + 128u + 32u * half + l) >> (2u * quarter)) & 3u;
    let scale = i8_of(byte_at(base + 192u + 8u * half + l / 16u + 2u * quarter));
    return f16_at(base + 208u) * scale * (f32(low | (high << 4u)) - 32.0);
#endif
#ifdef W_NF4
    let base = (e / 64u) * 36u;
    let j = e % 64u;
    let code = (byte_at(base + 4u + j / 2u) >> (4u * (1u - j % 2u))) & 0xfu;
    return nf4(code) * bitcast<f32>(w[base / 4u]);
#endif
}

// Four bytes starting at byte b (any alignment), as one little-endian word.
fn word_at(b: u32) -> u32 {
    // Both words and a select, no branch: on CPU adapters both sides of a branch run
    // (masked), so the branchy form cost three loads. The second word is clamped to the
    // buffer, so a word at its very end never reads past it (and is then not used).
    let i = b >> 2u;
    return shifted(w[i], w[min(i + 1u, arrayLength(&w) - 1u)], (b & 3u) * 8u);
}

// Four bits, one into bit 4 of each byte of a word (the fifth bit of q5 quants).
fn spread_bit4(b: u32) -> u32 {
    return ((b & 1u) << 4u) | ((b & 2u) << 11u) | ((b & 4u) << 18u) | ((b & 8u) << 25u);
}

// The words that start halfway through each word of `lo` and end halfway through the word
// after it, which `hi` holds (hi = lo shifted by one word).
fn mid_words(lo: vec4<u32>, hi: vec4<u32>) -> vec4<u32> {
    return (lo >> vec4<u32>(16u)) | (hi << vec4<u32>(16u));
}

// The word that starts halfway through word a and ends halfway through the next one, b.
fn mid_word(a: u32, b: u32) -> u32 {
    return (a >> 16u) | (b << 16u);
}

// The four words that start `o` words (0..4) into a and continue into b.
fn words_from(a: vec4<u32>, b: vec4<u32>, o: u32) -> vec4<u32> {
    let one = vec4<u32>(a.yzw, b.x);
    let two = vec4<u32>(a.zw, b.xy);
    let three = vec4<u32>(a.w, b.xyz);
    return select(select(select(select(b, three, o == 3u), two, o == 2u), one, o == 1u), a, o == 0u);
}

// The 16 bytes that start `o` words and `half` half-words into vector a (continuing into b):
// for data at an even byte address read as 16-byte vectors (a q6_k block starts 2j bytes
// into its first vector, for block j of its group of eight).
fn realigned(a: vec4<u32>, b: vec4<u32>, o: u32, half: bool) -> vec4<u32> {
    let whole = words_from(a, b, o);
    return select(whole, mid_words(whole, words_from(a, b, o + 1u)), half);
}

// The word that starts `sh` bits (0, 8, 16 or 24) into word `lo` and continues into `hi`.
fn shifted(lo: u32, hi: u32, sh: u32) -> u32 {
    return select((lo >> sh) | (hi << ((32u - sh) & 31u)), lo, sh == 0u);
}

// The four bytes of a word as a vec4 of their low `bits` bits.
fn bytes4(q: u32, mask: u32) -> vec4<f32> {
    return vec4<f32>(f32(q & mask), f32((q >> 8u) & mask), f32((q >> 16u) & mask), f32((q >> 24u) & mask));
}

#ifdef BLOCKWISE
// Whole-block dot products for GEMV: each invocation decodes a block once (scales read once,
// quants four at a time from u32 words) instead of element by element. `x_at(k)` is element
// k of the activation row, provided by the including shader. Sums are formed as
// d · Σ(q·x) (and − dmin·m · Σx for k-quants): a different rounding order from the
// element-wise path, well inside the f32 matmul budget.

#ifdef W_Q8_0
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 34u;
    var s = 0.0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let q = word_at(base + 2u + 4u * j);
        let k = k0 + 4u * j;
        s = s + i8_of(q) * x_at(k) + i8_of(q >> 8u) * x_at(k + 1u)
              + i8_of(q >> 16u) * x_at(k + 2u) + i8_of(q >> 24u) * x_at(k + 3u);
    }
    return f16_at(base) * s;
}
#endif

#ifdef W_Q4_0
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 18u;
    var s = 0.0;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let q = word_at(base + 2u + 4u * j);
        for (var b = 0u; b < 4u; b = b + 1u) {
            let byte = (q >> (8u * b)) & 0xffu;
            let k = k0 + 4u * j + b;
            s = s + (f32(byte & 0xfu) - 8.0) * x_at(k) + (f32(byte >> 4u) - 8.0) * x_at(k + 16u);
        }
    }
    return f16_at(base) * s;
}
#endif

#ifdef W_Q4_1
// d·q + m per element: d·Σ(q·x) + m·Σx.
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 20u; // a multiple of 4: quants are word-aligned
    var qx = 0.0;
    var sx = 0.0;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let q = w[(base + 4u + 4u * j) >> 2u];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let byte = (q >> (8u * b)) & 0xffu;
            let k = k0 + 4u * j + b;
            let xl = x_at(k);
            let xh = x_at(k + 16u);
            qx = qx + f32(byte & 0xfu) * xl + f32(byte >> 4u) * xh;
            sx = sx + xl + xh;
        }
    }
    return f16_at(base) * qx + f16_at(base + 2u) * sx;
}
#endif

#ifdef W_Q5_0
// Bit i of the 32-bit qh is the fifth bit of element i.
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 22u;
    let qh = word_at(base + 2u);
    var s = 0.0;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let q = word_at(base + 6u + 4u * j);
        for (var b = 0u; b < 4u; b = b + 1u) {
            let i = 4u * j + b;
            let byte = (q >> (8u * b)) & 0xffu;
            let lo = (byte & 0xfu) | (((qh >> i) & 1u) << 4u);
            let hi = (byte >> 4u) | (((qh >> (i + 16u)) & 1u) << 4u);
            s = s + (f32(lo) - 16.0) * x_at(k0 + i) + (f32(hi) - 16.0) * x_at(k0 + i + 16u);
        }
    }
    return f16_at(base) * s;
}
#endif

#ifdef W_Q5_1
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 24u; // a multiple of 4
    let qh = w[(base + 4u) >> 2u];
    var qx = 0.0;
    var sx = 0.0;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let q = w[(base + 8u + 4u * j) >> 2u];
        for (var b = 0u; b < 4u; b = b + 1u) {
            let i = 4u * j + b;
            let byte = (q >> (8u * b)) & 0xffu;
            let lo = (byte & 0xfu) | (((qh >> i) & 1u) << 4u);
            let hi = (byte >> 4u) | (((qh >> (i + 16u)) & 1u) << 4u);
            let xl = x_at(k0 + i);
            let xh = x_at(k0 + i + 16u);
            qx = qx + f32(lo) * xl + f32(hi) * xh;
            sx = sx + xl + xh;
        }
    }
    return f16_at(base) * qx + f16_at(base + 2u) * sx;
}
#endif

#ifdef W_Q5_K
// As q4_K, with a fifth bit per element from qh (byte l, bit = sub-block index).
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 176u; // a multiple of 4
    var scaled = 0.0;
    var mins = 0.0;
    // Every sub-block's scale and min from one read of the three scale words.
    let sm = scale_min_words(base + 4u);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let sm_lo = scale_min_of(sm, 2u * c);
        let sm_hi = scale_min_of(sm, 2u * c + 1u);
        var qx_lo = 0.0;
        var qx_hi = 0.0;
        var x_lo = 0.0;
        var x_hi = 0.0;
        for (var j = 0u; j < 8u; j = j + 1u) {
            let q = w[(base + 48u + 32u * c + 4u * j) >> 2u];
            let h = w[(base + 16u + 4u * j) >> 2u];
            for (var b = 0u; b < 4u; b = b + 1u) {
                let byte = (q >> (8u * b)) & 0xffu;
                let hb = (h >> (8u * b)) & 0xffu;
                let k = k0 + 64u * c + 4u * j + b;
                let xl = x_at(k);
                let xh = x_at(k + 32u);
                qx_lo = qx_lo + f32((byte & 0xfu) + 16u * ((hb >> (2u * c)) & 1u)) * xl;
                qx_hi = qx_hi + f32((byte >> 4u) + 16u * ((hb >> (2u * c + 1u)) & 1u)) * xh;
                x_lo = x_lo + xl;
                x_hi = x_hi + xh;
            }
        }
        scaled = scaled + sm_lo.x * qx_lo + sm_hi.x * qx_hi;
        mins = mins + sm_lo.y * x_lo + sm_hi.y * x_hi;
    }
    return f16_at(base) * scaled - f16_at(base + 2u) * mins;
}
#endif

#ifdef W_Q6_K
// 16 elements share an int8 scale: each group's Σ (q - 32)·x is scaled once.
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 210u;
    var s = 0.0;
    for (var h = 0u; h < 2u; h = h + 1u) {
        for (var qt = 0u; qt < 4u; qt = qt + 1u) {
            for (var g = 0u; g < 2u; g = g + 1u) {
                var part = 0.0;
                for (var wj = 0u; wj < 4u; wj = wj + 1u) {
                    let l = 16u * g + 4u * wj;
                    let lw = word_at(base + 64u * h + 32u * (qt & 1u) + l);
                    let hw = word_at(base + 128u + 32u * h + l);
                    for (var b = 0u; b < 4u; b = b + 1u) {
                        let low = (lw >> (8u * b + 4u * (qt / 2u))) & 0xfu;
                        let high = (hw >> (8u * b + 2u * qt)) & 3u;
                        part = part + (f32(low | (high << 4u)) - 32.0) * x_at(k0 + 128u * h + 32u * qt + l + b);
                    }
                }
                s = s + i8_of(byte_at(base + 192u + 8u * h + g + 2u * qt)) * part;
            }
        }
    }
    return f16_at(base + 208u) * s;
}
#endif

#ifdef W_NF4
// Codes high nibble first; one absmax per block.
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 36u; // a multiple of 4
    var s = 0.0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let q = w[(base + 4u) / 4u + j];
        // Word j's eight codes meet activations k..k+8, from one window (x_window8, gemv.wgsl).
        let k = k0 + 8u * j;
        let xw = x_window8(k);
        for (var b = 0u; b < 4u; b = b + 1u) {
            let byte = (q >> (8u * b)) & 0xffu;
            s = s + nf4(byte >> 4u) * x_from8(xw, k, 2u * b)
                + nf4(byte & 0xfu) * x_from8(xw, k, 2u * b + 1u);
        }
    }
    return bitcast<f32>(w[base / 4u]) * s;
}
#endif

#ifdef W_Q4_K
fn block_dot(blk: u32, k0: u32) -> f32 {
    let base = blk * 144u; // a multiple of 4: quants are word-aligned
    var scaled = 0.0; // Σ sc · Σ(q·x)
    var mins = 0.0; // Σ m · Σx
    // Every sub-block's scale and min from one read of the three scale words.
    let sm = scale_min_words(base + 4u);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let sm_lo = scale_min_of(sm, 2u * c);
        let sm_hi = scale_min_of(sm, 2u * c + 1u);
        var qx_lo = 0.0;
        var qx_hi = 0.0;
        var x_lo = 0.0;
        var x_hi = 0.0;
        for (var j = 0u; j < 8u; j = j + 1u) {
            let q = w[(base + 16u + 32u * c + 4u * j) >> 2u];
            for (var b = 0u; b < 4u; b = b + 1u) {
                let byte = (q >> (8u * b)) & 0xffu;
                let k = k0 + 64u * c + 4u * j + b;
                let xl = x_at(k);
                let xh = x_at(k + 32u);
                qx_lo = qx_lo + f32(byte & 0xfu) * xl;
                qx_hi = qx_hi + f32(byte >> 4u) * xh;
                x_lo = x_lo + xl;
                x_hi = x_hi + xh;
            }
        }
        scaled = scaled + sm_lo.x * qx_lo + sm_hi.x * qx_hi;
        mins = mins + sm_lo.y * x_lo + sm_hi.y * x_hi;
    }
    return f16_at(base) * scaled - f16_at(base + 2u) * mins;
}
#endif
#endif

#ifdef UNITWISE
// Block decoding shared by the invocations of a row (workgroup and subgroup layouts, GPUs):
// a block splits into UNITS units of one quant word each (the k-quants decoded to f32: of
// 16 quant bytes, KQUANT_UNIT16), and invocation i takes units
// i, i + T, … across the row, so neighbouring invocations read neighbouring words (coalesced)
// and each reads its scales once per unit instead of once per element. A unit is split in
// two: `unit_x(u, k0)`, the activations unit u of a block whose first element is activation
// k0 meets (up to two aligned vec4<f32>, `x4_at` in gemv.wgsl), and `unit_dot_x(blk, u, ux)`,
// its weights in block blk against them — so that an invocation computing several rows
// (ROWS_PER_INVOCATION) loads each activation once for all of them. Measured on an H200,
// scalar activation loads spread over eight blocks per subgroup made the L1 requests, not
// DRAM, the limit (q4_0 at 8% of the streaming-read rate).
//
// With INT_DOT, int_dot.wgsl's `int_dot_unit` replaces these (every dtype with an int-dot kernel).

// The quants of quant word u of a q5_0/q5_1 block, one per byte, the fifth bits from qh:
// elements 4u..4u+4 (low nibbles; bits 4u.. of qh) and 16+4u.. (high; bits 16+4u..). Shared
// by the f32-decode and int-dot units.
fn q5_quants(q: u32, qh: u32, u: u32) -> vec2<u32> {
    return vec2<u32>(
        (q & 0x0f0f0f0fu) | spread_bit4(qh >> (4u * u)),
        ((q >> 4u) & 0x0f0f0f0fu) | spread_bit4(qh >> (16u + 4u * u)),
    );
}

// The quants of a q5_k quant word q of chunk c, one per byte, the fifth bits from qh word h:
// sub-block 2c (low nibbles; bit 2c of each byte of h) and 2c + 1 (high; bit 2c + 1).
fn q5k_quants(q: u32, h: u32, c: u32) -> vec2<u32> {
    return vec2<u32>(
        (q & 0x0f0f0f0fu) | (((h >> (2u * c)) & 0x01010101u) << 4u),
        ((q >> 4u) & 0x0f0f0f0fu) | (((h >> (2u * c + 1u)) & 0x01010101u) << 4u),
    );
}

#ifndef INT_DOT
#ifdef KQUANT_UNIT16
// The k-quants with f32 decoding (KQUANT_UNIT16): a unit is 16 quant bytes, 16 weights each
// of two scale groups, so its scales are decoded once per 32 weights. q4_k / q5_k: half a
// 64-element chunk, low nibbles in sub-block 2c and high nibbles in 2c + 1. q6_k: 16 of the
// ql bytes and the 16 qh bytes beside them, quarters q and q + 2 of a half. A unit of one
// quant word decoded the scales (q4_k/q5_k: three words, two 6-bit unpacks) once per 8
// weights, and q6_k's read six words per 4: the H200 (session 11) ran these GEMVs at 10-20%
// of its streaming-read rate.
// `lo` holds the first group's 16 activations (a vec4 per column), `hi` the second's.
struct UnitX {
    lo: mat4x4<f32>,
    hi: mat4x4<f32>,
}

// Activations k..k+16 and k2..k2+16.
fn x16_pair(k: u32, k2: u32) -> UnitX {
    return UnitX(
        mat4x4<f32>(x4_at(k), x4_at(k + 4u), x4_at(k + 8u), x4_at(k + 12u)),
        mat4x4<f32>(x4_at(k2), x4_at(k2 + 4u), x4_at(k2 + 8u), x4_at(k2 + 12u)),
    );
}

// q4_k / q5_k unit u's activations: elements 64c + 16h.. of the chunk (c = u / 2, h = u % 2)
// and the same 32 further on.
fn kquant_x16(u: u32, k0: u32) -> UnitX {
    let k = k0 + 64u * (u / 2u) + 16u * (u % 2u);
    return x16_pair(k, k + 32u);
}

// Σ of the bytes of q (one quant each) times the activations of m, column by column.
fn quant_dot16(q: vec4<u32>, m: mat4x4<f32>) -> f32 {
    return dot(bytes4(q.x, 0xffu), m[0]) + dot(bytes4(q.y, 0xffu), m[1])
        + dot(bytes4(q.z, 0xffu), m[2]) + dot(bytes4(q.w, 0xffu), m[3]);
}

// Σ of m's sixteen activations.
fn sum16(m: mat4x4<f32>) -> f32 {
    return dot(m[0] + m[1] + m[2] + m[3], vec4<f32>(1.0));
}

// Chunk c's half of the q4_k / q5_k block at byte `base` (scales at base + 4): quants `lo`
// (sub-block 2c) and `hi` (2c + 1), one per byte, against ux.
fn kquant_unit16(base: u32, c: u32, lo: vec4<u32>, hi: vec4<u32>, ux: UnitX) -> f32 {
    let sm = scale_min_words(base + 4u);
    let sm_lo = scale_min_of(sm, 2u * c);
    let sm_hi = scale_min_of(sm, 2u * c + 1u);
    return f16_at(base) * (sm_lo.x * quant_dot16(lo, ux.lo) + sm_hi.x * quant_dot16(hi, ux.hi))
        - f16_at(base + 2u) * (sm_lo.y * sum16(ux.lo) + sm_hi.y * sum16(ux.hi));
}
#else
// A unit's activations: `a` and, for units of two activation runs, `b`.
struct UnitX {
    a: vec4<f32>,
    b: vec4<f32>,
}

// The four bytes of a word as signed 8-bit integers, in f32.
fn i8x4(q: u32) -> vec4<f32> {
    let v = vec4<i32>(bitcast<i32>(q << 24u), bitcast<i32>(q << 16u), bitcast<i32>(q << 8u), bitcast<i32>(q));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// Σ of a vector's four elements.
fn sum_of(v: vec4<f32>) -> f32 {
    return dot(v, vec4<f32>(1.0));
}

// Activations k..k+4 and k2..k2+4.
fn x_pair(k: u32, k2: u32) -> UnitX {
    return UnitX(x4_at(k), x4_at(k2));
}

// q4_0 / q4_1 / q5_0 / q5_1 unit u (quant word u): low nibbles are elements 4u.. of the
// block, high nibbles the same 16 further on.
fn nibble_x(u: u32, k0: u32) -> UnitX {
    return x_pair(k0 + 4u * u, k0 + 16u + 4u * u);
}
#endif
#endif

#ifdef W_Q8_0
const UNITS: u32 = 8u; // 4 quants each
#ifndef INT_DOT
fn unit_x(u: u32, k0: u32) -> UnitX {
    return UnitX(x4_at(k0 + 4u * u), vec4<f32>(0.0));
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 34u;
    return f16_at(base) * dot(i8x4(word_at(base + 2u + 4u * u)), ux.a);
}
#endif
#endif

#ifdef W_Q4_0
const UNITS: u32 = 4u; // 4 bytes: elements 4u..4u+4 (low nibbles) and 16+4u.. (high)
#ifndef INT_DOT
fn unit_x(u: u32, k0: u32) -> UnitX {
    return nibble_x(u, k0);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 18u;
    let q = word_at(base + 2u + 4u * u);
    return f16_at(base) * (dot(bytes4(q, 0xfu) - 8.0, ux.a) + dot(bytes4(q >> 4u, 0xfu) - 8.0, ux.b));
}
#endif
#endif

#ifdef W_Q4_1
const UNITS: u32 = 4u; // as q4_0; d·Σ(q·x) + m·Σx
#ifndef INT_DOT
fn unit_x(u: u32, k0: u32) -> UnitX {
    return nibble_x(u, k0);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 20u; // a multiple of 4
    let q = w[(base + 4u + 4u * u) >> 2u];
    return f16_at(base) * (dot(bytes4(q, 0xfu), ux.a) + dot(bytes4(q >> 4u, 0xfu), ux.b))
        + f16_at(base + 2u) * (sum_of(ux.a) + sum_of(ux.b));
}
#endif
#endif

#ifdef W_Q5_0
const UNITS: u32 = 4u; // as q4_0, with fifth bits 4u..4u+4 and 16+4u.. of qh
#ifndef INT_DOT
fn unit_x(u: u32, k0: u32) -> UnitX {
    return nibble_x(u, k0);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 22u;
    let qh = word_at(base + 2u);
    let q = word_at(base + 6u + 4u * u);
    let quants = q5_quants(q, qh, u);
    return f16_at(base) * (dot(bytes4(quants.x, 0xffu) - 16.0, ux.a) + dot(bytes4(quants.y, 0xffu) - 16.0, ux.b));
}
#endif
#endif

#ifdef W_Q5_1
const UNITS: u32 = 4u;
#ifndef INT_DOT
fn unit_x(u: u32, k0: u32) -> UnitX {
    return nibble_x(u, k0);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 24u; // a multiple of 4
    let qh = w[(base + 4u) >> 2u];
    let q = w[(base + 8u + 4u * u) >> 2u];
    let quants = q5_quants(q, qh, u);
    return f16_at(base) * (dot(bytes4(quants.x, 0xffu), ux.a) + dot(bytes4(quants.y, 0xffu), ux.b))
        + f16_at(base + 2u) * (sum_of(ux.a) + sum_of(ux.b));
}
#endif
#endif

#ifdef W_Q4_K
#ifdef KQUANT_UNIT16
const UNITS: u32 = 8u; // 16 of the 128 quant bytes (KQUANT_UNIT16 above)

fn unit_x(u: u32, k0: u32) -> UnitX {
    return kquant_x16(u, k0);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 144u;
    let q = w_words((base + 16u + 16u * u) >> 2u);
    let m = vec4<u32>(0x0f0f0f0fu);
    return kquant_unit16(base, u / 2u, q & m, (q >> vec4<u32>(4u)) & m, ux);
}
#else
// The int-dot units (int_dot.wgsl's int_dot_unit): a word of the 128 quant bytes, 4 low- and
// 4 high-nibble elements. (Every f32-decode unit is KQUANT_UNIT16's.)
const UNITS: u32 = 32u;
#endif
#endif

#ifdef W_Q5_K
#ifdef KQUANT_UNIT16
const UNITS: u32 = 8u; // as q4_k's, with the fifth bits of the 16 qh bytes alongside

fn unit_x(u: u32, k0: u32) -> UnitX {
    return kquant_x16(u, k0);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 176u;
    let c = u / 2u;
    let q = w_words((base + 48u + 16u * u) >> 2u);
    // qh byte l holds bit 2c (sub-block 2c) and 2c + 1 of element l of the chunk.
    let h = w_words((base + 16u + 16u * (u % 2u)) >> 2u);
    let m = vec4<u32>(0x0f0f0f0fu);
    let one = vec4<u32>(0x01010101u);
    let lo = (q & m) | (((h >> vec4<u32>(2u * c)) & one) << vec4<u32>(4u));
    let hi = ((q >> vec4<u32>(4u)) & m) | (((h >> vec4<u32>(2u * c + 1u)) & one) << vec4<u32>(4u));
    return kquant_unit16(base, c, lo, hi, ux);
}
#else
// The int-dot units: as q4_k's, with the fifth bits of qh byte l (bit = sub-block).
const UNITS: u32 = 32u;
#endif
#endif

#ifdef W_Q6_K
#ifdef KQUANT_UNIT16
// Unit u: half h = u / 4, quarters q = (u / 2) % 2 and q + 2, elements l0 = 16 (u % 2)..+16
// of each: ql bytes 64h + 32q + l0.. (low nibbles quarter q, high nibbles q + 2) and qh bytes
// 32h + l0.. (bits 2q and 2q + 4), each quarter's 16 elements under one int8 scale.
const UNITS: u32 = 8u;

fn unit_x(u: u32, k0: u32) -> UnitX {
    let k = k0 + 128u * (u / 4u) + 32u * ((u / 2u) % 2u) + 16u * (u % 2u);
    return x16_pair(k, k + 64u);
}

// The 16 bytes at an even byte address b (q6_k blocks are 210 bytes: half start mid-word).
fn bytes16_at(b: u32) -> vec4<u32> {
    let a = w_words(b >> 2u);
    let e = w[min((b >> 2u) + 4u, arrayLength(&w) - 1u)];
    return select(a, mid_words(a, vec4<u32>(a.yzw, e)), (b & 2u) != 0u);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 210u;
    let h = u / 4u;
    let q = (u / 2u) % 2u;
    let l0 = 16u * (u % 2u);
    let ql = bytes16_at(base + 64u * h + 32u * q + l0);
    let qh = bytes16_at(base + 128u + 32u * h + l0);
    let m = vec4<u32>(0x0f0f0f0fu);
    let two = vec4<u32>(0x03030303u);
    let lo = (ql & m) | (((qh >> vec4<u32>(2u * q)) & two) << vec4<u32>(4u));
    let hi = ((ql >> vec4<u32>(4u)) & m) | (((qh >> vec4<u32>(2u * q + 4u)) & two) << vec4<u32>(4u));
    let sc = base + 192u + 8u * h + l0 / 16u + 2u * q;
    return f16_at(base + 208u)
        * (i8_of(byte_at(sc)) * (quant_dot16(lo, ux.lo) - 32.0 * sum16(ux.lo))
            + i8_of(byte_at(sc + 4u)) * (quant_dot16(hi, ux.hi) - 32.0 * sum16(ux.hi)));
}
#else
// The int-dot units: 4 consecutive elements of one (half, quarter) group, one scale.
const UNITS: u32 = 64u;
#endif
#endif

#ifdef W_NF4
const UNITS: u32 = 8u; // a word: 8 codes, high nibble first

// The code book in workgroup memory: a subgroup's lanes look codes up at random, and a
// per-invocation table (var<private>, indexed at run time) lived in slow thread-local memory
// on GPUs (an H200 ran nf4 at 2-3% of the streaming-read rate with it); a lookup here is one
// conflict-free access (sixteen words in sixteen banks) where `nf4` is 15 selects.
var<workgroup> nf4_shared: array<f32, 16>;

fn share_tables(lid: u32) {
    if (lid < 16u) {
        nf4_shared[lid] = nf4(lid);
    }
    workgroupBarrier();
}

fn unit_x(u: u32, k0: u32) -> UnitX {
    return x_pair(k0 + 8u * u, k0 + 8u * u + 4u);
}

fn unit_dot_x(blk: u32, u: u32, ux: UnitX) -> f32 {
    let base = blk * 36u; // a multiple of 4
    let q = w[base / 4u + 1u + u];
    let a = vec4<f32>(nf4_shared[(q >> 4u) & 0xfu], nf4_shared[q & 0xfu], nf4_shared[(q >> 12u) & 0xfu], nf4_shared[(q >> 8u) & 0xfu]);
    let b = vec4<f32>(nf4_shared[(q >> 20u) & 0xfu], nf4_shared[(q >> 16u) & 0xfu], nf4_shared[q >> 28u], nf4_shared[(q >> 24u) & 0xfu]);
    return bitcast<f32>(w[base / 4u]) * (dot(a, ux.a) + dot(b, ux.b));
}
#else
// Lookup tables the unit decoders keep in workgroup memory (nf4's code book): none here.
fn share_tables(lid: u32) {}
#endif
#endif
