//! GEMV kernels against the f64 CPU reference, on every adapter, every reachable variant:
//! NMSE within the compute dtype's budget (and llama.cpp's 5e-4 gate), sentinels intact, every
//! output written; and every variant must have run on at least one adapter.

mod common;

use common::*;
use std::collections::BTreeSet;
use wgllm::device::tensor::{upload_tensor, PartLimits};
use wgllm::device::{Gpu, Switches};
use wgllm::dtype::AccumDType;
use wgllm::dtype::StorageDType;
use wgllm::ops::dequantize::{synthetic, DTYPES};
use wgllm::ops::gemv::{
    encode_gemv, encode_gemv_tensor, reachable_variants, reference, GemvParams,
};
use wgllm::ops::select::{select, KernelKey, Op, Reduction};
use wgllm::ops::tolerance::{matmul_nmse, max_abs_error, nmse, MUL_MAT_NMSE};

/// Awkward shapes on purpose, in blocks of the dtype (1 for plain floats): a single row and a
/// single block, odd K (f16/bf16 rows then start mid-word), K = 1757 for plain floats, rows
/// past the 65,535-workgroup dispatch limit, a last workgroup with one row (65: its other
/// lanes redo that row so that shuffles find their source lanes), and rows long enough for the
/// GPU layouts' unrolled loop with a remainder.
fn shapes(dtype: StorageDType) -> Vec<(u32, u32)> {
    let b = dtype.block().elements;
    if b == 1 {
        vec![
            (1, 1),
            (1, 32),
            (9, 1757),
            (33, 1),
            (64, 4096),
            // The GPU layouts' unrolled loop (four units per step of 64 invocations) and its
            // remainder in one row: 1034 vectors.
            (5, 4136),
            (65, 96),
            (129, 31),
            (70_000, 3),
        ]
    } else {
        vec![
            (1, b),
            (9, 7 * b),
            (33, b),
            (4, 4096.max(b)),
            // Int-dot with one invocation per row takes eight blocks at a time: word-wise
            // while a row has an even number of blocks (one group and a tail of two; an odd
            // count has no groups), 16 bytes at a time in rows of whole groups (16 blocks of
            // 32), and realigned in others (groups at any even byte: 10 and 9 blocks, both
            // with a tail; 7 blocks, none).
            (65, 10 * b),
            (65, 16 * b),
            (5, 9 * b),
            (129, 2 * b),
            (70_000, b),
            // The unrolled loop of the GPU layouts and its remainder in one row.
            (3, 4096.max(b) + 3 * b),
        ]
    }
}

/// Asserts `got` against the f64 reference (plus `bias`): within the compute dtype's budget,
/// or, for int-dot kernels (activations quantized to 8 bits), within f32 rounding of the
/// reference that quantizes x the same way and within llama.cpp's mul_mat gate of the exact one.
fn expect_close(
    gpu: &Gpu,
    what: &str,
    key: &KernelKey,
    got: &[f32],
    (w, x): (&[u8], &[f32]),
    rows: u32,
    bias: Option<&[f32]>,
) {
    let cols = x.len() as u32;
    let params = GemvParams::new(rows, cols);
    let add_bias = |mut v: Vec<f32>| {
        if let Some(b) = bias {
            for (y, b) in v.iter_mut().zip(b) {
                *y = (f64::from(*y) + f64::from(*b)) as f32;
            }
        }
        v
    };
    let exact = add_bias(reference(&params, key.dtype, w, x).unwrap());
    let mut checks = vec![("exact", exact, matmul_nmse(key.compute).min(MUL_MAT_NMSE))];
    if key.int_dot {
        checks[0].2 = MUL_MAT_NMSE;
        let q = add_bias(wgllm::ops::gemv::reference_int_dot(&params, key.dtype, w, x).unwrap());
        // f32 rounding (1e-8) on CPU adapters, whose division is exact; WGSL allows f32
        // division 2.5 ulp off, so on a GPU a few activations next to a rounding tie may
        // quantize one step apart from the reference: each such flip costs about 1e-7.
        let budget = if gpu.caps.summary.is_cpu() {
            matmul_nmse(wgllm::dtype::ComputeDType::F32)
        } else {
            1e-6
        };
        checks.push(("quantized-x", q, budget));
    }
    for (name, want, budget) in checks {
        let e = nmse(got, &want).unwrap_or_else(|| panic!("{what}: NaN/Inf mismatch"));
        let (i, max) = max_abs_error(got, &want);
        assert!(
            e <= budget,
            "{what}: NMSE {e:.3e} > {budget:.0e} against the {name} reference; max |err| {max} at row {i} (got {}, want {})",
            got[i],
            want[i]
        );
    }
}

fn check(gpu: &Gpu, key: &KernelKey, rows: u32, cols: u32, seed: u64) {
    let mut rng = Rng::new(seed);
    let w = synthetic(key.dtype, rows as usize * cols as usize, seed).unwrap();
    let x = rng.vec(cols as usize);
    let wb = gpu.upload("w", &w).unwrap();
    let xb = gpu.upload("x", bytemuck::cast_slice(&x)).unwrap();
    let yb = guarded_output(gpu, rows as usize);
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    encode_gemv(gpu, &mut enc, key, (rows, cols), [&wb, &xb, &yb]).unwrap();
    gpu.submit_and_wait("gemv test", enc).unwrap();
    let what = format!("{} on {} at {rows}x{cols}", key.name(), label(gpu));
    let got = read_guarded(gpu, &yb, rows as usize, &what);
    expect_close(gpu, &what, key, &got, (&w, &x), rows, None);
}

