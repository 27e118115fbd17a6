// GEMM: Y[n, row_offset + r] = sum_k W[r, k] * X[n, k] (+ bias[row_offset + r]) for a
// row-major W of `rows` x `cols` in its storage dtype and X of `n` rows of `cols` f32: the
// prefill path, where each weight is reused by every activation row, so the work is
// compute-bound and decoding a weight costs 1/n of a GEMV's decode.
//
// Tiling: a workgroup of 256 invocations owns a TILE x TILE (64 x 64) block of outputs (64
// rows of W by 64 rows of X). K advances TILE_K (16) at a time: the workgroup decodes the
// 64 x 16 slice of W through `dequant(e)` (blocks.wgsl: every dtype, bit-exact with the CPU
// reference) and copies the 64 x 16 slice of X, both into workgroup memory; then each
// invocation multiplies its 4 x 4 outputs, rows ty + 16 i and activation rows tx + 16 j
// (strided, so neighbouring invocations read neighbouring workgroup-memory words).
// Elements past the matrix edge are loaded as 0 and outputs past it are not written, so any
// rows, cols and n work.
//
// COMPUTE_F16 holds both tiles in f16 and multiplies in f16 (needs shader-f16).
// ACCUM_F16 also keeps the running sums in f16 (the third precision level, measurable);
// otherwise sums are f32.
// W's part of a split tensor starts at its own buffer's byte 0; row_offset places its outputs;
// out_stride is the output row length (the whole tensor's rows).

#ifdef COMPUTE_F16
enable f16;
#endif

#include "blocks.wgsl"

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
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const SIDE: u32 = 16u; // invocations per tile side: TILE / 4
const LOADS: u32 = TILE * TILE_K / 256u; // elements each invocation loads per tile

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

// [k][row] and [k][activation row]: an invocation's 4 rows are 16 apart.
var<workgroup> wt: array<tile_t, 1024>;
var<workgroup> xt: array<tile_t, 1024>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = lid % SIDE;
    let ty = lid / SIDE;
    let row0 = wg.x * TILE;
    let n0 = wg.y * TILE;
    var acc0 = vec4<acc_t>(0.0);
    var acc1 = vec4<acc_t>(0.0);
    var acc2 = vec4<acc_t>(0.0);
    var acc3 = vec4<acc_t>(0.0);
    for (var k0 = 0u; k0 < p.cols; k0 = k0 + TILE_K) {
        for (var s = 0u; s < LOADS; s = s + 1u) {
            let l = lid + 256u * s;
            let r = l / TILE_K;
            let kk = l % TILE_K;
            let k = k0 + kk;
            var wv = 0.0;
            if (row0 + r < p.rows && k < p.cols) {
                wv = dequant((row0 + r) * p.cols + k);
            }
            wt[kk * TILE + r] = tile_t(wv);
            var xv = 0.0;
            if (n0 + r < p.n && k < p.cols) {
                xv = x[(n0 + r) * p.cols + k];
            }
            xt[kk * TILE + r] = tile_t(xv);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            let o = kk * TILE;
            let xb = vec4<tile_t>(xt[o + tx], xt[o + tx + 16u], xt[o + tx + 32u], xt[o + tx + 48u]);
            acc0 = acc0 + vec4<acc_t>(wt[o + ty] * xb);
            acc1 = acc1 + vec4<acc_t>(wt[o + ty + 16u] * xb);
            acc2 = acc2 + vec4<acc_t>(wt[o + ty + 32u] * xb);
            acc3 = acc3 + vec4<acc_t>(wt[o + ty + 48u] * xb);
        }
        workgroupBarrier();
    }
    store(row0 + ty, n0 + tx, acc0);
    store(row0 + ty + 16u, n0 + tx, acc1);
    store(row0 + ty + 32u, n0 + tx, acc2);
    store(row0 + ty + 48u, n0 + tx, acc3);
}

// Writes output row r (of W) for activation rows n, n + 16, n + 32, n + 48.
fn store(r: u32, n: u32, v: vec4<acc_t>) {
    if (r >= p.rows) {
        return;
    }
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[p.row_offset + r];
    }
    let col = p.row_offset + r;
    if (n < p.n) {
        y[n * p.out_stride + col] = f32(v.x) + b;
    }
    if (n + 16u < p.n) {
        y[(n + 16u) * p.out_stride + col] = f32(v.y) + b;
    }
    if (n + 32u < p.n) {
        y[(n + 32u) * p.out_stride + col] = f32(v.z) + b;
    }
    if (n + 48u < p.n) {
        y[(n + 48u) * p.out_stride + col] = f32(v.w) + b;
    }
}
