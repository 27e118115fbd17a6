// GEMV: y[r] = sum_k W[r, k] * x[k] for a row-major W of `rows` x `cols`.
//
// W stays in its storage dtype and is dequantized in registers:
//   W_F32   one f32 per u32 word
//   W_F16   two f16 per word, low half first (little-endian)
//   W_BF16  two bf16 per word; WGSL has no bf16, so a bf16 is the high 16 bits of an f32
//   W_FP8   (with W_F8_E4M3 or W_F8_E5M2) four fp8 per word, low byte first (fp8.wgsl)
// COMPUTE_F16 multiplies in f16 (`enable f16;`, needs shader-f16); otherwise f32.
// Sums are f32, or f16 with ACCUM_F16 (needs shader-f16): the third precision level, there to
// be measured against f32 (tests/gemv.rs reports the difference).
// Outputs go to y[row_offset + row] (a part of a row-split tensor starts at its own buffer's
// byte 0), plus bias[row_offset + row] when has_bias is set.
// ELEMENTWISE (the block dtypes: quantized and nf4, every dtype blocks.wgsl decodes but the
// word-wise ones) decodes through blocks.wgsl, in one of two ways (or int_dot.wgsl's):
// UNITWISE (every block dtype with a workgroup or subgroup per row, f32-decode and int-dot):
// the row's invocations share each block a quant word apart (`unit_dot_x` in blocks.wgsl,
// `int_dot_unit` in int_dot.wgsl), and read x as vec4<f32> (`x4_at`) or quantized words.
// BLOCKWISE (block dtypes, one invocation per row, f32 decode): invocations take whole blocks
// (`block_dot` in blocks.wgsl), reading scales once and quants a word at a time; the unit of
// work is a block.
// VEC4 (f32/f16/bf16/fp8, when a row is a whole number of 16-byte units): W is read as
// vec4<u32> (4 f32, 8 f16/bf16 or 16 fp8; mat2x4<f16> with COMPUTE_F16) and x as vec4<f32>.
// W_U64 (the REDUCE_SERIAL_SHUFFLE readers: VEC4 with f32 compute, the int-dot 16-byte
// readers, nf4's; needs shader-int64): W and x are read 32 bytes per load, as vec4<u64>, and
// taken apart into 16-byte vectors in registers (u64.wgsl's half_of). CPU adapters turn every
// load into a loop over their SIMD lanes with a bounds check per component, so the wider load
// moves twice the bytes for about the same cost (lavapipe's streaming read: 18.1 GB/s against
// 10.8). VEC4 reads x in windows of 64 (a lane's 32 bytes); the group readers take a group's
// vectors two per load (group_loadsN).
// Row layout (REDUCE_*): ROWS_PER_WG rows per workgroup, THREADS_PER_ROW = WG_SIZE /
// ROWS_PER_WG invocations sharing each row (a power of two).
//   REDUCE_SERIAL     one invocation per row (CPU adapters; THREADS_PER_ROW = 1)
//   REDUCE_WORKGROUP  tree reduction of each row's invocations in workgroup memory
//   REDUCE_SUBGROUP   one subgroup per row (or per ROWS_PER_INVOCATION rows, 2 or 4, each
//                     activation load serving all of them: UNROLLED f32-decode paths, raced
//                     on GPUs), subgroupAdd; chosen only where the adapter's
//                     subgroup size is fixed and equals THREADS_PER_ROW
//   REDUCE_SERIAL_SHUFFLE  one invocation per row, as REDUCE_SERIAL, but x is read in
//                     windows of eight units, one unit per lane, and handed between lanes by
//                     subgroupShuffle (VEC4 and INT_DOT; rows a multiple of 32 elements;
//                     subgroups of at least eight). On CPU adapters a load of the same x[k] by
//                     every lane is still one load per lane: this removes seven of eight.
// INT_DOT_VEC4 (int-dot with one invocation per row, where what it reads starts on 16-byte
//   boundaries: KernelKey::for_cols): the weights and quantized activations are bound a
//   second time as array<vec4<u32>> (bindings 6, 7) and read 16 bytes per load, realigned in
//   registers (int_dot.wgsl).
// Driver workarounds (from the self-test): F16_UNPACK_HI_VIA_SHIFT.
// With COMPUTE_F16, f16 weights are bound as array<vec2<f16>> (same bytes, one pair per
// word): naga 30 mistypes `bitcast<vec2<f16>>(u32)` as f32, so that route is closed.
//
// W is read as u32 words, so rows need not start on a word boundary: with f16/bf16 and an
// odd `cols`, the first and last word of a row can hold an element of a neighbouring row,
// which is masked out. Workgroups beyond 65,535 are laid out in 2D (groups_x per row of the
// grid).

#ifdef COMPUTE_F16
enable f16;
#else
#ifdef ACCUM_F16
enable f16;
#endif
#endif

#ifdef ACCUM_F16
alias acc_t = f16;
#else
alias acc_t = f32;
#endif

#ifdef W_U64
#include "u64.wgsl"
#endif

#ifdef ELEMENTWISE
#include "blocks.wgsl"

#ifndef INT_DOT
#ifdef UNITWISE
// Activations k..k+4 (k a multiple of 4): the unit decoders of the GPU layouts read x 16
// bytes at a time, so that a subgroup's loads are whole 512-byte spans.
fn x4_at(k: u32) -> vec4<f32> {
    return x[k >> 2u];
}
#else
// Element k of the activation row (blocks.wgsl's whole-block dot products read x this way).
fn x_at(k: u32) -> f32 {
    return x[k];
}

// Activations k..k+8, one per lane (REDUCE_SERIAL_SHUFFLE; nothing otherwise): `x_from8`
// hands element k + i of them to every lane (nf4's block_dot).
fn x_window8(k: u32) -> f32 {
#ifdef REDUCE_SERIAL_SHUFFLE
    return x[k + lane8];
#else
    return 0.0;
#endif
}

fn x_from8(window: f32, k: u32, i: u32) -> f32 {
#ifdef REDUCE_SERIAL_SHUFFLE
    return subgroupShuffle(window, i);
#else
    return x[k + i];
#endif
}
#endif
#endif
#endif

#ifdef REDUCE_SERIAL_SHUFFLE
// This invocation's place in its window of eight lanes.
var<private> lane8: u32;
#endif

