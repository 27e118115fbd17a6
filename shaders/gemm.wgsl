// GEMM: Y[n, row_offset + r] = sum_k W[r, k] * X[n, k] (+ bias[row_offset + r]) for a
// row-major W of `rows` x `cols` in its storage dtype and X of `n` rows of `cols` f32: the
// prefill path, where each weight is reused by every activation row, so the work is
// compute-bound and decoding a weight costs 1/n of a GEMV's decode.
//
// Layouts: tiles (GPUs; TILE_REG x TILE_REG outputs per invocation, operands decoded and
// copied into workgroup memory, below) or rows (LAYOUT_ROWS, CPU adapters: an invocation per
// few weight rows, no workgroup memory or barriers).
// Elements past the matrix edge are loaded as 0 and outputs past it are not written, so any
// rows, cols and n work.
//
// COMPUTE_F16 holds both tiles in f16 and multiplies in f16 (needs shader-f16).
// ACCUM_F16 also keeps the running sums in f16 (the third precision level, measurable);
// otherwise sums are f32.
// W's part of a split tensor starts at its own buffer's byte 0; row_offset places its outputs;
// out_stride is the output row length (the whole tensor's rows).
// X_SHUFFLE (row layout, subgroups of at least eight): lane l of each eight loads activation
// row l's elements and subgroupShuffle hands them to the others, one load where every lane
// made its own (the CPU-adapter cost model: see REDUCE_SERIAL_SHUFFLE in gemv.wgsl).

#ifdef COMPUTE_F16
enable f16;
#endif

#include "blocks.wgsl"
#ifdef W_U64
#include "u64.wgsl"
#endif