#[test]
fn every_variant_matches_the_reference_on_every_adapter() {
    let mut ran: BTreeSet<String> = BTreeSet::new();
    for gpu in all_gpus(Switches::default()) {
        for dtype in DTYPES {
            let keys = reachable_variants(&gpu.caps, dtype);
            assert!(
                !keys.is_empty(),
                "no gemv variant for {dtype} on {}",
                label(&gpu)
            );
            for key in keys {
                for (n, (rows, cols)) in shapes(dtype).into_iter().enumerate() {
                    check(&gpu, &key, rows, cols, 1000 + n as u64);
                    let effective = key.for_cols(cols);
                    ran.insert(format!(
                        "{}_{}_{:?}{}{}{}{}{}{}",
                        key.dtype,
                        key.compute,
                        effective.reduction,
                        if effective.vec4 { "_v4" } else { "" },
                        if effective.realign_groups { "_ra" } else { "" },
                        if effective.wide_loads { "_u64" } else { "" },
                        match effective.rows_per_invocation {
                            1 => String::new(),
                            r => format!("_x{r}"),
                        },
                        if key.int_dot { "_dot4" } else { "" },
                        if effective.pair_mul() { "_pm" } else { "" }
                    ));
                }
                // Past 65,535 workgroups for one invocation per row too (4.2 M rows: plain
                // floats only, a row of whole blocks would make it gigabytes; the grid code is
                // shared by every dtype).
                if key.reduction == Reduction::Serial && dtype.block().elements == 1 {
                    check(&gpu, &key, 65_535 * 64 + 7, 1, 77);
                }
            }
        }
    }
    // Every variant the engine has must have run somewhere: skipping can never hide a path.
    // Shuffled activations exist for the 16-byte and int-dot paths (lavapipe runs them; GL
    // has no subgroups).
    let mut expected = BTreeSet::new();
    let mut kinds: Vec<(String, &str)> = DTYPES.iter().map(|d| (d.to_string(), "f32")).collect();
    kinds.push(("f16".into(), "f16"));
    for (d, c) in kinds {
        let plain = ["f32", "f16", "bf16", "f8_e4m3", "f8_e5m2"].contains(&d.as_str());
        for r in ["Serial", "Workgroup", "Subgroup"] {
            expected.insert(format!("{d}_{c}_{r}"));
            if plain {
                expected.insert(format!("{d}_{c}_{r}_v4"));
            }
            if [
                "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k",
            ]
            .contains(&d.as_str())
            {
                expected.insert(format!("{d}_i8_{r}_dot4"));
                expected.insert(format!("{d}_i8_SerialShuffle_dot4"));
                // Read 16 bytes at a time, one invocation per row; 32-element blocks also in
                // rows that are not whole groups of eight blocks, realigned.
                // Shared activations: q8_0, q4_0, q5_0, q5_1, q4_k, q5_k and q6_k multiply in
                // 16-bit pairs there (_pm), q4_1 by dot4I8Packed.
                let pm = if ["q8_0", "q4_0", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"]
                    .contains(&d.as_str())
                {
                    "_pm"
                } else {
                    ""
                };
                expected.insert(format!("{d}_i8_Serial_v4_dot4"));
                expected.insert(format!("{d}_i8_SerialShuffle_v4_dot4{pm}"));
                if !d.ends_with("_k") {
                    expected.insert(format!("{d}_i8_Serial_v4_ra_dot4"));
                    expected.insert(format!("{d}_i8_SerialShuffle_v4_ra_dot4{pm}"));
                }
                // 32-byte loads (lavapipe has shader-int64): groups and activation windows
                // of the 32-element dtypes (also realigned), k-quant blocks.
                if [
                    "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k",
                ]
                .contains(&d.as_str())
                {
                    expected.insert(format!("{d}_i8_SerialShuffle_v4_u64_dot4{pm}"));
                    if !d.ends_with("_k") {
                        expected.insert(format!("{d}_i8_SerialShuffle_v4_ra_u64_dot4{pm}"));
                    }
                }
            }
        }
        if plain {
            expected.insert(format!("{d}_{c}_SerialShuffle_v4"));
            // 32-byte loads (lavapipe has shader-int64), f32 decode, measured-faster dtypes.
            if c == "f32" && d != "f8_e4m3" {
                expected.insert(format!("{d}_{c}_SerialShuffle_v4_u64"));
                // Two rows per invocation (selected for bf16; reachable for all four).
                expected.insert(format!("{d}_{c}_SerialShuffle_v4_u64_x2"));
            }
        }
        // Several rows per subgroup, sharing activation loads (the unrolled f32-decode paths).
        for rows in [2, 4] {
            expected.insert(format!(
                "{d}_{c}_Subgroup{}_x{rows}",
                if plain { "_v4" } else { "" }
            ));
        }
        if d == "nf4" {
            // Block at a time, and four blocks as 16-byte vectors: in rows of 256 elements as
            // they are, in others realigned.
            expected.insert(format!("{d}_{c}_SerialShuffle"));
            expected.insert(format!("{d}_{c}_SerialShuffle_v4"));
            expected.insert(format!("{d}_{c}_SerialShuffle_v4_ra"));
            // With 32-byte loads (lavapipe has shader-int64), both row kinds.
            expected.insert(format!("{d}_{c}_SerialShuffle_v4_u64"));
            expected.insert(format!("{d}_{c}_SerialShuffle_v4_ra_u64"));
        }
    }
    let missing: Vec<_> = expected.difference(&ran).collect();
    assert!(
        missing.is_empty(),
        "gemv variants that ran on no adapter: {missing:?}"
    );
}

/// f16 runs natively exactly where shader-f16 is usable and the autotune measured it faster
/// than unpacking into f32; otherwise the fallback runs and says why.
#[test]
fn f16_gemv_is_native_only_where_it_measured_faster() {
    use wgllm::ops::select::{select, Op};
    for gpu in all_gpus(Switches::default()) {
        let path = select(&gpu.caps, Op::Gemv, StorageDType::F16, None);
        let race = gpu.caps.tuning.as_ref().and_then(|t| t.f16_gemv.clone());
        // A device check runs the tests with WGLLM_TUNE=off: no race, the device-type rule.
        let tuned = !wgllm::ops::tune::disabled();
        match (gpu.caps.f16().usable(), &race) {
            (true, Some(r)) if r.native_wins() => assert_eq!(path.kind(), "native", "{path:?}"),
            (true, Some(r)) => {
                assert_eq!(path.kind(), "fallback", "{path:?}");
                let loss = format!("measured {}", r.native_loss());
                assert!(format!("{path:?}").contains(&loss), "{path:?}");
            }
            (true, None) if !tuned => assert_eq!(
                path.kind(),
                if gpu.caps.summary.is_cpu() {
                    "fallback"
                } else {
                    "native"
                },
                "{}: {path:?}",
                label(&gpu)
            ),
            (true, None) => panic!("{}: f16 usable but not raced", label(&gpu)),
            (false, _) => assert_eq!(path.kind(), "fallback", "{}: {path:?}", label(&gpu)),
        }
        if gpu.caps.summary.backend == "vulkan" && tuned {
            assert!(
                race.is_some(),
                "lavapipe has shader-f16: the race must have run"
            );
        }
        // Both outcomes of the race, injected: the choice follows the measurement.
        if let Some(mut t) = gpu.caps.tuning.clone().filter(|_| gpu.caps.f16().usable()) {
            for native_faster in [true, false] {
                let r = t.f16_gemv.as_mut().unwrap();
                (r.native.rate, r.fallback.rate) = if native_faster {
                    (2.0, 1.0)
                } else {
                    (1.0, 2.0)
                };
                let caps = gpu.caps.clone().with_tuning(t.clone());
                let path = select(&caps, Op::Gemv, StorageDType::F16, None);
                let want = if native_faster { "native" } else { "fallback" };
                assert_eq!(path.kind(), want, "{path:?}");
                assert_eq!(
                    path.key().unwrap().compute,
                    if native_faster {
                        wgllm::dtype::ComputeDType::F16
                    } else {
                        wgllm::dtype::ComputeDType::F32
                    }
                );
            }
        }
    }
}

#[test]
fn disabling_f16_selects_and_runs_the_fallback() {
    for gpu in all_gpus(Switches::parse("f16,subgroup").unwrap()) {
        let path = wgllm::ops::select::select(
            &gpu.caps,
            wgllm::ops::select::Op::Gemv,
            StorageDType::F16,
            None,
        );
        assert_eq!(path.kind(), "fallback", "{}: {path:?}", label(&gpu));
        let key = path.key().unwrap();
        assert!(key.reduction != Reduction::Subgroup);
        check(&gpu, key, 129, 1757, 5);
        // Disabling subgroups also removes the shuffled-activation layout, from the choice and
        // from every reachable variant, whatever the autotune measured.
        for dtype in DTYPES {
            for key in reachable_variants(&gpu.caps, dtype)
                .into_iter()
                .chain(select(&gpu.caps, Op::Gemv, dtype, None).key().cloned())
            {
                assert!(
                    !matches!(
                        key.reduction,
                        Reduction::Subgroup | Reduction::SerialShuffle
                    ),
                    "{} on {}",
                    key.name(),
                    label(&gpu)
                );
            }
        }
    }
}

/// The lavapipe bug reported against Mesa 22.3 (`unpack2x16float(x).y` reading 0) does not
/// reproduce with Mesa 22.3.6 + wgpu 30.0.2 here, so the failure is injected into the
/// self-test report: the selection must then compile the workaround into the f16 fallback,
/// and that variant must be correct on every adapter.
#[test]
fn a_broken_unpack_high_half_is_routed_around() {
    use wgllm::device::selftest::{apply_forced_failures, Workaround};
    use wgllm::device::Capabilities;
    for gpu in all_gpus(Switches::parse("f16").unwrap()) {
        let mut report = gpu.caps.selftest.clone();
        apply_forced_failures(&mut report, "unpack2x16_float_hi").unwrap();
        let caps = Capabilities::new(gpu.caps.summary.clone(), gpu.caps.disabled, report);
        assert_eq!(
            caps.selftest.workarounds(),
            vec![Workaround::F16UnpackHiViaShift]
        );
        let path = wgllm::ops::select::select(
            &caps,
            wgllm::ops::select::Op::Gemv,
            StorageDType::F16,
            None,
        );
        assert_eq!(path.kind(), "fallback", "{path:?}");
        let key = path.key().unwrap();
        assert!(key.workarounds.contains(&Workaround::F16UnpackHiViaShift));
        let source = key.variant().source().unwrap();
        assert!(
            source.contains("unpack2x16float(word >> 16u).x"),
            "workaround not compiled in"
        );
        check(&gpu, key, 65, 1757, 9);

        // With the route around it broken too, f16 has no path at all (never silent garbage).
        let mut report = gpu.caps.selftest.clone();
        apply_forced_failures(
            &mut report,
            "unpack2x16_float_hi,unpack2x16_float_hi_via_shift",
        )
        .unwrap();
        let caps = Capabilities::new(gpu.caps.summary.clone(), gpu.caps.disabled, report);
        let path = wgllm::ops::select::select(
            &caps,
            wgllm::ops::select::Op::Gemv,
            StorageDType::F16,
            None,
        );
        assert_eq!(path.kind(), "unsupported", "{path:?}");
    }
}

#[test]
fn self_test_passes_what_the_kernels_need_on_both_mesa_adapters() {
    use wgllm::device::selftest::Primitive;
    for gpu in all_gpus(Switches::default()) {
        let t = &gpu.caps.selftest;
        for p in [
            Primitive::Unpack2x16FloatLo,
            Primitive::WorkgroupBarrier,
            Primitive::BitcastF32,
        ] {
            assert!(
                t.passed(p),
                "{}: {p:?} failed: {:?}",
                label(&gpu),
                t.failures()
            );
        }
        if gpu.caps.summary.features.shader_f16 {
            assert!(
                t.passed(Primitive::F16Arithmetic),
                "{}: {:?}",
                label(&gpu),
                t.failures()
            );
        }
        if gpu.caps.summary.features.subgroup {
            assert!(
                t.passed(Primitive::SubgroupAdd),
                "{}: {:?}",
                label(&gpu),
                t.failures()
            );
            assert_eq!(
                t.subgroup_size_seen
                    .map(|s| s >= gpu.caps.summary.limits.subgroup_min_size),
                Some(true)
            );
        }
        // Mesa's llvmpipe (both adapters here) ends a shader invocation's loops after 65,535
        // iterations in all; the self-test measures it rather than knowing the driver. A GPU
        // (NVIDIA's Vulkan driver, when a device check runs these tests) has no such limit.
        let want = gpu.caps.summary.is_cpu().then_some(65_535);
        assert_eq!(t.loop_limit, want, "{}", label(&gpu));
    }
}

#[test]
fn losing_the_device_is_an_error_not_a_panic() {
    let gpu = all_gpus(Switches::default()).remove(0);
    gpu.destroy();
    let key = reachable_variants(&gpu.caps, StorageDType::F32).remove(0);
    let err = wgllm::ops::gemv::run_with(&gpu, &key, 4, 4, &[0u8; 64], &[0.0; 4]).unwrap_err();
    assert!(err.to_string().to_lowercase().contains("lost"), "{err}");
}

/// Uploads `w` as a row-split tensor under `limits` (any number of parts), runs GEMV with a
/// bias over every part, and compares with the reference plus bias.
fn check_split(
    gpu: &Gpu,
    key: &KernelKey,
    (rows, cols): (u32, u32),
    limits: PartLimits,
    min_parts: usize,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let w = synthetic(key.dtype, rows as usize * cols as usize, seed).unwrap();
    let x = rng.vec(cols as usize);
    let bias = rng.vec(rows as usize);
    let mut seen = 0u64;
    let t = upload_tensor(
        gpu,
        "w",
        key.dtype,
        (rows, cols),
        &w,
        limits,
        &mut |done, total| {
            assert!(done > seen && done <= total);
            seen = done;
        },
    )
    .unwrap();
    assert_eq!(seen, w.len() as u64, "progress must reach the total");
    assert!(
        t.parts.len() >= min_parts,
        "{} parts, wanted at least {min_parts}",
        t.parts.len()
    );
    assert_eq!(t.bytes(), w.len() as u64);
    let xb = gpu.upload("x", bytemuck::cast_slice(&x)).unwrap();
    let bb = gpu.upload("bias", bytemuck::cast_slice(&bias)).unwrap();
    let yb = guarded_output(gpu, rows as usize);
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    encode_gemv_tensor(gpu, &mut enc, key, &t, [&xb, &yb], Some(&bb)).unwrap();
    gpu.submit_and_wait("split gemv test", enc).unwrap();
    let what = format!(
        "{} on {} at {rows}x{cols} in {} parts",
        key.name(),
        label(gpu),
        t.parts.len()
    );
    let got = read_guarded(gpu, &yb, rows as usize, &what);
    expect_close(gpu, &what, key, &got, (&w, &x), rows, Some(&bias));
}

#[test]
fn row_split_tensors_with_bias_match_the_reference() {
    for gpu in all_gpus(Switches::default()) {
        for (dtype, rows, cols) in [
            (StorageDType::F32, 37, 100),
            // Rows of 6 bytes: parts start mid-word in the file and at byte 0 on the GPU.
            (StorageDType::F16, 41, 3),
            // Rows of 96 bf16 on the shuffled layout: 32-byte loads (where shader-int64 is),
            // one 64-element window and a half one per row.
            (StorageDType::Bf16, 21, 96),
            (StorageDType::Q8_0, 29, 64),
            (StorageDType::Q4K, 23, 256),
            // Realigned 16-byte readers: q5_0 groups at any even byte (pair multiplies on the
            // shuffled layout), nf4 groups at any word with a one-block tail.
            (StorageDType::Q5_0, 19, 320),
            (StorageDType::Nf4, 17, 320),
        ] {
            let row_bytes = dtype.bytes_for(u64::from(cols)).unwrap();
            // Room for about 4 rows per part (whole 32-byte vectors: at most 5 of f16's 6-byte
            // rows): uneven parts, the last one short.
            let limits = PartLimits {
                max_bytes: (row_bytes * 4 + 4)
                    .next_multiple_of(wgllm::device::tensor::BUFFER_ALIGN),
                max_elements: u64::from(u32::MAX),
            };
            for key in reachable_variants(&gpu.caps, dtype) {
                check_split(
                    &gpu,
                    &key,
                    (rows, cols),
                    limits,
                    (rows as usize).div_ceil(5),
                    40 + rows as u64,
                );
            }
        }
    }
}

/// A tensor over the 128 MiB binding limit of the Mesa adapters (and sizes from a real model:
/// 8320 x 4096 f32 is 130 MiB), split with the adapter's own limits.
#[test]
fn a_tensor_over_the_binding_limit_is_split_and_correct() {
    for gpu in all_gpus(Switches::default()) {
        let (rows, cols) = (8320u32, 4096u32);
        let bytes = u64::from(rows) * u64::from(cols) * 4;
        let limits = PartLimits::of(&gpu);
        let parts = if bytes > limits.max_bytes { 2 } else { 1 };
        let (key, _) = wgllm::ops::gemv::kernel_for(&gpu, StorageDType::F32).unwrap();
        check_split(&gpu, &key, (rows, cols), limits, parts, 3);
    }
}

/// f16 accumulation against f32 accumulation, same weights and kernel otherwise. The bound:
/// each f16 addition rounds with relative error u = 2^-11; with K terms of random sign summed
/// serially the error grows like u·√(K/2)·|sum| (NMSE ≈ u²·K/2; a tree or strided reduction
/// does better). Asserted: NMSE ≤ u²·K (2x margin), and never better than f32's (the test
/// would then not be measuring f16).
#[test]
fn f16_accumulation_error_is_reported_and_bounded() {
    let u = 2f64.powi(-11);
    let mut measured = 0;
    for gpu in all_gpus(Switches::default()) {
        if !gpu.caps.f16().usable() {
            eprintln!("{}: no shader-f16, so no f16 accumulation", label(&gpu));
            continue;
        }
        for dtype in [
            StorageDType::F32,
            StorageDType::F16,
            StorageDType::Q8_0,
            StorageDType::Q4K,
        ] {
            let (rows, cols) = (64u32, 4096u32);
            let mut rng = Rng::new(11);
            let w = synthetic(dtype, (rows * cols) as usize, 12).unwrap();
            let x = rng.vec(cols as usize);
            let want = reference(&GemvParams::new(rows, cols), dtype, &w, &x).unwrap();
            for key in reachable_variants(&gpu.caps, dtype)
                .into_iter()
                .filter(|k| k.can_sum_in_f16())
            {
                let acc16 = key.with_accum(AccumDType::F16);
                let run = |k: &KernelKey| {
                    wgllm::ops::gemv::run_with(&gpu, k, rows, cols, &w, &x).unwrap()
                };
                let e32 = nmse(&run(&key), &want).unwrap();
                let e16 = nmse(&run(&acc16), &want).unwrap();
                let bound = u * u * f64::from(cols);
                eprintln!(
                    "{} on {}: NMSE vs f64 with f32 sums {e32:.2e}, with f16 sums {e16:.2e} (bound {bound:.2e})",
                    acc16.name(),
                    label(&gpu)
                );
                assert!(
                    e16 <= bound,
                    "{}: f16 accumulation NMSE {e16:.2e} > {bound:.2e}",
                    acc16.name()
                );
                assert!(
                    e16 > e32,
                    "{}: f16 sums no worse than f32 ({e16:.2e} vs {e32:.2e})?",
                    acc16.name()
                );
                measured += 1;
            }
        }
    }
    assert!(
        measured > 0,
        "f16 accumulation ran on no adapter (lavapipe has shader-f16)"
    );
}

/// Weights uploaded from the mapped files (safetensors offsets need not be word-aligned; GGUF
/// mixes dtypes): every matrix's GEMV with the selected kernel equals the reference computed
/// from the file's own bytes, on every adapter.
#[test]
fn weights_loaded_from_model_files_give_reference_results() {
    use wgllm::formats::TensorStore;
    use wgllm::model::weights;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fixtures/");
    for gpu in all_gpus(Switches::default()) {
        for model in ["tiny-llama", "tiny-llama.gguf", "tiny-llama-sharded"] {
            let store = TensorStore::open(std::path::Path::new(&format!("{dir}{model}"))).unwrap();
            let mut last = (0, 0);
            let loaded = weights::upload(&gpu, &store, weights::is_kernel_matrix, &mut |d, t| {
                last = (d, t)
            })
            .unwrap();
            assert_eq!(last.0, last.1, "progress ends at the total");
            assert_eq!(loaded.bytes, last.1);
            assert!(!loaded.matrices.is_empty());
            for m in &loaded.matrices {
                let (key, _) = wgllm::ops::gemv::kernel_for(&gpu, m.dtype).unwrap();
                let info = store.tensor(&m.name).unwrap();
                let x = Rng::new(3).vec(m.cols as usize);
                let xb = gpu.upload("x", bytemuck::cast_slice(&x)).unwrap();
                let yb = guarded_output(&gpu, m.rows as usize);
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                encode_gemv_tensor(&gpu, &mut enc, &key, m, [&xb, &yb], None).unwrap();
                gpu.submit_and_wait("model gemv", enc).unwrap();
                let what = format!("{model} {} on {}", m.name, label(&gpu));
                let got = read_guarded(&gpu, &yb, m.rows as usize, &what);
                let w = store.data(info).unwrap();
                expect_close(&gpu, &what, &key, &got, (w, &x), m.rows, None);
            }
        }
    }
}

/// The pair-multiply int-dot reader (`_pm`) at the edge of its bound: every quant at its
/// extreme (q5 quants 31, q6_k's -32, q8_0's -128) against activations all of one sign at full
/// scale (127 after quantization), so that each sum of pair products reaches 31,496 (32,512
/// for q6_k's four words and q8_0's one) of the 32,767 its middle field holds. Results must equal the int-dot reference to f32
/// rounding, on rows of whole eight-block groups and on realigned ones.
#[test]
fn pair_products_stay_exact_at_their_bound() {
    let h = |v: f32| half::f16::from_f32(v).to_le_bytes();
    // One block whose quants all sit at the extreme the pairs' bound allows.
    let block = |dtype: StorageDType| -> Vec<u8> {
        match dtype {
            StorageDType::Q8_0 => [&h(0.5)[..], &[0x80; 32]].concat(),
            StorageDType::Q4_0 => [&h(0.5)[..], &[0xff; 16]].concat(),
            StorageDType::Q5_0 => [&h(0.5)[..], &[0xff; 4], &[0xff; 16]].concat(),
            StorageDType::Q5_1 => [&h(0.5)[..], &h(0.25), &[0xff; 4], &[0xff; 16]].concat(),
            StorageDType::Q4K => [&h(0.5)[..], &h(0.25), &[0xff; 12], &[0xff; 128]].concat(),
            StorageDType::Q5K => [
                &h(0.5)[..],
                &h(0.25),
                &[0xff; 12],
                &[0xff; 32],
                &[0xff; 128],
            ]
            .concat(),
            // Quants 0 are -32 after the offset; scales 1.
            StorageDType::Q6K => [&[0u8; 192][..], &[1; 16], &h(0.5)].concat(),
            other => panic!("no extreme block for {other}"),
        }
    };
    let mut ran = 0;
    for gpu in all_gpus(Switches::default()) {
        for dtype in wgllm::ops::select::KernelKey::PAIR_MUL_DTYPES {
            let b = dtype.block().elements;
            // Two groups of eight 32-element blocks (or two k-quant blocks), and ten blocks of
            // 32 (groups realigned).
            let mut widths = vec![(512 / b).max(2) * b];
            if b == 32 {
                widths.push(10 * b);
            }
            for cols in widths {
                let keys: Vec<_> = reachable_variants(&gpu.caps, dtype)
                    .into_iter()
                    .filter(|k| k.for_cols(cols).pair_mul())
                    .collect();
                for key in keys {
                    let rows = 3u32;
                    let w: Vec<u8> = (0..rows * cols / b).flat_map(|_| block(dtype)).collect();
                    for sign in [1.0f32, -1.0] {
                        let x = vec![sign; cols as usize];
                        let got =
                            wgllm::ops::gemv::run_with(&gpu, &key, rows, cols, &w, &x).unwrap();
                        let want = wgllm::ops::gemv::reference_int_dot(
                            &GemvParams::new(rows, cols),
                            dtype,
                            &w,
                            &x,
                        )
                        .unwrap();
                        for (g, v) in got.iter().zip(&want) {
                            assert!(
                                (g - v).abs() <= 1e-5 * v.abs(),
                                "{} on {} at {rows}x{cols}, x = {sign}: got {g}, want {v}",
                                key.name(),
                                label(&gpu)
                            );
                        }
                        ran += 1;
                    }
                }
            }
        }
    }
    // lavapipe has the shuffled layout for all six dtypes, on both row widths where they exist.
    assert!(ran >= 2 * 10, "the pair-multiply reader ran {ran} times");
}

/// q8_0 and q4_0 run on packed int8 dot products exactly where the autotune measured that
/// faster than decoding into f32 (or, unmeasured, where the hardware accelerates it); injected
/// races flip the choice both ways.
#[test]
fn int_dot_is_chosen_by_measurement() {
    use wgllm::ops::select::{select, Op};
    for gpu in all_gpus(Switches::default()) {
        if !gpu.caps.dot4().usable() {
            continue;
        }
        let Some(tuning) = gpu.caps.tuning.clone() else {
            continue;
        };
        for dtype in DTYPES.into_iter().filter(|d| KernelKey::has_int_dot(*d)) {
            let race = tuning
                .int_dot_race(dtype)
                .expect("int-dot raced where dot4 is usable");
            let path = select(&gpu.caps, Op::Gemv, dtype, None);
            assert_eq!(
                path.key().unwrap().int_dot,
                race.native_wins(),
                "{}: {path:?} vs {race:?}",
                label(&gpu)
            );
            for dot_faster in [true, false] {
                let mut t = tuning.clone();
                for r in t.gemv.iter_mut().filter(|r| r.dtype == dtype) {
                    let rate = if r.int_dot == dot_faster { 9.0 } else { 1.0 };
                    r.serial.rate = rate;
                    r.workgroup.rate = rate / 2.0;
                    // Every raced layout gets an injected rate: a real one left in place (the
                    // H200's serial_shuffle measured 26 GB/s) would outrank the injected 9.
                    if let Some(s) = r.subgroup.as_mut() {
                        s.rate = rate / 3.0;
                    }
                    if let Some(s) = r.serial_shuffle.as_mut() {
                        s.rate = rate / 4.0;
                    }
                }
                let caps = gpu.caps.clone().with_tuning(t);
                let path = select(&caps, Op::Gemv, dtype, None);
                let key = path.key().unwrap();
                assert_eq!(key.int_dot, dot_faster, "{path:?}");
                assert_eq!(
                    key.reduction,
                    Reduction::Serial,
                    "the measured-fastest layout"
                );
                assert_eq!(path.kind(), "native");
                if !dot_faster {
                    assert!(format!("{path:?}").contains("measured slower"), "{path:?}");
                }
            }
        }
    }
}

/// Uploads fail cleanly: a lost device is an error naming the tensor's upload, and a part that
/// exceeds the adapter's buffer limit is refused before anything is allocated.
#[test]
fn upload_failures_are_errors_naming_the_tensor() {
    let gpu = all_gpus(Switches::default()).remove(0);
    let w = vec![0u8; 4096 * 4];
    let too_big = PartLimits {
        max_bytes: u64::MAX,
        max_elements: u64::MAX,
    };
    // Pretend the binding limit allows a part larger than max_buffer_size: the buffer is
    // refused before anything is allocated or read. The bytes are a sparse file, mapped.
    let rows = (gpu.caps.summary.limits.max_buffer_size / 4 / 1024 + 1) as u32;
    let path = std::env::temp_dir().join(format!("wgllm-big-{}.bin", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(u64::from(rows) * 1024 * 4).unwrap();
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let err = upload_tensor(
        &gpu,
        "blk.0.big",
        StorageDType::F32,
        (rows, 1024),
        &map,
        too_big,
        &mut |_, _| {},
    )
    .err()
    .expect("a buffer over the limit is refused");
    drop(map);
    let _ = std::fs::remove_file(&path);
    let msg = err.to_string();
    assert!(msg.contains("blk.0.big") && msg.contains("limit"), "{msg}");
    // A byte count that does not match the shape is refused too.
    let err = upload_tensor(
        &gpu,
        "blk.0.short",
        StorageDType::F32,
        (4, 4),
        &w[..60],
        PartLimits::of(&gpu),
        &mut |_, _| {},
    )
    .err()
    .expect("a short slice is refused");
    assert!(err.to_string().contains("blk.0.short"), "{err}");
    gpu.destroy();
    let err = upload_tensor(
        &gpu,
        "blk.1.attn_q.weight",
        StorageDType::F32,
        (4096, 1),
        &w,
        PartLimits::of(&gpu),
        &mut |_, _| {},
    )
    .err()
    .expect("upload on a lost device fails");
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("lost"), "{msg}");
}

/// Kernel parameters live in one buffer per distinct content, shared by every dispatch that
/// uses them (no allocation or staged copy per dispatch); different parameters never share.
#[test]
fn parameter_buffers_are_shared_by_content() {
    let gpu = all_gpus(Switches::default()).remove(0);
    let a = gpu.uniform("a", &[7u32, 1, 2, 3]).unwrap();
    let b = gpu.uniform("b", &[7u32, 1, 2, 3]).unwrap();
    let c = gpu.uniform("c", &[7u32, 1, 2, 4]).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// Where the autotune measured a subgroup computing several rows (sharing each activation
/// load) fastest, `select` picks that variant, names it, and it gives reference results.
#[test]
fn rows_per_subgroup_follow_the_race() {
    use wgllm::device::capabilities::Timed;
    use wgllm::ops::select::{select, Op};
    let mut tested = 0;
    for gpu in all_gpus(Switches::default()) {
        let Some(tuning) = gpu.caps.tuning.clone() else {
            continue;
        };
        if !gpu.caps.subgroups().usable() || gpu.caps.geometry.gemv_subgroup.is_none() {
            continue;
        }
        for (dtype, rows_per_subgroup) in [(StorageDType::Q4_0, 2), (StorageDType::F32, 4)] {
            let mut t = tuning.clone();
            for r in t.gemv.iter_mut().filter(|r| r.dtype == dtype) {
                // The f32-decode subgroup layout wins; int-dot loses everywhere.
                let rate = if r.int_dot { 0.5 } else { 1.0 };
                r.serial.rate = rate;
                r.workgroup.rate = rate;
                r.serial_shuffle = None;
                r.subgroup = Some(Timed {
                    kernel: "injected".into(),
                    rate: if r.int_dot { 0.5 } else { 9.0 },
                });
                r.subgroup_rows = if r.int_dot { 1 } else { rows_per_subgroup };
            }
            let caps = gpu.caps.clone().with_tuning(t);
            let path = select(&caps, Op::Gemv, dtype, None);
            let key = path.key().unwrap();
            assert_eq!(key.reduction, Reduction::Subgroup, "{path:?}");
            assert_eq!(key.rows_per_invocation, rows_per_subgroup, "{path:?}");
            assert!(
                key.name().ends_with(&format!("_x{rows_per_subgroup}")),
                "{}",
                key.name()
            );
            // 4096 + 3 blocks: the unrolled loop and its remainder; 33 rows: a partial group.
            let b = dtype.block().elements;
            check(&gpu, key, 33, 4096 + 3 * b.max(4), 61);
            tested += 1;
        }
    }
    // (A device check runs the tests with WGLLM_TUNE=off: then no race exists to inject into.)
    assert!(
        tested > 0 || wgllm::ops::tune::disabled(),
        "no adapter with the subgroup layout (lavapipe has it)"
    );
}

/// Llama-3.1-405B's MLP width, K = 53,248: one invocation per row loops over all of it. Mesa's
/// llvmpipe (lavapipe and GL) ends a shader invocation's loops after 65,535 iterations in all,
/// without an error, so a kernel whose loops took a step per element (or nested) would return
/// partial sums here: every reachable variant on every adapter must give whole ones. One
/// window of 32 elements longer, the driver's loop limit refuses the row with an error that
/// says why, rather than risk a partial sum (KernelKey::loop_limited_cols).
#[test]
fn long_rows_are_summed_whole_or_refused() {
    let mut failed = Vec::new();
    for gpu in all_gpus(Switches::default()) {
        for dtype in DTYPES {
            for key in reachable_variants(&gpu.caps, dtype) {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check(&gpu, &key, 9, 53_248, 4242)
                }));
                if r.is_err() {
                    failed.push(format!("{} on {}", key.name(), label(&gpu)));
                }
            }
        }
        let path = select(&gpu.caps, Op::Gemv, StorageDType::F32, None);
        let key = path.key().unwrap();
        let cols = 53_248 + 32;
        let wb = gpu.storage("w", 9 * u64::from(cols) * 4).unwrap();
        let xb = gpu.storage("x", u64::from(cols) * 4).unwrap();
        let yb = gpu.storage("y", 9 * 4).unwrap();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let encoded = encode_gemv(&gpu, &mut enc, key, (9, cols), [&wb, &xb, &yb]);
        // Only a driver that ends loops early (llvmpipe) refuses the row.
        if gpu.caps.selftest.loop_limit.is_none() {
            assert!(encoded.is_ok(), "{}: {encoded:?}", label(&gpu));
            continue;
        }
        let err = encoded
            .expect_err("a row past the tested length under a loop limit must be refused")
            .to_string();
        assert!(
            err.contains("65535 iterations") && err.contains("53280"),
            "{}: {err}",
            label(&gpu)
        );
    }
    assert!(failed.is_empty(), "partial sums from: {failed:#?}");
}