#ifdef GROUP_VECTORS
// Groups of blocks read as 16-byte vectors from W's vector binding `w4` (GROUP_VECTORS: the
// int-dot reader's eight 32-element blocks, nf4's four blocks). group_at says where a group
// starts: its first vector v, and the words o and half-word `half` it starts into it. In rows
// of whole groups every group starts on a vector (o = 0, no half). With GROUPS_REALIGN (other
// rows, e.g. Qwen2.5-0.5B's 896 columns or OpenLLaMA-3B's 3200) a group starts on any even
// byte, and each of its vectors is realigned from two loads (`group_vector`): one more load
// per group than the aligned read, where these rows took the word-wise path before (about 2x
// slower on lavapipe).
struct GroupAt {
    v: u32,
    o: u32,
    half: bool,
}

// W's vector binding `w4` (nf4's or int_dot.wgsl's) as 16-byte vectors, whether it is bound
// as 16- or as 32-byte ones (W_U64: each read then takes half of a 32-byte load).
#ifdef W_U64
fn w4_at(v: u32) -> vec4<u32> {
    return half_of(w4[v / 2u], (v & 1u) == 1u);
}

fn w4_vectors() -> u32 {
    return 2u * arrayLength(&w4);
}
#else
fn w4_at(v: u32) -> vec4<u32> {
    return w4[v];
}

fn w4_vectors() -> u32 {
    return arrayLength(&w4);
}
#endif

fn group_at(blk0: u32, block_bytes: u32) -> GroupAt {
    let X = blk0 * block_bytes;
    return GroupAt(X / 16u, (X % 16u) / 4u, (X & 2u) != 0u);
}

// Vector i of a group from its loads a (vector i) and b (vector i + 1, from
// `realign_load`; unused without GROUPS_REALIGN).
fn group_vector(g: GroupAt, a: vec4<u32>, b: vec4<u32>) -> vec4<u32> {
#ifdef GROUPS_REALIGN
    return realigned(a, b, g.o, g.half);
#else
    return a;
#endif
}

// Vector i of a group, loaded only to realign the one before it (GROUPS_REALIGN; past the
// last vector of the buffer it repeats that one: buffers are whole vectors, so a group that
// ends there ends on a vector and never uses it).
fn realign_load(g: GroupAt, i: u32) -> vec4<u32> {
#ifdef GROUPS_REALIGN
    return w4_at(min(g.v + i, w4_vectors() - 1u));
#else
    return vec4<u32>(0u);
#endif
}

// The nine vectors (144 bytes) of a group at g: eight q4_0 blocks, or four nf4 blocks. Loads
// written out, each once, and constant indices only, so the array stays in registers.
fn group_vectors9(g: GroupAt) -> array<vec4<u32>, 9> {
    let r = group_loads9(g);
    let r9 = realign_load(g, 9u);
    return array<vec4<u32>, 9>(
        group_vector(g, r[0], r[1]), group_vector(g, r[1], r[2]), group_vector(g, r[2], r[3]),
        group_vector(g, r[3], r[4]), group_vector(g, r[4], r[5]), group_vector(g, r[5], r[6]),
        group_vector(g, r[6], r[7]), group_vector(g, r[7], r[8]), group_vector(g, r[8], r9),
    );
}

// The nine vectors from vector g.v as loaded (before realigning; a q4_0 or nf4 group, a q4_k
// block): with W_U64 from five 32-byte loads, each vector the half the group's start parity
// says (`group_loads17` explains); otherwise one 16-byte load each.
fn group_loads9(g: GroupAt) -> array<vec4<u32>, 9> {
#ifdef W_U64
    let b = g.v / 2u;
    let odd = (g.v & 1u) == 1u;
    let l0 = w4[b];
    let l1 = w4[b + 1u];
    let l2 = w4[b + 2u];
    let l3 = w4[b + 3u];
    let l4 = w4[b + 4u];
    return array<vec4<u32>, 9>(
        half_of(l0, odd), half_of(select(l0, l1, odd), !odd),
        half_of(l1, odd), half_of(select(l1, l2, odd), !odd),
        half_of(l2, odd), half_of(select(l2, l3, odd), !odd),
        half_of(l3, odd), half_of(select(l3, l4, odd), !odd),
        half_of(l4, odd),
    );
#else
    return array<vec4<u32>, 9>(
        w4[g.v], w4[g.v + 1u], w4[g.v + 2u], w4[g.v + 3u], w4[g.v + 4u], w4[g.v + 5u],
        w4[g.v + 6u], w4[g.v + 7u], w4[g.v + 8u],
    );
#endif
}

// The 11 vectors from vector g.v as loaded (a q5_0 group, a q5_k block): six 32-byte loads
// with W_U64 (as `group_loads17`), else eleven 16-byte ones.
fn group_loads11(g: GroupAt) -> array<vec4<u32>, 11> {
#ifdef W_U64
    let b = g.v / 2u;
    let odd = (g.v & 1u) == 1u;
    let l0 = w4[b];
    let l1 = w4[b + 1u];
    let l2 = w4[b + 2u];
    let l3 = w4[b + 3u];
    let l4 = w4[b + 4u];
    let l5 = w4[b + 5u];
    return array<vec4<u32>, 11>(
        half_of(l0, odd), half_of(select(l0, l1, odd), !odd),
        half_of(l1, odd), half_of(select(l1, l2, odd), !odd),
        half_of(l2, odd), half_of(select(l2, l3, odd), !odd),
        half_of(l3, odd), half_of(select(l3, l4, odd), !odd),
        half_of(l4, odd), half_of(select(l4, l5, odd), !odd),
        half_of(l5, odd),
    );
#else
    return array<vec4<u32>, 11>(
        w4[g.v], w4[g.v + 1u], w4[g.v + 2u], w4[g.v + 3u], w4[g.v + 4u], w4[g.v + 5u],
        w4[g.v + 6u], w4[g.v + 7u], w4[g.v + 8u], w4[g.v + 9u], w4[g.v + 10u],
    );
#endif
}