struct Params {
    rows: u32,
    cols: u32,
    n: u32,
    row_offset: u32,
    out_stride: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
#ifdef X_VEC4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

#ifdef X_VEC4
// Row layouts with rows of whole vec4s (X_VEC4: activations read as vec4) read W again as
// 16-byte vectors (the same buffer bound twice: buffers are whole vectors, so every byte is
// in the view), a unit of UNIT_ELEMS weights at a time:
// - the plain dtypes (f32, f16, bf16, fp8: four vectors, 16, 32 or 64 weights) in rows of
//   whole units (W_PLAIN_UNIT);
// - q4_k / q5_k: a 64-element chunk of a block, its scales' vector and two of quants, plus
//   two of fifth bits for q5_k (W_KQUANT_UNIT);
// - q6_k: half a block, 128 elements (W_Q6K_UNIT);
// - the other block dtypes: 32 elements (W_BLOCK_UNIT).
// The four-weights-at-a-time decoder these replaced loaded one to five words per four
// weights. On CPU adapters a kernel costs about its count of per-lane loads: f32 GEMM
// 1024x4096, n = 128, shuffled layout, 50-55 -> 38 ms.
// UNIT_ELEMS (a valued define: ops/gemm.rs's unit) is the weights per unit.
#ifdef W_U64
// W_U64 (W_PLAIN_UNIT where shader-int64 is usable): 32 bytes per element, a unit in two loads.
@group(0) @binding(5) var<storage, read> w4: array<vec4<u64>>;
#else
@group(0) @binding(5) var<storage, read> w4: array<vec4<u32>>;
#endif
const STEP: u32 = UNIT_ELEMS;

#ifdef W_BYTE_READS
// Byte-addressed reads of W's vector view, for block dtypes whose blocks start mid-vector
// (W_BLOCK_UNIT, W_Q6K_UNIT).

// The vector at index v of W's vector view, or its last one past the end (whose words are
// then never used: buffers are whole vectors, so every byte of W is in range).
fn w4_at(v: u32) -> vec4<u32> {
    return w4[min(v, arrayLength(&w4) - 1u)];
}

// The 16 bytes from even byte X: two vector loads, realigned.
fn words4_at(X: u32) -> vec4<u32> {
    let v = X / 16u;
    return realigned(w4[v], w4_at(v + 1u), (X % 16u) / 4u, (X & 2u) != 0u);
}

// The 32 bytes from even byte X: three vector loads, realigned.
fn words8_at(X: u32) -> array<vec4<u32>, 2> {
    let v = X / 16u;
    let o = (X % 16u) / 4u;
    let half = (X & 2u) != 0u;
    let a = w4[v];
    let b = w4_at(v + 1u);
    let c = w4_at(v + 2u);
    return array<vec4<u32>, 2>(realigned(a, b, o, half), realigned(b, c, o, half));
}

// The 64 bytes from even byte X: six vector loads (the middle one twice), realigned.
fn words16_at(X: u32) -> array<vec4<u32>, 4> {
    let lo = words8_at(X);
    let hi = words8_at(X + 32u);
    return array<vec4<u32>, 4>(lo[0], lo[1], hi[0], hi[1]);
}
#endif

#ifdef W_Q6K_UNIT
// Half h of a q6_k block (128 elements): its 64 bytes of low nibbles (quarter qt: bytes
// 32 (qt % 2).., nibble qt / 2), its 32 bytes of high bits (quarter qt: bits 2qt of every
// byte), and d · scale of its eight 16-element sub-blocks. A half, not a quarter, because
// the four quarters share their bytes: 13 loads per 128 weights where quarters took 34.
struct WUnit {
    ql: array<vec4<u32>, 4>,
    qh: array<vec4<u32>, 2>,
    scales: array<vec4<f32>, 2>,
}

// The unit (half block) that starts at element e of W.
fn load_unit(e: u32) -> WUnit {
    let base = (e / 256u) * 210u;
    let h = (e % 256u) / 128u;
    let sc = words4_at(base + 192u);
    let d = f16_at(base + 208u);
    let lo = sc[2u * h];
    let hi = sc[2u * h + 1u];
    return WUnit(
        words16_at(base + 64u * h),
        words8_at(base + 128u + 32u * h),
        array<vec4<f32>, 2>(
            d * vec4<f32>(i8_of(lo & 0xffu), i8_of((lo >> 8u) & 0xffu), i8_of((lo >> 16u) & 0xffu), i8_of(lo >> 24u)),
            d * vec4<f32>(i8_of(hi & 0xffu), i8_of((hi >> 8u) & 0xffu), i8_of((hi >> 16u) & 0xffu), i8_of(hi >> 24u)),
        ),
    );
}

// Elements 4s..4s+4 of a unit (s = 8 qt + j): low nibbles from ql word s % 16 (nibble
// s / 16), high bits from qh word s % 8 (bits 2 (s / 8)), sub-block s / 4. Vectors picked by
// selects, not by indexing: a dynamic index into an array would put it in memory.
fn unit_part(u: WUnit, s: u32) -> vec4<f32> {
    let wi = s % 16u;
    let qlv = select(select(u.ql[0], u.ql[1], wi >= 4u), select(u.ql[2], u.ql[3], wi >= 12u), wi >= 8u);
    let qhv = select(u.qh[0], u.qh[1], s % 8u >= 4u);
    let q = ((qlv[wi % 4u] >> (4u * (s / 16u))) & 0x0f0f0f0fu) | (((qhv[s % 4u] >> (2u * (s / 8u))) & 0x03030303u) << 4u);
    let sc = select(u.scales[0], u.scales[1], s >= 16u)[(s / 4u) % 4u];
    return sc * (bytes4(q, 0xffu) - vec4<f32>(32.0));
}
#endif

#ifdef W_BLOCK_UNIT
// A 32-element unit of a block dtype, each of its bytes loaded once, 16 at a time where the
// unit's blocks start mid-vector: a whole q8_0/q4_0/q4_1/q5_0/q5_1 block or half an nf4
// block.
// - `lo`, `hi`: quant words (q8_0: eight int8 words; q4/q5/nf4: four nibble words in lo);
// - `scale`: (d, m), (d, —) or nf4's (absmax, —);
// - `qh`: q5's fifth bits.
struct WUnit {
    lo: vec4<u32>,
    hi: vec4<u32>,
    scale: vec2<f32>,
    qh: u32,
}

// The unit that starts at element e of W.
fn load_unit(e: u32) -> WUnit {
#ifdef W_Q8_0
    let base = (e / 32u) * 34u;
    let q = words8_at(base + 2u);
    return WUnit(q[0], q[1], vec2<f32>(f16_at(base), 0.0), 0u);
#endif
#ifdef W_Q4_0
    let base = (e / 32u) * 18u;
    return WUnit(words4_at(base + 2u), vec4<u32>(0u), vec2<f32>(f16_at(base), 0.0), 0u);
#endif
#ifdef W_Q4_1
    let i = (e / 32u) * 5u;
    let dm = w[i];
    let q = vec4<u32>(w[i + 1u], w[i + 2u], w[i + 3u], w[i + 4u]);
    return WUnit(q, vec4<u32>(0u), vec2<f32>(unpack2x16float(dm).x, unpack2x16float(dm >> 16u).x), 0u);
#endif
#ifdef W_Q5_0
    let base = (e / 32u) * 22u;
    return WUnit(words4_at(base + 6u), vec4<u32>(0u), vec2<f32>(f16_at(base), 0.0), word_at(base + 2u));
#endif
#ifdef W_Q5_1
    let i = (e / 32u) * 6u;
    let dm = w[i];
    let q = vec4<u32>(w[i + 2u], w[i + 3u], w[i + 4u], w[i + 5u]);
    return WUnit(q, vec4<u32>(0u), vec2<f32>(unpack2x16float(dm).x, unpack2x16float(dm >> 16u).x), w[i + 1u]);
#endif
#ifdef W_NF4
    // Half a 64-element block: its f32 absmax, then four words of codes (two per byte,
    // high nibble first).
    let i = (e / 64u) * 9u;
    let c = 4u * ((e % 64u) / 32u);
    let q = vec4<u32>(w[i + 1u + c], w[i + 2u + c], w[i + 3u + c], w[i + 4u + c]);
    return WUnit(q, vec4<u32>(0u), vec2<f32>(bitcast<f32>(w[i]), 0.0), 0u);
#endif
}

// Elements 4s..4s+4 of a unit, as f32.
fn unit_part(u: WUnit, s: u32) -> vec4<f32> {
#ifdef W_Q8_0
    let q = select(u.lo, u.hi, s >= 4u)[s % 4u];
    return u.scale.x * vec4<f32>(i8_of(q & 0xffu), i8_of((q >> 8u) & 0xffu), i8_of((q >> 16u) & 0xffu), i8_of(q >> 24u));
#endif
#ifdef W_Q4_0
    return u.scale.x * (bytes4(nibbles_of(u, s), 0xffu) - vec4<f32>(8.0));
#endif
#ifdef W_NF4
    // Elements 4s..4s+4: bytes 2s and 2s + 1 of the codes, high nibble first.
    let b = u.lo[s / 2u] >> (16u * (s % 2u));
#ifdef NF4_BOOK
    return u.scale.x * nf4_lookup(nf4_book, (vec4<u32>(b) >> vec4<u32>(4u, 0u, 12u, 8u)) & vec4<u32>(0xfu));
#else
    return u.scale.x * vec4<f32>(
        nf4((b >> 4u) & 0xfu), nf4(b & 0xfu),
        nf4((b >> 12u) & 0xfu), nf4((b >> 8u) & 0xfu),
    );
#endif
#endif
#ifdef W_Q4_1
    return u.scale.x * bytes4(nibbles_of(u, s), 0xffu) + vec4<f32>(u.scale.y);
#endif
#ifdef W_Q5_0
    return u.scale.x * (bytes4(nibbles_of(u, s) | fifth_bits(u.qh, s), 0xffu) - vec4<f32>(16.0));
#endif
#ifdef W_Q5_1
    return u.scale.x * bytes4(nibbles_of(u, s) | fifth_bits(u.qh, s), 0xffu) + vec4<f32>(u.scale.y);
#endif
}

// Elements 4s..4s+4 of a q4/q5 unit's nibbles, one per byte: elements 0..15 are the low
// nibbles of its four quant words, 16..31 the high ones.
fn nibbles_of(u: WUnit, s: u32) -> u32 {
    return (u.lo[s % 4u] >> select(0u, 4u, s >= 4u)) & 0x0f0f0f0fu;
}

// Bits 4s..4s+4 of qh, into bit 4 of each byte.
fn fifth_bits(qh: u32, s: u32) -> u32 {
    return spread_bit4((qh >> (4u * s)) & 0xfu);
}
#endif

#ifdef W_KQUANT_UNIT
// Chunk c of a q4_k/q5_k block: its 32 quant bytes (q0, q1; the low nibbles are sub-block
// 2c, the high ones 2c + 1), q5_k's 32 fifth-bit bytes (h0, h1; bits 2c and 2c + 1), and
// the two sub-blocks' (d·scale, dmin·min).
struct WUnit {
    q0: vec4<u32>,
    q1: vec4<u32>,
    h0: vec4<u32>,
    h1: vec4<u32>,
    scales: vec4<f32>,
}

// The unit (chunk) that starts at element e of W.
fn load_unit(e: u32) -> WUnit {
    let c = (e % 256u) / 64u;
#ifdef W_Q4_K
    let v = (e / 256u) * 9u;
    let head = w4[v];
    let q0 = w4[v + 1u + 2u * c];
    let q1 = w4[v + 2u + 2u * c];
    let h0 = vec4<u32>(0u);
    let h1 = vec4<u32>(0u);
#else
    let v = (e / 256u) * 11u;
    let head = w4[v];
    let q0 = w4[v + 3u + 2u * c];
    let q1 = w4[v + 4u + 2u * c];
    let h0 = w4[v + 1u] >> vec4<u32>(2u * c);
    let h1 = w4[v + 2u] >> vec4<u32>(2u * c);
#endif
    let sm = scale_min_unpack(head.y, head.z, head.w);
    let d = unpack2x16float(head.x).x;
    let dmin = unpack2x16float(head.x >> 16u).x;
    let lo = scale_min_of(sm, 2u * c);
    let hi = scale_min_of(sm, 2u * c + 1u);
    return WUnit(q0, q1, h0, h1, vec4<f32>(d * lo.x, dmin * lo.y, d * hi.x, dmin * hi.y));
}

// Elements 4s..4s+4 of a unit, as f32: sub-block 2c + s / 8, bytes 4 (s % 8)...
fn unit_part(u: WUnit, s: u32) -> vec4<f32> {
    let upper = s >= 8u;
    let j = s % 8u;
    let word = select(u.q0, u.q1, j >= 4u)[j % 4u] >> select(0u, 4u, upper);
    var q = word & 0x0f0f0f0fu;
#ifdef W_Q5_K
    let h = select(u.h0, u.h1, j >= 4u)[j % 4u] >> select(0u, 1u, upper);
    q = q | ((h & 0x01010101u) << 4u);
#endif
    let sc = select(u.scales.xy, u.scales.zw, upper);
    return sc.x * bytes4(q, 0xffu) - vec4<f32>(sc.y);
}
#endif
#ifdef W_PLAIN_UNIT
// Four 16-byte vectors: with the 4 x 32 shuffled tile, two vectors per unit measured 8% faster
// than one for f32 and bf16 and 13% for f16 (2048x4096, n = 256, three alternating runs), and
// four 7% faster than two for f32, 2-3% for f16 and bf16 (4096x4096, n = 512, two
// alternating runs on lavapipe): fewer iterations of the unit loop, its clamps and addresses.
alias WUnit = array<vec4<u32>, 4>;
// Weights per vector.
const VEC_ELEMS: u32 = UNIT_ELEMS / 4u;

// The unit that starts at element e of W.
fn load_unit(e: u32) -> WUnit {
#ifdef W_U64
    // Units are 64 bytes, and rows whole units: every unit starts on a 32-byte element.
    let v = e / (2u * VEC_ELEMS);
    let a = w4[v];
    let b = w4[v + 1u];
    return WUnit(half_of(a, false), half_of(a, true), half_of(b, false), half_of(b, true));
#else
    let v = e / VEC_ELEMS;
    return WUnit(w4[v], w4[v + 1u], w4[v + 2u], w4[v + 3u]);
#endif
}

// Elements 4t..4t+4 of a unit, as f32: part s of vector t / (VEC_ELEMS / 4).
fn unit_part(units: WUnit, t: u32) -> vec4<f32> {
    let q = t / (VEC_ELEMS / 4u);
    let u = select(select(units[0], units[1], q == 1u), select(units[2], units[3], q == 3u), q >= 2u);
    let s = t % (VEC_ELEMS / 4u);
#ifdef W_F32
    return bitcast<vec4<f32>>(u);
#endif
#ifdef W_F16
    // Only the low half of unpack2x16float, which every driver the self-test saw gets right.
    let a = u[2u * s];
    let b = u[2u * s + 1u];
    return vec4<f32>(
        unpack2x16float(a).x, unpack2x16float(a >> 16u).x,
        unpack2x16float(b).x, unpack2x16float(b >> 16u).x,
    );
#endif
#ifdef W_BF16
    let a = u[2u * s];
    let b = u[2u * s + 1u];
    return vec4<f32>(
        bitcast<f32>(a << 16u), bitcast<f32>(a & 0xffff0000u),
        bitcast<f32>(b << 16u), bitcast<f32>(b & 0xffff0000u),
    );
#endif
#ifdef W_F8_E4M3
    return fp8x4(u[s]);
#endif
#ifdef W_F8_E5M2
    return fp8x4(u[s]);
#endif
}
#endif
#endif

#ifdef COMPUTE_F16
alias tile_t = f16;
#else
alias tile_t = f32;
#endif
#ifdef ACCUM_F16
alias acc_t = f16;
#else
alias acc_t = f32;
#endif

// Output row r (of this part) for activation row n: the sum plus the bias.
fn put(r: u32, n: u32, sum: acc_t) {
    let col = p.row_offset + r;
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[col];
    }
    y[n * p.out_stride + col] = f32(sum) + b;
}

