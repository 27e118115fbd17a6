//! Kernels: one file per op beside its `shaders/<op>.wgsl`, with its CPU reference; the shader
//! registry and preprocessor; and `select`, the one place that decides which variant runs.

pub mod dequantize;
pub mod fma_peak;
pub mod gemm;
pub mod gemv;
pub mod quantize;
pub mod select;
pub mod shader;
pub mod stream_read;
pub mod timing;
pub mod tolerance;
pub mod tune;

use crate::device::capabilities::GemvShape;
use crate::device::selftest::{Section, Workaround};
use crate::dtype::{AccumDType, ComputeDType, StorageDType};
use select::{KernelKey, Reduction};
use shader::ShaderVariant;

/// Every fixed subgroup size a geometry can have a subgroup-per-row layout for (GEMV's, and
/// GEMM's for a few tokens): 256-invocation workgroups of 256 / size rows.
const SUBGROUP_SIZES: [u32; 6] = [4, 8, 16, 32, 64, 128];

/// Every shader variant the engine can ask for, on any adapter. The portability test
/// translates each to SPIR-V, MSL, HLSL and GLSL; nothing compiles a variant not listed here.
pub fn all_variants() -> Vec<ShaderVariant> {
    let mut v: Vec<ShaderVariant> = Section::ALL.iter().map(|s| s.variant()).collect();
    let mut gemv_types = vec![(StorageDType::F16, ComputeDType::F16)];
    gemv_types.extend(dequantize::DTYPES.iter().map(|&d| (d, ComputeDType::F32)));
    for (dtype, compute) in gemv_types {
        // Every row shape an adapter's geometry can produce: serial 64, workgroup 256/4, and
        // subgroup 256 / subgroup size for sizes 4..=128.
        let mut shapes = vec![
            (Reduction::Serial, 64, 64),
            (Reduction::SerialShuffle, 64, 64),
            (Reduction::Workgroup, 256, 4),
        ];
        shapes.extend(SUBGROUP_SIZES.map(|s| (Reduction::Subgroup, 256, 256 / s)));
        for (reduction, workgroup_size, rows_per_workgroup) in shapes {
            let shape = GemvShape {
                workgroup_size,
                rows_per_workgroup,
                rows_per_invocation: 1,
            };
            for vec4 in [false, true].into_iter().filter(|v| {
                KernelKey::reads_vec4(dtype, true) || KernelKey::reads_vec4(dtype, false) || !v
            }) {
                for workarounds in [vec![], vec![Workaround::F16UnpackHiViaShift]] {
                    let key = KernelKey::gemv(dtype, compute, reduction, shape, vec4, workarounds);
                    // Shuffled activations exist for some paths only.
                    let runs =
                        |k: &KernelKey| k.reduction != Reduction::SerialShuffle || k.shares_x();
                    let dot = key.with_int_dot();
                    if KernelKey::has_int_dot(dtype) && runs(&dot) && (!vec4 || dot.int_dot_vec4())
                    {
                        // With 32-byte loads too, where the dtype has them; and in rows that are
                        // not whole groups of eight 32-element blocks.
                        for dot in dot.wide_variant(true).into_iter().chain([dot.clone()]) {
                            v.push(dot.variant());
                            let realigned = dot.for_cols(32);
                            if realigned.realign_groups {
                                v.push(realigned.variant());
                            }
                        }
                    }
                    if !runs(&key) || (vec4 && !key.vec4_decoder()) {
                        continue;
                    }
                    // With 32-byte loads too, where the key has them; with each row count it
                    // can compute, and f16 sums where it can keep them.
                    for key in key.wide_variant(true).into_iter().chain([key.clone()]) {
                        for k in key.row_variants() {
                            if k.can_sum_in_f16() {
                                v.push(k.with_accum(AccumDType::F16).variant());
                            }
                            v.push(k.variant());
                        }
                        // nf4's 16-byte reader over rows that are not whole groups of four
                        // blocks, with either sum type.
                        if key.nf4_vec4() {
                            v.push(key.for_cols(64).variant());
                            v.push(key.with_accum(AccumDType::F16).for_cols(64).variant());
                        }
                    }
                }
            }
        }
    }
    for dtype in dequantize::DTYPES {
        for workarounds in [vec![], vec![Workaround::F16UnpackHiViaShift]] {
            v.extend(dequantize::variant(dtype, &workarounds));
        }
        for (compute, accum) in gemm::PRECISIONS {
            for layout in gemm::LAYOUTS.into_iter().chain([Reduction::SerialShuffle]) {
                // The subgroup-per-row layout too, for every subgroup size a geometry can have
                // (f32 sums only).
                let mut keys = gemm::with_each_tile_reg(&gemm::key(dtype, compute, accum, layout));
                if layout == Reduction::Workgroup && accum == AccumDType::F32 {
                    keys.extend(SUBGROUP_SIZES.map(|s| {
                        gemm::with_subgroup_shape(
                            &keys[0],
                            GemvShape {
                                workgroup_size: 256,
                                rows_per_workgroup: 256 / s,
                                rows_per_invocation: 1,
                            },
                        )
                    }));
                }
                // With 32-byte weight loads too, where a key has them.
                let wide: Vec<KernelKey> =
                    keys.iter().filter_map(|k| k.wide_variant(true)).collect();
                keys.extend(wide);
                for key in keys {
                    // 16: vec4 rows (weight units) for every dtype; 4: for f32 and the block
                    // dtypes; 1: none.
                    // n: the row layouts' 8-row tile (SMALL_N) and their wide ones.
                    for cols in [16, 4, 1] {
                        for n in [gemm::SMALL_N, gemm::SMALL_N + 1] {
                            v.push(gemm::variant(&gemm::for_shape(&key, cols, n)));
                        }
                    }
                }
            }
        }
    }
    v.push(quantize::variant());
    for layout in [stream_read::Layout::Strided, stream_read::Layout::Chunked] {
        for word_bytes in [16, 32] {
            v.push(stream_read::variant(layout, word_bytes));
        }
    }
    v.push(fma_peak::variant(ComputeDType::F32));
    v.push(fma_peak::variant(ComputeDType::F16));
    v
}