// The 17 vectors from vector g.v (a q8_0 group, 272 bytes) as loaded (before realigning):
// with W_U64 from nine 32-byte loads, each vector the half the group's start parity says;
// otherwise one 16-byte load each. Loads written out, constant indices only (registers).
fn group_loads17(g: GroupAt) -> array<vec4<u32>, 17> {
#ifdef W_U64
    let b = g.v / 2u;
    let odd = (g.v & 1u) == 1u;
    let l0 = w4[b];
    let l1 = w4[b + 1u];
    let l2 = w4[b + 2u];
    let l3 = w4[b + 3u];
    let l4 = w4[b + 4u];
    let l5 = w4[b + 5u];
    let l6 = w4[b + 6u];
    let l7 = w4[b + 7u];
    let l8 = w4[b + 8u];
    // Vector i is half i of the loads from an even start, half i + 1 from an odd one.
    return array<vec4<u32>, 17>(
        half_of(l0, odd), half_of(select(l0, l1, odd), !odd),
        half_of(l1, odd), half_of(select(l1, l2, odd), !odd),
        half_of(l2, odd), half_of(select(l2, l3, odd), !odd),
        half_of(l3, odd), half_of(select(l3, l4, odd), !odd),
        half_of(l4, odd), half_of(select(l4, l5, odd), !odd),
        half_of(l5, odd), half_of(select(l5, l6, odd), !odd),
        half_of(l6, odd), half_of(select(l6, l7, odd), !odd),
        half_of(l7, odd), half_of(select(l7, l8, odd), !odd),
        half_of(l8, odd),
    );
#else
    return array<vec4<u32>, 17>(
        w4[g.v], w4[g.v + 1u], w4[g.v + 2u], w4[g.v + 3u], w4[g.v + 4u], w4[g.v + 5u],
        w4[g.v + 6u], w4[g.v + 7u], w4[g.v + 8u], w4[g.v + 9u], w4[g.v + 10u], w4[g.v + 11u],
        w4[g.v + 12u], w4[g.v + 13u], w4[g.v + 14u], w4[g.v + 15u], w4[g.v + 16u],
    );
#endif
}

// The 10 vectors from vector g.v as loaded (a q4_1 group, 160 bytes): six 32-byte loads with
// W_U64 (five from an even start; the sixth then clamped to the buffer, whose end it may
// pass), else ten 16-byte ones.
fn group_loads10(g: GroupAt) -> array<vec4<u32>, 10> {
#ifdef W_U64
    let b = g.v / 2u;
    let odd = (g.v & 1u) == 1u;
    let l0 = w4[b];
    let l1 = w4[b + 1u];
    let l2 = w4[b + 2u];
    let l3 = w4[b + 3u];
    let l4 = w4[b + 4u];
    let l5 = w4[min(b + 5u, arrayLength(&w4) - 1u)];
    return array<vec4<u32>, 10>(
        half_of(l0, odd), half_of(select(l0, l1, odd), !odd),
        half_of(l1, odd), half_of(select(l1, l2, odd), !odd),
        half_of(l2, odd), half_of(select(l2, l3, odd), !odd),
        half_of(l3, odd), half_of(select(l3, l4, odd), !odd),
        half_of(l4, odd), half_of(select(l4, l5, odd), !odd),
    );
#else
    return array<vec4<u32>, 10>(
        w4[g.v], w4[g.v + 1u], w4[g.v + 2u], w4[g.v + 3u], w4[g.v + 4u], w4[g.v + 5u],
        w4[g.v + 6u], w4[g.v + 7u], w4[g.v + 8u], w4[g.v + 9u],
    );
#endif
}

// The 12 vectors from vector g.v as loaded (a q5_1 group, 192 bytes): seven 32-byte loads with
// W_U64 (as `group_loads10`), else twelve 16-byte ones.
fn group_loads12(g: GroupAt) -> array<vec4<u32>, 12> {
#ifdef W_U64
    let b = g.v / 2u;
    let odd = (g.v & 1u) == 1u;
    let l0 = w4[b];
    let l1 = w4[b + 1u];
    let l2 = w4[b + 2u];
    let l3 = w4[b + 3u];
    let l4 = w4[b + 4u];
    let l5 = w4[b + 5u];
    let l6 = w4[min(b + 6u, arrayLength(&w4) - 1u)];
    return array<vec4<u32>, 12>(
        half_of(l0, odd), half_of(select(l0, l1, odd), !odd),
        half_of(l1, odd), half_of(select(l1, l2, odd), !odd),
        half_of(l2, odd), half_of(select(l2, l3, odd), !odd),
        half_of(l3, odd), half_of(select(l3, l4, odd), !odd),
        half_of(l4, odd), half_of(select(l4, l5, odd), !odd),
        half_of(l5, odd), half_of(select(l5, l6, odd), !odd),
    );
#else
    return array<vec4<u32>, 12>(
        w4[g.v], w4[g.v + 1u], w4[g.v + 2u], w4[g.v + 3u], w4[g.v + 4u], w4[g.v + 5u],
        w4[g.v + 6u], w4[g.v + 7u], w4[g.v + 8u], w4[g.v + 9u], w4[g.v + 10u], w4[g.v + 11u],
    );
#endif
}

// The 14 vectors from vector g.v as loaded (q6_k's 210-byte blocks, realigned by the caller):
// eight 32-byte loads with W_U64 (seven from an even start, the eighth then clamped to the
// buffer, whose last vector it may pass), else fourteen 16-byte ones.
fn group_loads14(g: GroupAt) -> array<vec4<u32>, 14> {
#ifdef W_U64
    let b = g.v / 2u;
    let odd = (g.v & 1u) == 1u;
    let l0 = w4[b];
    let l1 = w4[b + 1u];
    let l2 = w4[b + 2u];
    let l3 = w4[b + 3u];
    let l4 = w4[b + 4u];
    let l5 = w4[b + 5u];
    let l6 = w4[b + 6u];
    let l7 = w4[min(b + 7u, arrayLength(&w4) - 1u)];
    return array<vec4<u32>, 14>(
        half_of(l0, odd), half_of(select(l0, l1, odd), !odd),
        half_of(l1, odd), half_of(select(l1, l2, odd), !odd),
        half_of(l2, odd), half_of(select(l2, l3, odd), !odd),
        half_of(l3, odd), half_of(select(l3, l4, odd), !odd),
        half_of(l4, odd), half_of(select(l4, l5, odd), !odd),
        half_of(l5, odd), half_of(select(l5, l6, odd), !odd),
        half_of(l6, odd), half_of(select(l6, l7, odd), !odd),
    );
#else
    return array<vec4<u32>, 14>(
        w4[g.v], w4[g.v + 1u], w4[g.v + 2u], w4[g.v + 3u], w4[g.v + 4u], w4[g.v + 5u],
        w4[g.v + 6u], w4[g.v + 7u], w4[g.v + 8u], w4[g.v + 9u], w4[g.v + 10u], w4[g.v + 11u],
        w4[g.v + 12u], w4[g.v + 13u],
    );
#endif
}
#endif