// [Σ_c wv[c] · m[j][c]] for j = 0..4: four elements of one weight row against four activation
// rows (the columns of m).
fn dot4(wv: vec4<tile_t>, m: mat4x4<tile_t>) -> vec4<acc_t> {
#ifdef COMPUTE_F16
#ifndef ACCUM_F16
    // f16 products, f32 sums: each product converted before it is added (a vector-matrix
    // product would add four of them in f16; fp8 e5m2 weights overflow that).
    let t = transpose(m);
    return vec4<acc_t>(t[0] * wv.x) + vec4<acc_t>(t[1] * wv.y) + vec4<acc_t>(t[2] * wv.z) + vec4<acc_t>(t[3] * wv.w);
#endif
#endif
    return vec4<acc_t>(wv * m);
}

#ifdef X_VEC4
// Where activation rows n..n+4 start in X (the last one for rows past its edge, never stored).
fn x_offsets(n: u32) -> vec4<u32> {
    let last = p.n - 1u;
    return vec4<u32>(min(n, last), min(n + 1u, last), min(n + 2u, last), min(n + 3u, last)) * p.cols;
}

// Elements k..k+4 of the activation rows at offsets o.
fn x_rows(o: vec4<u32>, k: u32) -> mat4x4<tile_t> {
    return mat4x4<tile_t>(mat4x4<f32>(x[(o.x + k) / 4u], x[(o.y + k) / 4u], x[(o.z + k) / 4u], x[(o.w + k) / 4u]));
}
#endif