/// The streaming-read limit reads every byte it counts: each configuration's per-invocation
/// folds equal the CPU's over the same words, with 16-byte loads everywhere and 32-byte
/// (vec4<u64>) ones where shader-int64 is enabled — lavapipe, not GL — including the CPU
/// layout's 64-invocation configuration over 128 MiB, whose loops llvmpipe used to cut short.
/// `WGLLM_DISABLE=int64` leaves the limit to 16-byte loads.
#[test]
fn the_streaming_read_limit_reads_every_byte_it_counts() {
    use wgllm::ops::stream_read::{folds, invocations, measure, source, Layout};
    for gpu in all_gpus(Switches::default()) {
        let int64 = gpu.device.features().contains(wgpu::Features::SHADER_INT64);
        assert_eq!(
            int64,
            gpu.caps.summary.backend == "vulkan",
            "{}",
            label(&gpu)
        );
        let bytes: u64 = 128 << 20;
        let src = source(&gpu, bytes).unwrap();
        // source(): word i of the buffer is (i mod 2^20) * 2654435761.
        let word = |i: u64| ((i % (1 << 20)) as u32).wrapping_mul(2_654_435_761);
        for word_bytes in [16u32, 32].into_iter().filter(|&b| b == 16 || int64) {
            for (layout, width) in [(Layout::Chunked, 64), (Layout::Strided, 1 << 16)] {
                let got = folds(&gpu, &src, bytes, (layout, width, word_bytes)).unwrap();
                let inv = u64::from(invocations(bytes, width, word_bytes));
                let per = u64::from(word_bytes / 4);
                let words = bytes / u64::from(word_bytes);
                let mut want = vec![0u32; inv as usize];
                for w in 0..words {
                    let id = match layout {
                        Layout::Chunked => w / words.div_ceil(inv),
                        Layout::Strided => w % inv,
                    };
                    for j in 0..per {
                        want[id as usize] ^= word(w * per + j);
                    }
                }
                assert!(
                    got == want,
                    "{}: {layout:?} x {width}, {word_bytes}-byte loads: folds differ",
                    label(&gpu)
                );
            }
        }
    }
    for gpu in all_gpus(Switches::parse("int64").unwrap()) {
        assert!(!gpu.device.features().contains(wgpu::Features::SHADER_INT64));
        assert_eq!(
            measure(&gpu, 16 << 20).unwrap().word_bytes,
            16,
            "{}",
            label(&gpu)
        );
    }
}