#ifdef NF4_VEC4
// nf4 in rows of whole 256-element groups with one invocation per row and shared activations
// (CPU adapters): four 36-byte blocks are nine 16-byte vectors, read as such from W's second
// binding, and their 256 activations eight windows of 32 (lane l loading elements 4l..4l+4 of
// each, as vec4s from x's second binding). The word-at-a-time block decoder made 17 per-lane
// loads per block (its absmax, eight code words, eight activations); this makes 17 per four.
// Rows of 256 elements start on 16-byte boundaries (36 · 256 / 64 = 144 bytes). Other rows
// (GROUPS_REALIGN, e.g. Qwen2.5-0.5B's 896 columns) start on a word: each group's vectors are
// realigned from ten loads, and the row's last one to three blocks go a block at a time.
#ifdef W_U64
// W_U64: both bound as 32-byte vectors (eight activations per element).
@group(0) @binding(5) var<storage, read> w4: array<vec4<u64>>;
@group(0) @binding(6) var<storage, read> x4: array<vec4<u64>>;
#else
@group(0) @binding(5) var<storage, read> w4: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read> x4: array<vec4<f32>>;
#endif

// Code word q (eight codes, high nibble first) against its activations: lanes l and l + 1 of
// `window`, the first four and the next.
fn nf4_word(book: vec2<f32>, q: u32, window: vec4<f32>, l: u32) -> f32 {
    return nf4_word_dot(book, q, subgroupShuffle(window, l), subgroupShuffle(window, l + 1u));
}

// Code word q (eight codes, high nibble first) against its eight activations, xa then xb.
fn nf4_word_dot(book: vec2<f32>, q: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
    let v = vec4<u32>(q);
    let a = nf4_lookup(book, (v >> vec4<u32>(4u, 0u, 12u, 8u)) & vec4<u32>(0xfu));
    let b = nf4_lookup(book, (v >> vec4<u32>(20u, 16u, 28u, 24u)) & vec4<u32>(0xfu));
    return dot(a, xa) + dot(b, xb);
}

#ifdef W_U64
// Code word m of a block (eight codes, high nibble first) against its activations, which
// lane m holds: elements 8m..8m + 4 (`lo`) and 8m + 4..8m + 8 (`hi`) of the block.
fn nf4_word64(book: vec2<f32>, q: u32, lo: vec4<f32>, hi: vec4<f32>, m: u32) -> f32 {
    return nf4_word_dot(book, q, subgroupShuffle(lo, m), subgroupShuffle(hi, m));
}

// A block: its absmax word, its code words 0..3 (q0) and 4..7 (q1), against its 64
// activations, eight per lane from one 32-byte load at x vector `xv`.
fn nf4_block64(book: vec2<f32>, absmax: u32, q0: vec4<u32>, q1: vec4<u32>, xv: u32) -> f32 {
    let xq = x4[xv + lane8];
    let lo = bitcast<vec4<f32>>(half_of(xq, false));
    let hi = bitcast<vec4<f32>>(half_of(xq, true));
    let s = nf4_word64(book, q0.x, lo, hi, 0u) + nf4_word64(book, q0.y, lo, hi, 1u)
        + nf4_word64(book, q0.z, lo, hi, 2u) + nf4_word64(book, q0.w, lo, hi, 3u)
        + nf4_word64(book, q1.x, lo, hi, 4u) + nf4_word64(book, q1.y, lo, hi, 5u)
        + nf4_word64(book, q1.z, lo, hi, 6u) + nf4_word64(book, q1.w, lo, hi, 7u);
    return bitcast<f32>(absmax) * s;
}
#endif

// A block: its absmax word, its code words 0..3 (q0) and 4..7 (q1), and its activations in
// two windows (elements 0..32 and 32..64).
fn nf4_block(book: vec2<f32>, absmax: u32, q0: vec4<u32>, q1: vec4<u32>, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
    let s = nf4_word(book, q0.x, xa, 0u) + nf4_word(book, q0.y, xa, 2u)
        + nf4_word(book, q0.z, xa, 4u) + nf4_word(book, q0.w, xa, 6u)
        + nf4_word(book, q1.x, xb, 0u) + nf4_word(book, q1.y, xb, 2u)
        + nf4_word(book, q1.z, xb, 4u) + nf4_word(book, q1.w, xb, 6u);
    return bitcast<f32>(absmax) * s;
}

// The group of four blocks at g (36-byte blocks start on a word: no half), against
// activations from vector xv: block j starts at word 9j, its absmax there and its codes in the
// next eight words.
fn nf4_group(book: vec2<f32>, g: GroupAt, xv: u32) -> f32 {
    let r = group_vectors9(g);
#ifdef W_U64
    // x in 32-byte vectors: a block's 64 activations are eight of them, one per lane.
    let x8 = xv / 2u;
    return nf4_block64(book, r[0].x, vec4<u32>(r[0].yzw, r[1].x), vec4<u32>(r[1].yzw, r[2].x), x8)
        + nf4_block64(book, r[2].y, vec4<u32>(r[2].zw, r[3].xy), vec4<u32>(r[3].zw, r[4].xy), x8 + 8u)
        + nf4_block64(book, r[4].z, vec4<u32>(r[4].w, r[5].xyz), vec4<u32>(r[5].w, r[6].xyz), x8 + 16u)
        + nf4_block64(book, r[6].w, r[7], r[8], x8 + 24u);
#else
    let x0 = xv + lane8;
    return nf4_block(book, r[0].x, vec4<u32>(r[0].yzw, r[1].x), vec4<u32>(r[1].yzw, r[2].x), x4[x0], x4[x0 + 8u])
        + nf4_block(book, r[2].y, vec4<u32>(r[2].zw, r[3].xy), vec4<u32>(r[3].zw, r[4].xy), x4[x0 + 16u], x4[x0 + 24u])
        + nf4_block(book, r[4].z, vec4<u32>(r[4].w, r[5].xyz), vec4<u32>(r[5].w, r[6].xyz), x4[x0 + 32u], x4[x0 + 40u])
        + nf4_block(book, r[6].w, r[7], r[8], x4[x0 + 48u], x4[x0 + 56u]);
#endif
}
#endif