#ifdef LAYOUT_ROWS
// CPU adapters: each invocation owns ROWS_PER_INV rows of W (rows r, r + 64, …) and
// N_PER_WG activation rows, with no workgroup memory and no barriers (lavapipe runs a barrier
// as a switch between the workgroup's SIMD batches). On a CPU every load is a loop over the
// SIMD lanes costing tens of FMAs, so the register tile is as large as spilling allows.
// X_VEC4 (rows of X a whole number of vec4) loads activations four elements at a time (a vec4
// load costs about what a scalar one does: f32 GEMM ran 2x faster) in an 8 x 16 tile: per
// step of four k, 8 weight units' parts and 16 activation loads feed 512 multiply-adds. On
// GL (llvmpipe, no subgroups) that tile measured 1.2-1.45x the 4 x 8 one before it (f32,
// q8_0, q4_k at 1024x4096, n = 128); 4 x 16 gained nothing, since each lane loads every
// activation row it uses, so only more weight rows cut loads per multiply-add. The scalar
// path (rows not whole vec4s) keeps 4 x 8.
// SMALL_N (n <= 8, a prefill of a few tokens): 8 activation rows (the 16-row tile would
// compute mostly clamped copies of the last row: lavapipe took as long for n = 2 as for 32).
#ifdef X_VEC4
#ifdef SMALL_N
const N_PER_WG: u32 = 8u;
#else
const N_PER_WG: u32 = 16u;
#endif
const ROWS_PER_INV: u32 = 8u;
#else
const N_PER_WG: u32 = 8u;
const ROWS_PER_INV: u32 = 4u;
#endif

#ifndef X_SHUFFLE
#ifdef X_VEC4
// Elements k..k+4 of the N_PER_WG activation rows, four rows (columns) per matrix.
alias XRows = array<mat4x4<tile_t>, N_PER_WG / 4u>;
// One weight row's sums against the N_PER_WG activation rows, four per vector.
alias RowSums = array<vec4<acc_t>, N_PER_WG / 4u>;

