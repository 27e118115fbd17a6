// FMA throughput: the arithmetic limit that GEMM figures are divided by.
//
// Each invocation runs 8 independent vec4 multiply-add chains for `iterations` steps:
// 8 chains x 4 lanes x 2 flops = 64 flops per step. The chains converge (x -> x*m + a with
// |m| < 1) so values stay finite in f16 too; the result is written so nothing is dead code.
//   FMA_F16  runs the chains in f16 (`enable f16;`, needs shader-f16); otherwise f32.

#ifdef FMA_F16
enable f16;
alias T = f16;
#else
alias T = f32;
#endif

struct Params {
    iterations: u32,
    invocations: u32,
    groups_x: u32,
    seed: u32,     // 0 in practice; read at run time so the chains cannot be folded
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let id = (wg.y * p.groups_x + wg.x) * WG_SIZE + lid;
    if (id >= p.invocations) {
        return;
    }
    let s = T(f32(p.seed + (id & 7u)) * 0.125);
    let m = vec4<T>(T(0.5), T(0.25), T(0.75), T(0.125)) + vec4<T>(s * T(0.01));
    let a = vec4<T>(T(0.5)) - vec4<T>(s * T(0.01));
    var c0 = vec4<T>(s);
    var c1 = c0 + vec4<T>(T(0.1));
    var c2 = c0 + vec4<T>(T(0.2));
    var c3 = c0 + vec4<T>(T(0.3));
    var c4 = c0 + vec4<T>(T(0.4));
    var c5 = c0 + vec4<T>(T(0.5));
    var c6 = c0 + vec4<T>(T(0.6));
    var c7 = c0 + vec4<T>(T(0.7));
    for (var i = 0u; i < p.iterations; i = i + 1u) {
        c0 = fma(c0, m, a);
        c1 = fma(c1, m, a);
        c2 = fma(c2, m, a);
        c3 = fma(c3, m, a);
        c4 = fma(c4, m, a);
        c5 = fma(c5, m, a);
        c6 = fma(c6, m, a);
        c7 = fma(c7, m, a);
    }
    let t = (c0 + c1) + (c2 + c3) + (c4 + c5) + (c6 + c7);
    sink[id] = f32(t.x + t.y + t.z + t.w);
}