#ifdef INT_DOT
#include "int_dot.wgsl"
#endif

struct Params {
    rows: u32,
    cols: u32,
    groups_x: u32,
    row_offset: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#ifdef VEC4
#ifdef COMPUTE_F16
// Eight f16 (16 bytes) per element: the two columns of a mat2x4<f16>.
@group(0) @binding(1) var<storage, read> w: array<mat2x4<f16>>;
#else
#ifdef W_U64
// Two 16-byte units per element (W_U64).
@group(0) @binding(1) var<storage, read> w: array<vec4<u64>>;
#else
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
#endif
#endif
#ifdef W_U64
// Eight activations per element (W_U64: windows of 64, a load per lane).
@group(0) @binding(2) var<storage, read> x: array<vec4<u64>>;
#else
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#endif
#else
#ifdef COMPUTE_F16
@group(0) @binding(1) var<storage, read> w: array<vec2<f16>>;
#else
@group(0) @binding(1) var<storage, read> w: array<u32>;
#endif
#ifdef INT_DOT
@group(0) @binding(2) var<storage, read> x: array<u32>;
#else
#ifdef UNITWISE
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
#endif
#endif
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// The finished sum of row `row` of this part, with its bias.
fn output(row: u32, sum: acc_t) {
    let at = p.row_offset + row;
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[at];
    }
    y[at] = f32(sum) + b;
}

#ifdef ROWS_PER_INVOCATION
// Each subgroup computes ROWS_PER_INVOCATION rows together.
const THREADS_PER_ROW: u32 = WG_SIZE * ROWS_PER_INVOCATION / ROWS_PER_WG;
#else
const THREADS_PER_ROW: u32 = WG_SIZE / ROWS_PER_WG;
#endif

#ifndef ELEMENTWISE
#ifdef W_F32
const ELEMS_PER_WORD: u32 = 1u;
#else
#ifdef W_FP8
const ELEMS_PER_WORD: u32 = 4u;
#else
const ELEMS_PER_WORD: u32 = 2u;
#endif
#endif

#ifdef W_FP8
// W_FP8 (f8_e4m3, f8_e5m2): four weights per word, decoded by fp8.wgsl into f32.
#include "fp8.wgsl"
#endif

// The two f16 of a word as f32, through the f32-only unpack builtin.
fn unpack_f16_pair(word: u32) -> vec2<f32> {
#ifdef F16_UNPACK_HI_VIA_SHIFT
    return vec2<f32>(unpack2x16float(word).x, unpack2x16float(word >> 16u).x);
#else
    return unpack2x16float(word);
#endif
}

#ifdef VEC4
const ELEMS_PER_UNIT: u32 = 4u * ELEMS_PER_WORD;

// Four bf16 (two words) as f32.
fn bf16x4(a: u32, b: u32) -> vec4<f32> {
    return vec4<f32>(
        bitcast<f32>(a << 16u), bitcast<f32>(a & 0xffff0000u),
        bitcast<f32>(b << 16u), bitcast<f32>(b & 0xffff0000u),
    );
}

// x units (vec4<f32>) per W unit.
const X_PER_UNIT: u32 = ELEMS_PER_UNIT / 4u;