// A row's sums plus its four weights v against the step's activations (constant indices
// only, so the arrays stay in registers or spill slots).
fn row_step(v: vec4<tile_t>, m: XRows, a: RowSums) -> RowSums {
#ifdef SMALL_N
    return RowSums(a[0] + dot4(v, m[0]), a[1] + dot4(v, m[1]));
#else
    return RowSums(a[0] + dot4(v, m[0]), a[1] + dot4(v, m[1]), a[2] + dot4(v, m[2]), a[3] + dot4(v, m[3]));
#endif
}
#endif
#endif


#ifdef NF4_BOOK
// nf4's code book across the subgroup (blocks.wgsl's nf4_lookup), set once per invocation.
var<private> nf4_book: vec2<f32>;
#endif

#ifdef X_SHUFFLE
// Shuffled activations (rows of X a whole number of vec4s): per step of four k, each lane
// loads one vec4 of activation rows n0 + lane + 8j (j = 0..4), and the 32 rows' values reach
// every lane by constant-index shuffles, a few operations each, while a load is a per-lane
// loop over the SIMD lanes (llvmpipe: a branch, a bounds check and an insert per lane and
// component) costing tens of multiply-adds. So the register tile is as large as spilling
// allows: 4 weight rows (r0 + 64 i) by 32 activation rows, 8 loads per 512 multiply-adds.
// Measured on lavapipe at 4096x4096, n = 512, against 2 x 16 (4 loads per 128): q8_0
// 543 -> 354 ms, q6_k 633 -> 433, f16 511 -> 417, f32 629 -> 582 (best of two runs each).
// SMALL_N (n <= 8, a prefill of a few tokens): 8 activation rows, one load per lane (32 would
// compute mostly clamped copies of the last row: lavapipe took as long for n = 2 as for 32).
// SHUFFLE_TALL: 8 weight rows by 16 activation rows, as many sums. Per step of four k a lane
// loads a vector per weight row it owns and one per eight activation rows, so dtypes whose
// weights take less than a vector per row and step (4-bit quants, fp8, q8_0) load less in a
// taller tile: 8 x 16 makes 2 activation loads where 4 x 32 made 4, for 4 more (shorter)
// weight loads. KernelKey::shuffle_tall picks it for the dtypes where it measured faster.
#ifdef SHUFFLE_TALL
const SHUFFLE_ROWS_PER_WG: u32 = 512u;
#else
const SHUFFLE_ROWS_PER_WG: u32 = 256u;
#endif
#ifdef SMALL_N
const SHUFFLE_N_PER_WG: u32 = 8u;
#else
#ifdef SHUFFLE_TALL
const SHUFFLE_N_PER_WG: u32 = 16u;
#else
const SHUFFLE_N_PER_WG: u32 = 32u;
#endif
#endif

// Elements k..k+4 of the activation rows, four rows (columns) per matrix: m[2j + h] holds
// rows n0 + 8j + 4h ..+4, shuffled from lanes 4h..4h+4 of `own[j]`.
alias XCols = array<mat4x4<tile_t>, SHUFFLE_N_PER_WG / 4u>;
// One weight row's sums against the activation rows, four per vector.
alias RowSums = array<vec4<acc_t>, SHUFFLE_N_PER_WG / 4u>;

// Elements k..k+4 of four activation rows (the columns), from lanes first..first+4.
fn x_cols(own: vec4<f32>, first: u32) -> mat4x4<tile_t> {
    return mat4x4<tile_t>(mat4x4<f32>(
        subgroupShuffle(own, first),
        subgroupShuffle(own, first + 1u),
        subgroupShuffle(own, first + 2u),
        subgroupShuffle(own, first + 3u),
    ));
}

// A row's sums plus its four weights v against the step's activations. Indices are
// constants, so the arrays stay in registers (or their spill slots), never in indexed memory.
fn row_step(v: vec4<tile_t>, m: XCols, a: RowSums) -> RowSums {
#ifdef SMALL_N
    return RowSums(a[0] + dot4(v, m[0]), a[1] + dot4(v, m[1]));
#else
#ifdef SHUFFLE_TALL
    return RowSums(a[0] + dot4(v, m[0]), a[1] + dot4(v, m[1]), a[2] + dot4(v, m[2]), a[3] + dot4(v, m[3]));
#else
    return RowSums(
        a[0] + dot4(v, m[0]), a[1] + dot4(v, m[1]), a[2] + dot4(v, m[2]), a[3] + dot4(v, m[3]),
        a[4] + dot4(v, m[4]), a[5] + dot4(v, m[5]), a[6] + dot4(v, m[6]), a[7] + dot4(v, m[7]),
    );
#endif
#endif
}

