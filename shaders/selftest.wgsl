// Driver self-test: known-answer checks of every WGSL primitive the kernels rely on.
//
// Drivers get primitives wrong and users then get silent garbage (lavapipe in Mesa 22.3
// returns 0 for `unpack2x16float(x).y`). Inputs come from a storage buffer so that neither
// naga nor the driver can fold the answers at compile time. One section per define, each a
// separate pipeline, so that a section that fails to compile fails only its own checks:
//   SECTION_BASE      f16 unpack/pack in f32, byte extraction, bitcast, workgroup barriers
//   SECTION_DOT4      unpack4xI8 and dot4I8Packed (WGSL packed_4x8_integer_dot_product)
//   SECTION_F16       f16 arithmetic and vec2<f16> storage loads (`enable f16;`); binding 2
//                     is the input buffer again, seen as array<vec2<f16>> (naga 30 types
//                     `bitcast<vec2<f16>>(u32)` as f32, so kernels load f16 pairs this way)
//   SECTION_SUBGROUP  subgroupAdd, subgroupShuffle (needs only the SUBGROUP device feature; naga rejects
//                     `enable subgroups;`)
//   SECTION_LOOPS     how many loop iterations an invocation may run: Mesa's llvmpipe (lavapipe
//                     and GL) ends every loop of a shader invocation once 65,535 iterations
//                     have run in all, without an error, so a longer loop sums only part of
//                     its input
// Slot numbers are mirrored in src/device/selftest.rs.

#ifdef SECTION_F16
enable f16;
#endif

// in[0]: f16 pair (lo 1.5 = 0x3e00, hi -2.25 = 0xc080)
// in[1]: i8x4 (127, -127, 0, -64); in[2]: i8x4 (1, 2, -3, 4)
// in[3]: 1.5f, in[4]: -2.25f, in[5]: 1u, in[6]: 2.0f, in[7]: 0.1f
@group(0) @binding(0) var<storage, read> inp: array<u32, 8>;
@group(0) @binding(1) var<storage, read_write> outp: array<u32, 96>;

#ifdef SECTION_F16
@group(0) @binding(2) var<storage, read> inp_h: array<vec2<f16>, 8>;
#endif

var<workgroup> shared_sum: array<u32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
#ifdef SECTION_SUBGROUP
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) sg_id: u32,
#endif
) {
    let a = inp[0];
    let b = inp[1];
    let c = inp[2];
#ifdef SECTION_BASE
    // Workgroup barrier: a tree reduction of (3 * lid + in[5]) over 64 invocations.
    shared_sum[lid] = 3u * lid + inp[5];
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            shared_sum[lid] = shared_sum[lid] + shared_sum[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        outp[0] = bitcast<u32>(unpack2x16float(a).x);
        outp[1] = bitcast<u32>(unpack2x16float(a).y);
        outp[2] = bitcast<u32>(unpack2x16float(a >> 16u).x);
        outp[3] = pack2x16float(vec2<f32>(bitcast<f32>(inp[3]), bitcast<f32>(inp[4])));
        let sn = unpack4x8snorm(b);
        outp[4] = bitcast<u32>(sn.x);
        outp[5] = bitcast<u32>(sn.y);
        outp[6] = bitcast<u32>(sn.z);
        outp[7] = bitcast<u32>(sn.w);
        for (var i = 0u; i < 4u; i = i + 1u) {
            outp[8u + i] = bitcast<u32>(extractBits(bitcast<i32>(b), 8u * i, 8u));
        }
        outp[17] = bitcast<u32>(bitcast<f32>(inp[3]) * bitcast<f32>(inp[6]));
        outp[18] = shared_sum[0];
    }
#endif
#ifdef SECTION_DOT4
    if (lid == 0u) {
        let v = unpack4xI8(b);
        outp[12] = bitcast<u32>(v.x);
        outp[13] = bitcast<u32>(v.y);
        outp[14] = bitcast<u32>(v.z);
        outp[15] = bitcast<u32>(v.w);
        outp[16] = bitcast<u32>(dot4I8Packed(b, c));
    }
#endif
#ifdef SECTION_F16
    if (lid == 0u) {
        let h = inp_h[0];
        outp[19] = bitcast<u32>(f32(h.x * h.y + f16(0.5)));
        outp[20] = bitcast<u32>(f32(h.x));
        outp[21] = bitcast<u32>(f32(h.y));
        outp[24] = bitcast<u32>(f32(dot(h, vec2<f16>(f16(bitcast<f32>(inp[6])), f16(inp[5])))));
        outp[25] = bitcast<u32>(f32(f16(bitcast<f32>(inp[7]))));
    }
#endif
#ifdef SECTION_LOOPS
    // 100,000 iterations (in[5] = 1, so nothing can be folded at compile time).
    let trips = inp[5] * 100000u;
    var count = 0u;
    for (var i = 0u; i < trips; i = i + 1u) {
        count = count + inp[5];
    }
    if (lid == 0u) {
        outp[26] = count;
    }
#endif
#ifdef SECTION_SUBGROUP
    // Every invocation checks its own subgroup's sums: bit 0 for subgroupAdd(1u) == size,
    // bit 1 for subgroupAdd(f32(id)) == size * (size - 1) / 2; bits 8..15 hold the size.
    // Bit 2: subgroupShuffle of a u32 from the next lane (a computed index); bit 3: of a
    // vec4<f32> from lane 7 (a constant index, as the GEMV kernels use it).
    let count = subgroupAdd(inp[5]);
    let ids = subgroupAdd(f32(sg_id));
    let want = f32(sg_size * (sg_size - 1u) / 2u);
    let next = (sg_id + 1u) % sg_size;
    let shuffled = subgroupShuffle(3u * sg_id + inp[5], next);
    let from7 = subgroupShuffle(vec4<f32>(f32(sg_id), 1.0, 2.0, f32(sg_id) * 0.5), 7u);
    let lane7 = f32(7u % sg_size);
    let vec_ok = all(from7 == vec4<f32>(lane7, 1.0, 2.0, lane7 * 0.5));
    outp[32u + lid] = select(0u, 1u, count == sg_size) | select(0u, 2u, ids == want)
        | select(0u, 4u, shuffled == 3u * next + 1u) | select(0u, 8u, vec_ok) | (sg_size << 8u);
#endif
}