// The activations of unit `xu` of a row: a, then b (eight-element units: f16, bf16) and c, d
// (sixteen: fp8); the ones a dtype does not use are zero.
struct UnitX {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

#ifdef COMPUTE_F16
alias WUnit = mat2x4<f16>;
#else
alias WUnit = vec4<u32>;
#endif

#ifndef W_U64
fn unit_x(xu: u32) -> UnitX {
    let none = vec4<f32>(0.0);
#ifdef W_F32
    return UnitX(x[xu], none, none, none);
#else
#ifdef W_FP8
    return UnitX(x[4u * xu], x[4u * xu + 1u], x[4u * xu + 2u], x[4u * xu + 3u]);
#else
    return UnitX(x[2u * xu], x[2u * xu + 1u], none, none);
#endif
#endif
}

// Unit `u` of W against its activations (as `unit_value_dot`).
fn unit_dot_x(u: u32, xa: vec4<f32>, xb: vec4<f32>, xc: vec4<f32>, xd: vec4<f32>) -> f32 {
    return unit_value_dot(w[u], xa, xb, xc, xd);
}

// The contribution of unit `u` of W, which is unit `xu` of its row.
fn unit_dot(u: u32, xu: u32) -> f32 {
    let ux = unit_x(xu);
    return unit_dot_x(u, ux.a, ux.b, ux.c, ux.d);
}
#endif

// The activations unit j of a window of eight x units (`window`, one per lane) meets, handed
// over by shuffles: X_PER_UNIT of them, the rest repeating the last.
fn window_x(window: vec4<f32>, j: u32) -> UnitX {
#ifdef REDUCE_SERIAL_SHUFFLE
    let first = X_PER_UNIT * j;
    let last = first + X_PER_UNIT - 1u;
    return UnitX(
        subgroupShuffle(window, first), subgroupShuffle(window, min(first + 1u, last)),
        subgroupShuffle(window, min(first + 2u, last)), subgroupShuffle(window, last),
    );
#else
    return UnitX(window, window, window, window);
#endif
}

#ifdef W_U64
// The two 16-byte halves of a 32-byte load, as u32 words.
fn halves(v: vec4<u64>) -> array<vec4<u32>, 2> {
    return array<vec4<u32>, 2>(half_of(v, false), half_of(v, true));
}

// Activation units t (t < 16) of a window of 64 that lanes hold as `lo` (their elements
// 8l..8l+4) and `hi` (8l+4..8l+8): unit t sits in lane t / 2, half t % 2.
fn window64_unit(lo: vec4<f32>, hi: vec4<f32>, t: u32) -> vec4<f32> {
    return subgroupShuffle(select(lo, hi, (t & 1u) == 1u), t / 2u);
}

// The activations W unit j of a 64-wide window meets: X_PER_UNIT units, the rest repeating
// the last.
fn window64_x(lo: vec4<f32>, hi: vec4<f32>, j: u32) -> UnitX {
    let first = X_PER_UNIT * j;
    let last = first + X_PER_UNIT - 1u;
    return UnitX(
        window64_unit(lo, hi, first), window64_unit(lo, hi, min(first + 1u, last)),
        window64_unit(lo, hi, min(first + 2u, last)), window64_unit(lo, hi, last),
    );
}

// The sum of W units 2j and 2j + 1 of a 64-wide window (one 32-byte load, `v`).
fn window64_dot(v: vec4<u64>, lo: vec4<f32>, hi: vec4<f32>, j: u32) -> f32 {
    return load_dot(v, window64_x(lo, hi, 2u * j), window64_x(lo, hi, 2u * j + 1u));
}

// A 32-byte load of W (two units) against the activations of its units, a then b.
fn load_dot(v: vec4<u64>, a: UnitX, b: UnitX) -> f32 {
    let h = halves(v);
    return unit_value_dot(h[0], a.a, a.b, a.c, a.d) + unit_value_dot(h[1], b.a, b.b, b.c, b.d);
}

// W loads (32 bytes, two units) per 64-wide window.
const LOADS_PER_WINDOW64: u32 = 8u / X_PER_UNIT;

#ifdef ROWS_PER_INVOCATION
// Two rows per invocation (ROWS_PER_INVOCATION = 2 with W_U64): rows row_a and row_b,
// each activation window and each shuffle serving both rows' loads. A loop step then reads
// twice the weight bytes per activation load and shuffle; whether that wins depends on the
// dtype (register pressure: KernelKey::PAIRED_ROW_DTYPES).
fn pair_partial(row_a: u32, row_b: u32) -> vec2<acc_t> {
    let loads = p.cols / ELEMS_PER_UNIT / 2u;
    let wa = row_a * loads;
    let wb = row_b * loads;
    let windows = loads / LOADS_PER_WINDOW64;
    var acc = vec2<acc_t>(0.0);
    for (var c = 0u; c < windows; c = c + 1u) {
        let xw = window64(c);
        for (var j = 0u; j < LOADS_PER_WINDOW64; j = j + 1u) {
            let i = c * LOADS_PER_WINDOW64 + j;
            acc = acc + vec2<acc_t>(window64_dot2(w[wa + i], w[wb + i], xw[0], xw[1], j));
        }
    }
    if (loads % LOADS_PER_WINDOW64 != 0u) {
        let xw = window64(windows);
        for (var j = 0u; j < LOADS_PER_WINDOW64 / 2u; j = j + 1u) {
            let i = windows * LOADS_PER_WINDOW64 + j;
            acc = acc + vec2<acc_t>(window64_dot2(w[wa + i], w[wb + i], xw[0], xw[1], j));
        }
    }
    return acc;
}

// `window64_dot` for two rows' loads (va, vb) against the same activations.
fn window64_dot2(va: vec4<u64>, vb: vec4<u64>, lo: vec4<f32>, hi: vec4<f32>, j: u32) -> vec2<f32> {
    let a = window64_x(lo, hi, 2u * j);
    let b = window64_x(lo, hi, 2u * j + 1u);
    return vec2<f32>(load_dot(va, a, b), load_dot(vb, a, b));
}
#endif

// This lane's 8 activations of the window starting at x element 64 * c (lo, then hi): loads
// past the end of x (the last half-window of a row of 32 * odd elements) repeat its last
// element, and are never used.
fn window64(c: u32) -> array<vec4<f32>, 2> {
    let h = halves(x[min(8u * c + lane8, arrayLength(&x) - 1u)]);
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(h[0]), bitcast<vec4<f32>>(h[1]));
}
#endif

// A unit of W, loaded, against its activations: xa, then xb (eight-element units: f16,
// bf16) and xc, xd (sixteen: fp8); the ones a dtype does not use are ignored.
fn unit_value_dot(v: WUnit, xa: vec4<f32>, xb: vec4<f32>, xc: vec4<f32>, xd: vec4<f32>) -> f32 {
#ifdef W_F32
    return dot(bitcast<vec4<f32>>(v), xa);
#endif
#ifdef W_FP8
    return dot(fp8x4(v.x), xa) + dot(fp8x4(v.y), xb) + dot(fp8x4(v.z), xc) + dot(fp8x4(v.w), xd);
#endif
#ifdef W_BF16
    return dot(bf16x4(v.x, v.y), xa) + dot(bf16x4(v.z, v.w), xb);
#endif
#ifdef W_F16
#ifdef COMPUTE_F16
    let lo = vec4<f32>(v[0] * vec4<f16>(xa));
    let hi = vec4<f32>(v[1] * vec4<f16>(xb));
    return dot(lo, vec4<f32>(1.0)) + dot(hi, vec4<f32>(1.0));
#else
    let lo = vec4<f32>(unpack_f16_pair(v.x), unpack_f16_pair(v.y));
    let hi = vec4<f32>(unpack_f16_pair(v.z), unpack_f16_pair(v.w));
    return dot(lo, xa) + dot(hi, xb);
#endif
#endif
}
#else
// x[e - row_start] if element e lies in [row_start, row_start + cols), else 0.
fn x_at(e: u32, row_start: u32) -> f32 {
    let inside = e >= row_start && e - row_start < p.cols;
    return select(0.0, x[select(0u, e - row_start, inside)], inside);
}

// The contribution of word `wi` of W to the row that starts at element `row_start`.
fn word_dot(wi: u32, row_start: u32) -> f32 {
    let word = w[wi];
#ifdef W_F32
    return bitcast<f32>(word) * x[wi - row_start];
#else
#ifdef W_FP8
    let e0 = wi * 4u;
    let xv = vec4<f32>(x_at(e0, row_start), x_at(e0 + 1u, row_start), x_at(e0 + 2u, row_start), x_at(e0 + 3u, row_start));
    return dot(fp8x4(word), xv);
#else
    let e0 = wi * 2u;
    let x0 = x_at(e0, row_start);
    let x1 = x_at(e0 + 1u, row_start);
#ifdef W_BF16
    return bitcast<f32>(word << 16u) * x0 + bitcast<f32>(word & 0xffff0000u) * x1;
#else
#ifdef COMPUTE_F16
    let prod = word * vec2<f16>(f16(x0), f16(x1));
    return f32(prod.x) + f32(prod.y);
#else
    let wf = unpack_f16_pair(word);
    return wf.x * x0 + wf.y * x1;
#endif
#endif
#endif
#endif
}