// Stores weight row r's sums for activation rows n0..n0 + SHUFFLE_N_PER_WG (those that exist).
fn put_row(r: u32, n0: u32, sums: RowSums) {
    if (r >= p.rows) {
        return;
    }
    for (var j = 0u; j < min(SHUFFLE_N_PER_WG, p.n - n0); j = j + 1u) {
        put(r, n0 + j, sums[j / 4u][j % 4u]);
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    let r0 = wg.x * SHUFFLE_ROWS_PER_WG + lid;
    let n0 = wg.y * SHUFFLE_N_PER_WG;
    // Every lane runs (rows past an edge repeat the last one and are never stored): a shuffle
    // needs its source lane.
    let last_n = p.n - 1u;
    let last_r = p.rows - 1u;
    let lane = sg_lane % 8u;
#ifdef NF4_BOOK
    nf4_book = nf4_book_of(lane);
#endif
    let xo = vec4<u32>(
        min(n0 + lane, last_n), min(n0 + 8u + lane, last_n),
        min(n0 + 16u + lane, last_n), min(n0 + 24u + lane, last_n),
    ) * p.cols;
    let wo = vec4<u32>(
        min(r0, last_r), min(r0 + 64u, last_r), min(r0 + 128u, last_r), min(r0 + 192u, last_r),
    ) * p.cols;
    var s0 = RowSums();
    var s1 = RowSums();
    var s2 = RowSums();
    var s3 = RowSums();
#ifdef SHUFFLE_TALL
    // Weight rows r0 + 256 .. r0 + 448, 64 apart.
    let wt = vec4<u32>(
        min(r0 + 256u, last_r), min(r0 + 320u, last_r), min(r0 + 384u, last_r), min(r0 + 448u, last_r),
    ) * p.cols;
    var s4 = RowSums();
    var s5 = RowSums();
    var s6 = RowSums();
    var s7 = RowSums();
#endif
    for (var k0 = 0u; k0 < p.cols; k0 = k0 + STEP) {
        let u0 = load_unit(wo.x + k0);
        let u1 = load_unit(wo.y + k0);
        let u2 = load_unit(wo.z + k0);
        let u3 = load_unit(wo.w + k0);
#ifdef SHUFFLE_TALL
        let u4 = load_unit(wt.x + k0);
        let u5 = load_unit(wt.y + k0);
        let u6 = load_unit(wt.z + k0);
        let u7 = load_unit(wt.w + k0);
#endif
        for (var s = 0u; s < STEP / 4u; s = s + 1u) {
            let k = k0 + 4u * s;
            let own0 = x[(xo.x + k) / 4u];
#ifdef SMALL_N
            let m = XCols(x_cols(own0, 0u), x_cols(own0, 4u));
#else
            let own1 = x[(xo.y + k) / 4u];
#ifdef SHUFFLE_TALL
            let m = XCols(x_cols(own0, 0u), x_cols(own0, 4u), x_cols(own1, 0u), x_cols(own1, 4u));
#else
            let own2 = x[(xo.z + k) / 4u];
            let own3 = x[(xo.w + k) / 4u];
            let m = XCols(
                x_cols(own0, 0u), x_cols(own0, 4u), x_cols(own1, 0u), x_cols(own1, 4u),
                x_cols(own2, 0u), x_cols(own2, 4u), x_cols(own3, 0u), x_cols(own3, 4u),
            );
#endif
#endif
            s0 = row_step(vec4<tile_t>(unit_part(u0, s)), m, s0);
            s1 = row_step(vec4<tile_t>(unit_part(u1, s)), m, s1);
            s2 = row_step(vec4<tile_t>(unit_part(u2, s)), m, s2);
            s3 = row_step(vec4<tile_t>(unit_part(u3, s)), m, s3);
#ifdef SHUFFLE_TALL
            s4 = row_step(vec4<tile_t>(unit_part(u4, s)), m, s4);
            s5 = row_step(vec4<tile_t>(unit_part(u5, s)), m, s5);
            s6 = row_step(vec4<tile_t>(unit_part(u6, s)), m, s6);
            s7 = row_step(vec4<tile_t>(unit_part(u7, s)), m, s7);
#endif
        }
    }
    put_row(r0, n0, s0);
    put_row(r0 + 64u, n0, s1);
    put_row(r0 + 128u, n0, s2);
    put_row(r0 + 192u, n0, s3);
#ifdef SHUFFLE_TALL
    put_row(r0 + 256u, n0, s4);
    put_row(r0 + 320u, n0, s5);
    put_row(r0 + 384u, n0, s6);
    put_row(r0 + 448u, n0, s7);
#endif
}
#else
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r0 = wg.x * (64u * ROWS_PER_INV) + lid;
    let n0 = wg.y * N_PER_WG;
    if (r0 >= p.rows) {
        return;
    }
    let count = min(N_PER_WG, p.n - n0);
    // Rows past the edge (of W or of X) repeat the last valid one and are never stored.
    let last_n = p.n - 1u;
    let last_r = p.rows - 1u;
    var wb: array<u32, ROWS_PER_INV>;
    for (var i = 0u; i < ROWS_PER_INV; i = i + 1u) {
        wb[i] = min(r0 + 64u * i, last_r) * p.cols;
    }
#ifdef X_VEC4
    let xo0 = x_offsets(n0);
    let xo1 = x_offsets(n0 + 4u);
#ifndef SMALL_N
    let xo2 = x_offsets(n0 + 8u);
    let xo3 = x_offsets(n0 + 12u);
#endif
    var s0 = RowSums();
    var s1 = RowSums();
    var s2 = RowSums();
    var s3 = RowSums();
    var s4 = RowSums();
    var s5 = RowSums();
    var s6 = RowSums();
    var s7 = RowSums();
    for (var k0 = 0u; k0 < p.cols; k0 = k0 + STEP) {
        let u0 = load_unit(wb[0] + k0);
        let u1 = load_unit(wb[1] + k0);
        let u2 = load_unit(wb[2] + k0);
        let u3 = load_unit(wb[3] + k0);
        let u4 = load_unit(wb[4] + k0);
        let u5 = load_unit(wb[5] + k0);
        let u6 = load_unit(wb[6] + k0);
        let u7 = load_unit(wb[7] + k0);
        for (var s = 0u; s < STEP / 4u; s = s + 1u) {
            let k = k0 + 4u * s;
#ifdef SMALL_N
            let m = XRows(x_rows(xo0, k), x_rows(xo1, k));
#else
            let m = XRows(x_rows(xo0, k), x_rows(xo1, k), x_rows(xo2, k), x_rows(xo3, k));
#endif
            s0 = row_step(vec4<tile_t>(unit_part(u0, s)), m, s0);
            s1 = row_step(vec4<tile_t>(unit_part(u1, s)), m, s1);
            s2 = row_step(vec4<tile_t>(unit_part(u2, s)), m, s2);
            s3 = row_step(vec4<tile_t>(unit_part(u3, s)), m, s3);
            s4 = row_step(vec4<tile_t>(unit_part(u4, s)), m, s4);
            s5 = row_step(vec4<tile_t>(unit_part(u5, s)), m, s5);
            s6 = row_step(vec4<tile_t>(unit_part(u6, s)), m, s6);
            s7 = row_step(vec4<tile_t>(unit_part(u7, s)), m, s7);
        }
    }
    let sums = array<RowSums, 8>(s0, s1, s2, s3, s4, s5, s6, s7);
    for (var i = 0u; i < ROWS_PER_INV; i = i + 1u) {
        let r = r0 + 64u * i;
        if (r > last_r) {
            break;
        }
        for (var j = 0u; j < count; j = j + 1u) {
            put(r, n0 + j, sums[i][j / 4u][j % 4u]);
        }
    }
#else
    var xb: array<u32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        xb[j] = min(n0 + j, last_n) * p.cols;
    }
    var lo: array<vec4<acc_t>, 4>;
    var hi: array<vec4<acc_t>, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        lo[i] = vec4<acc_t>(0.0);
        hi[i] = vec4<acc_t>(0.0);
    }
    for (var k = 0u; k < p.cols; k = k + 1u) {
        let xlo = vec4<tile_t>(vec4<f32>(x[xb[0] + k], x[xb[1] + k], x[xb[2] + k], x[xb[3] + k]));
        let xhi = vec4<tile_t>(vec4<f32>(x[xb[4] + k], x[xb[5] + k], x[xb[6] + k], x[xb[7] + k]));
        for (var i = 0u; i < 4u; i = i + 1u) {
            let wv = tile_t(dequant(wb[i] + k));
            lo[i] = lo[i] + vec4<acc_t>(wv * xlo);
            hi[i] = hi[i] + vec4<acc_t>(wv * xhi);
        }
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = r0 + 64u * i;
        if (r > last_r) {
            break;
        }
        for (var j = 0u; j < count; j = j + 1u) {
            put(r, n0 + j, select(hi[i][j % 4u], lo[i][j % 4u], j < 4u));
        }
    }