/// The 32-byte readers run exactly where shader-int64 is usable and say so: on lavapipe every
/// GEMV `select` picks on the CPU layout for a dtype that has one carries `_u64` and its reason
/// says "32 bytes per load"; with `WGLLM_DISABLE=int64` (and on GL, which has no int64) none
/// does, and none claims it.
#[test]
fn wide_loads_run_only_where_int64_is_usable_and_say_so() {
    use wgllm::ops::select::{select, Op};
    let (mut wide_seen, mut wide_expected, mut cpu_seen) = (0, 0, false);
    for (switches, may_be_wide) in [
        (Switches::default(), true),
        (Switches::parse("int64").unwrap(), false),
    ] {
        for gpu in all_gpus(switches) {
            let usable = gpu.caps.int64().usable();
            // The 32-byte readers are the CPU-adapter layouts' (GPU layouts keep 16 bytes).
            let cpu = gpu.caps.summary.is_cpu();
            cpu_seen |= cpu;
            assert!(
                usable || !may_be_wide || !cpu || gpu.caps.summary.backend == "gl",
                "{}",
                label(&gpu)
            );
            if usable && may_be_wide && cpu && !wgllm::ops::tune::disabled() {
                // lavapipe picks them for every dtype but f8_e4m3 (measured slower with them).
                wide_expected += DTYPES.len() - 1;
            }
            for dtype in DTYPES {
                let path = select(&gpu.caps, Op::Gemv, dtype, None);
                let Some(key) = path.key() else { continue };
                let text = format!("{path:?}");
                let claims = text.contains("32 bytes per load");
                assert_eq!(key.wide_loads, claims, "{}: {dtype}: {text}", label(&gpu));
                assert_eq!(
                    key.wide_loads,
                    key.name().contains("_u64"),
                    "{}",
                    key.name()
                );
                if !usable {
                    assert!(
                        !key.wide_loads,
                        "{}: {dtype} wide without int64",
                        label(&gpu)
                    );
                }
                if key.wide_loads {
                    assert!(key
                        .required_features()
                        .contains(wgpu::Features::SHADER_INT64));
                    wide_seen += 1;
                }
            }
        }
    }
    // lavapipe has shader-int64; a device check's GPU machine has no CPU adapter.
    assert!(
        wide_expected > 0 || !cpu_seen || wgllm::ops::tune::disabled(),
        "no CPU adapter with usable shader-int64 (lavapipe has it)"
    );
    assert_eq!(wide_seen, wide_expected, "32-byte readers selected");
}