// First and one-past-last word of a row.
fn row_words(row: u32) -> vec2<u32> {
    let start = row * p.cols;
    return vec2<u32>(start / ELEMS_PER_WORD, (start + p.cols + ELEMS_PER_WORD - 1u) / ELEMS_PER_WORD);
}
#endif
#endif

#ifdef UNROLLED
// The unrolled loop's units (UNROLLED: a workgroup or subgroup per row, reading block units
// or 16-byte vectors): how many a row has, the activations unit i meets (`unit_x_of`), and
// the contribution of unit i of row `row` against them (`unit_dot_of`).
#ifdef UNITWISE
fn row_units() -> u32 {
    return (p.cols / BLOCK_ELEMS) * UNITS;
}

#ifdef INT_DOT
fn unit_term(row: u32, i: u32) -> f32 {
    let b = i / UNITS;
    return int_dot_unit(row * (p.cols / BLOCK_ELEMS) + b, i % UNITS, b);
}
#else
fn unit_x_of(i: u32) -> UnitX {
    return unit_x(i % UNITS, (i / UNITS) * BLOCK_ELEMS);
}

fn unit_dot_of(row: u32, i: u32, ux: UnitX) -> f32 {
    return unit_dot_x(row * (p.cols / BLOCK_ELEMS) + i / UNITS, i % UNITS, ux);
}
#endif
#else
fn row_units() -> u32 {
    return p.cols / ELEMS_PER_UNIT;
}

fn unit_x_of(i: u32) -> UnitX {
    return unit_x(i);
}

fn unit_dot_of(row: u32, i: u32, ux: UnitX) -> f32 {
    return unit_dot_x(row * row_units() + i, ux.a, ux.b, ux.c, ux.d);
}
#endif

#ifndef INT_DOT
fn unit_term(row: u32, i: u32) -> f32 {
    return unit_dot_of(row, i, unit_x_of(i));
}
#endif

#ifdef ROWS_PER_INVOCATION
// Unit i of rows row0 .. row0 + ROWS_PER_INVOCATION (at most 4), its activations loaded once
// for all of them: a subgroup computing several rows makes one activation request per unit
// instead of one per row. Rows past the last are computed as the last row, and not written.
fn unit_terms(row0: u32, i: u32) -> vec4<f32> {
    let ux = unit_x_of(i);
    var t = vec4<f32>(0.0);
    for (var r = 0u; r < ROWS_PER_INVOCATION; r = r + 1u) {
        t[r] = unit_dot_of(min(row0 + r, p.rows - 1u), i, ux);
    }
    return t;
}

// This invocation's share of rows row0 .. row0 + ROWS_PER_INVOCATION, unrolled as `partial`.
// The loop is `partial`'s over another sum type: that one sums in the accumulation dtype (f16
// variants exist), this one four rows in f32, and WGSL has no generics to share it.
fn partial_rows(row0: u32, first: u32, step: u32) -> vec4<f32> {
    let units = row_units();
    var acc = vec4<f32>(0.0);
    var i = first;
    for (; i + 3u * step < units; i = i + 4u * step) {
        let a = unit_terms(row0, i);
        let b = unit_terms(row0, i + step);
        let c = unit_terms(row0, i + 2u * step);
        let d = unit_terms(row0, i + 3u * step);
        acc = acc + a + b + c + d;
    }
    for (; i < units; i = i + step) {
        acc = acc + unit_terms(row0, i);
    }
    return acc;
}
#endif
#endif