#endif
}
#endif
#else
#ifdef LAYOUT_SUBGROUP
// A few activation rows on GPUs (n <= 8, a short prefill; X_VEC4 rows of whole units): a
// subgroup per weight row, its lanes taking the row's units in turn, each unit loaded and
// decoded once for four activation rows (grid.y: groups of four), the lanes' sums added by
// subgroupAdd. The weights are read as a GEMV reads them, once per four activation rows,
// where the tiles compute a whole 64- or 128-wide tile in n (a 64-row prefill's work for 2
// rows) and make one workgroup per 64 or 128 weight rows.
// ROWS_PER_WG (valued) is WG_SIZE / the adapter's fixed subgroup size.
@compute @workgroup_size(WG_SIZE)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg_size: u32,
) {
    let r = wg.x * ROWS_PER_WG + sg;
    let n0 = wg.y * 4u;
    let xo = x_offsets(n0);
    var acc = vec4<acc_t>(0.0);
    // The whole subgroup has the same row: uniform control flow for subgroupAdd below.
    if (r < p.rows) {
        let wo = r * p.cols;
        for (var k0 = lane * STEP; k0 < p.cols; k0 = k0 + sg_size * STEP) {
            let u = load_unit(wo + k0);
            for (var s = 0u; s < STEP / 4u; s = s + 1u) {
                acc = acc + dot4(vec4<tile_t>(unit_part(u, s)), x_rows(xo, k0 + 4u * s));
            }
        }
    }
    let total = subgroupAdd(acc);
    if (r < p.rows && lane == 0u) {
        for (var j = 0u; j < min(4u, p.n - n0); j = j + 1u) {
            put(r, n0 + j, total[j]);
        }
    }
}
#else
// Tiles (GPUs): a workgroup of 16 x 16 invocations owns a TILE x TILE block of outputs
// (TILE = 16 TILE_REG rows of W by as many rows of X), and each invocation a TILE_REG x
// TILE_REG register tile: weight rows 4 ty + 64 h + i and activation rows 4 tx + 64 h' + j
// (h, h' < TILE_REG / 4; i, j < 4), so that it reads both operands from workgroup memory as
// vec4s. Per k, TILE_REG / 2 vector loads feed TILE_REG² multiply-adds: 2 for 16 at
// TILE_REG = 4, 4 for 64 at 8 (TILE_8X8).
// The sums are named 4 x 4 matrices (column i: weight row i; component j: activation row j),
// never arrays indexed by loop counters: on the H200 (session 11) the register tile kept as
// `array<array<vec4>>` indexed in loops ran every dtype at 2.0 TFLOP/s, a fifth of the
// scalar 4 x 4 tile with named sums it replaced (9.7-11.3): an array indexed at run time
// lives in memory, not registers (the lesson of the row layouts on lavapipe, too).
// K advances TILE_K at a time: each invocation decodes one k of four consecutive weight rows
// (`dequant(e)`: every dtype, bit-exact with the CPU reference; neighbouring invocations take
// neighbouring k) and copies the same of X, each stored as one vector, both transposed
// ([k][4 rows]) into workgroup memory. The next slice's loads are issued before this slice is
// multiplied, so their latency hides behind the multiply-adds.
// Each k's row of a tile is padded by one vector, so the lanes that store a slice hit
// different banks rather than one.
const REG: u32 = TILE_REG;
const TILE: u32 = 16u * REG;
// 16 at TILE_REG 4, 8 at 8: about 8.5 KiB of workgroup memory either way.
const TILE_K: u32 = 64u / REG;
// Vectors per k of a tile, padded.
const STRIDE: u32 = TILE / 4u + 1u;