// This invocation's share of row `row`: units first, first + step, … (a unit is a 16-byte
// vector with VEC4, a word of W otherwise, or one element with ELEMENTWISE). BLOCK_ELEMS, the
// weights per block of a block dtype, is a valued define from the key.
fn partial(row: u32, first: u32, step: u32) -> acc_t {
    let row_start = row * p.cols;
    var acc = acc_t(0.0);
#ifdef UNROLLED
    // Four units per iteration, their loads issued before any is used. On a GPU one wave of
    // workgroups covers a 4096-row GEMV (an H200 holds 1056 of these 256-wide workgroups at
    // once), so each invocation's chain of dependent loads, not bandwidth, sets the time.
    let units = row_units();
    var i = first;
    for (; i + 3u * step < units; i = i + 4u * step) {
        let a = unit_term(row, i);
        let b = unit_term(row, i + step);
        let c = unit_term(row, i + 2u * step);
        let d = unit_term(row, i + 3u * step);
        acc = acc + acc_t(a) + acc_t(b) + acc_t(c) + acc_t(d);
    }
    for (; i < units; i = i + step) {
        acc = acc + acc_t(unit_term(row, i));
    }
#else
    // One invocation per row, or a row layout whose units are not unrolled (word-wise reads):
    // UNITWISE implies UNROLLED, so none of these is a unit decoder.
#ifdef INT_DOT
    let blocks = p.cols / BLOCK_ELEMS;
    var b = first;
#ifdef INT_DOT_GROUPS
    // Whole groups of eight blocks while rows have an even number of blocks (pairs then
    // start on word boundaries), or any number when the 16-byte reader realigns its vectors
    // (GROUPS_REALIGN: groups may start on any even byte); the rest block by block.
#ifdef GROUPS_REALIGN
    let groups = blocks / 8u;
#else
    let groups = select(0u, blocks / 8u, blocks % 2u == 0u);
#endif
    for (var g = 0u; g < groups; g = g + 1u) {
        acc = acc + acc_t(int_dot_group(row * blocks + 8u * g, 8u * g));
    }
    b = 8u * groups;
#endif
    for (; b < blocks; b = b + step) {
        acc = acc + acc_t(int_dot_block(row * blocks + b, b));
    }
#else
#ifdef ELEMENTWISE
    // BLOCKWISE: a block dtype with one invocation per row (the other layouts are UNITWISE).
#ifdef NF4_VEC4
    let book = nf4_book_of(lane8);
    let blocks = p.cols / BLOCK_ELEMS;
    let groups = blocks / 4u;
    for (var g = 0u; g < groups; g = g + 1u) {
#ifdef GROUPS_REALIGN
        let at = group_at(row * blocks + 4u * g, 36u);
#else
        // Whole groups: nine vectors each, the row's first on a vector.
        let at = GroupAt(9u * (row * groups + g), 0u, false);
#endif
        acc = acc + acc_t(nf4_group(book, at, 64u * g));
    }
    // A realigned row's last blocks (none in rows of whole groups).
    for (var b = 4u * groups; b < blocks; b = b + 1u) {
        acc = acc + acc_t(block_dot(row * blocks + b, b * BLOCK_ELEMS));
    }
#else
    let blocks = p.cols / BLOCK_ELEMS;
    for (var b = first; b < blocks; b = b + step) {
        acc = acc + acc_t(block_dot(row * blocks + b, b * BLOCK_ELEMS));
    }
#endif
#else
#ifdef VEC4
    let units = p.cols / ELEMS_PER_UNIT;
    let base = row * units;
#ifdef REDUCE_SERIAL_SHUFFLE
#ifdef W_U64
    // Windows of 64 activations, 32 bytes loaded per lane, and W two units per load: a
    // row's loads are whole (rows are whole windows of 32 elements: 128, 64 or 32 bytes),
    // its last window half a window where the row is 32 * odd elements long. Wider windows
    // halve the activation loads per weight byte, which the 2-byte dtypes feel most (per
    // 32-element window, two weight loads to one activation load).
    let loads = units / 2u;
    let wbase = base / 2u;
    let windows = loads / LOADS_PER_WINDOW64;
    for (var c = 0u; c < windows; c = c + 1u) {
        let xw = window64(c);
        for (var j = 0u; j < LOADS_PER_WINDOW64; j = j + 1u) {
            acc = acc + acc_t(window64_dot(w[wbase + c * LOADS_PER_WINDOW64 + j], xw[0], xw[1], j));
        }
    }
    if (loads % LOADS_PER_WINDOW64 != 0u) {
        let xw = window64(windows);
        for (var j = 0u; j < LOADS_PER_WINDOW64 / 2u; j = j + 1u) {
            acc = acc + acc_t(window64_dot(w[wbase + windows * LOADS_PER_WINDOW64 + j], xw[0], xw[1], j));
        }
    }
#else
    // Windows of eight x units, one loaded per lane; a W unit takes X_PER_UNIT of them.
    const UNITS_PER_WINDOW: u32 = 8u / X_PER_UNIT;
    for (var c = 0u; c < units / UNITS_PER_WINDOW; c = c + 1u) {
        let window = x[8u * c + lane8];
        for (var j = 0u; j < UNITS_PER_WINDOW; j = j + 1u) {
            let ux = window_x(window, j);
            acc = acc + acc_t(unit_dot_x(base + c * UNITS_PER_WINDOW + j, ux.a, ux.b, ux.c, ux.d));
        }
    }
#endif
#else
    for (var i = first; i < units; i = i + step) {
        acc = acc + acc_t(unit_dot(base + i, i));
    }
#endif
#else
    let span = row_words(row);
    for (var wi = span.x + first; wi < span.y; wi = wi + step) {
        acc = acc + acc_t(word_dot(wi, row_start));
    }
#endif
#endif
#endif
#endif
    return acc;
}

#ifdef REDUCE_SERIAL
@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = (wg.y * p.groups_x + wg.x) * ROWS_PER_WG + lid;
    if (row >= p.rows) {
        return;
    }
    output(row, partial(row, 0u, 1u));
}
#endif

#ifdef REDUCE_SERIAL_SHUFFLE
@compute @workgroup_size(WG_SIZE)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    lane8 = sg_lane % 8u;
    let row = (wg.y * p.groups_x + wg.x) * ROWS_PER_WG + lid;
    // Lanes past the last row redo it rather than return: a shuffle needs its source lane.
#ifdef ROWS_PER_INVOCATION
    // Rows row and row + WG_SIZE (ROWS_PER_WG = 2 * WG_SIZE).
    let second = row + WG_SIZE;
    let sums = pair_partial(min(row, p.rows - 1u), min(second, p.rows - 1u));
    if (row < p.rows) {
        output(row, sums.x);
    }
    if (second < p.rows) {
        output(second, sums.y);
    }
#else
    let sum = partial(min(row, p.rows - 1u), 0u, 1u);
    if (row < p.rows) {
        output(row, sum);
    }
#endif
}
#endif

#ifdef REDUCE_WORKGROUP
var<workgroup> sums: array<acc_t, WG_SIZE>;

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
#ifdef UNITWISE
    share_tables(lid);
#endif
    let lane = lid % THREADS_PER_ROW;
    let row = (wg.y * p.groups_x + wg.x) * ROWS_PER_WG + lid / THREADS_PER_ROW;
    let valid = row < p.rows;
    var acc = acc_t(0.0);
    if (valid) {
        acc = partial(row, lane, THREADS_PER_ROW);
    }
    sums[lid] = acc;
    workgroupBarrier();
    for (var stride = THREADS_PER_ROW / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            sums[lid] = sums[lid] + sums[lid + stride];
        }
        workgroupBarrier();
    }
    if (valid && lane == 0u) {
        output(row, sums[lid]);
    }
}
#endif

#ifdef REDUCE_SUBGROUP
@compute @workgroup_size(WG_SIZE)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
#ifdef UNITWISE
    share_tables(lid);
#endif
#ifdef ROWS_PER_INVOCATION
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS_PER_WG + sg * ROWS_PER_INVOCATION;
    var sums = vec4<f32>(0.0);
    if (row0 < p.rows) {
        sums = partial_rows(row0, sg_lane, THREADS_PER_ROW);
    }
    let totals = subgroupAdd(sums);
    if (sg_lane == 0u) {
        for (var r = 0u; r < ROWS_PER_INVOCATION; r = r + 1u) {
            if (row0 + r < p.rows) {
                output(row0 + r, totals[r]);
            }
        }
    }
#else
    let row = (wg.y * p.groups_x + wg.x) * ROWS_PER_WG + sg;
    let valid = row < p.rows;
    var acc = acc_t(0.0);
    if (valid) {
        acc = partial(row, sg_lane, THREADS_PER_ROW);
    }
    let total = subgroupAdd(acc);
    if (valid && sg_lane == 0u) {
        output(row, total);
    }
#endif
}
#endif