var<workgroup> wt: array<vec4<tile_t>, TILE_K * STRIDE>;
var<workgroup> xt: array<vec4<tile_t>, TILE_K * STRIDE>;

// Weight r, k of this part (0 past its edge).
fn w_or_zero(r: u32, k: u32) -> f32 {
    if (r < p.rows && k < p.cols) {
        return dequant(r * p.cols + k);
    }
    return 0.0;
}

// Activation n, k (0 past the edge).
fn x_or_zero(n: u32, k: u32) -> f32 {
    if (n < p.n && k < p.cols) {
        return x[n * p.cols + k];
    }
    return 0.0;
}

// Column k of weight rows r ..r + 4.
fn w_quad(r: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(w_or_zero(r, k), w_or_zero(r + 1u, k), w_or_zero(r + 2u, k), w_or_zero(r + 3u, k));
}

// Column k of activation rows n ..n + 4.
fn x_quad(n: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(x_or_zero(n, k), x_or_zero(n + 1u, k), x_or_zero(n + 2u, k), x_or_zero(n + 3u, k));
}

// The outer product of four weights (one per row) and four activations (one per row).
fn outer(wv: vec4<tile_t>, xv: vec4<tile_t>) -> mat4x4<acc_t> {
    return mat4x4<acc_t>(
        vec4<acc_t>(xv * wv.x),
        vec4<acc_t>(xv * wv.y),
        vec4<acc_t>(xv * wv.z),
        vec4<acc_t>(xv * wv.w),
    );
}

// Stores the 4 x 4 sums of weight rows r ..r + 4 against activation rows n ..n + 4.
fn put_quad(r: u32, n: u32, m: mat4x4<acc_t>) {
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (r + i < p.rows && n + j < p.n) {
                put(r + i, n + j, m[i][j]);
            }
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = lid % 16u;
    let ty = lid / 16u;
    let row0 = wg.x * TILE;
    let n0 = wg.y * TILE;
    // This invocation's share of each slice: column kk of the rows' vector g (rows 4 g ..+4),
    // for both operands (TILE / 4 vectors x TILE_K columns = 256).
    let kk = lid % TILE_K;
    let g = lid / TILE_K;
    // a<h><h'>: weight rows 4 ty + 64 h ..+4 against activation rows 4 tx + 64 h' ..+4.
    var a00 = mat4x4<acc_t>();
#ifdef TILE_8X8
    var a01 = mat4x4<acc_t>();
    var a10 = mat4x4<acc_t>();
    var a11 = mat4x4<acc_t>();
#endif
    var wn = w_quad(row0 + 4u * g, kk);
    var xn = x_quad(n0 + 4u * g, kk);
    for (var k0 = 0u; k0 < p.cols; k0 = k0 + TILE_K) {
        wt[kk * STRIDE + g] = vec4<tile_t>(wn);
        xt[kk * STRIDE + g] = vec4<tile_t>(xn);
        workgroupBarrier();
        wn = w_quad(row0 + 4u * g, k0 + TILE_K + kk);
        xn = x_quad(n0 + 4u * g, k0 + TILE_K + kk);
        for (var k = 0u; k < TILE_K; k = k + 1u) {
            let w0 = wt[k * STRIDE + ty];
            let x0 = xt[k * STRIDE + tx];
            a00 = a00 + outer(w0, x0);
#ifdef TILE_8X8
            let w1 = wt[k * STRIDE + ty + 16u];
            let x1 = xt[k * STRIDE + tx + 16u];
            a01 = a01 + outer(w0, x1);
            a10 = a10 + outer(w1, x0);
            a11 = a11 + outer(w1, x1);
#endif
        }
        workgroupBarrier();
    }
    put_quad(row0 + 4u * ty, n0 + 4u * tx, a00);
#ifdef TILE_8X8
    put_quad(row0 + 4u * ty, n0 + 4u * tx + 64u, a01);
    put_quad(row0 + 4u * ty + 64u, n0 + 4u * tx, a10);
    put_quad(row0 + 4u * ty + 64u, n0 + 4u * tx + 64u, a11);
#endif
}
#endif
#endif
