//! GEMM kernels against the f64 CPU reference, on every adapter: every dtype, every precision
//! the adapter can run (f32 tiles everywhere; f16 tiles and f16 sums where shader-f16 is
//! usable), with and without bias, over shapes that stress the tile edges, and over row-split
//! tensors. NMSE within the compute dtype's budget (and llama.cpp's 5e-4 gate), sentinels
//! intact, every output written; every precision must run on at least one adapter.

mod common;

use common::*;
use std::collections::BTreeSet;
use wgllm::device::tensor::{upload_tensor, PartLimits};
use wgllm::device::{Gpu, Switches};
use wgllm::dtype::{AccumDType, ComputeDType, StorageDType};
use wgllm::ops::dequantize::{synthetic, DTYPES};
use wgllm::ops::gemm::{
    encode_gemm, for_shape, key, reachable_variants, reference, with_each_tile_reg, LAYOUTS,
    PRECISIONS,
};
use wgllm::ops::select::{select, KernelKey, Op, Reduction};
use wgllm::ops::tolerance::{matmul_nmse, max_abs_error, nmse, MUL_MAT_NMSE};

/// (rows of W, cols = K, n activation rows). K in blocks of the dtype; for plain floats K
/// below, at and past the 8- and 16-wide K steps and not a multiple of them; rows and n below,
/// at and past the 64- and 128-wide tiles, odd; n = 1..9.
fn shapes(dtype: StorageDType) -> Vec<(u32, u32, u32)> {
    let b = dtype.block().elements;
    let mut v: Vec<(u32, u32, u32)> = (1..=9).map(|n| (7, 2 * b, n)).collect();
    // 513 rows: every weight row of a row-layout invocation (8 per invocation, 64 apart)
    // and a second workgroup; n = 18 spans two 16-row activation tiles.
    v.extend([
        (1, b, 2),
        (65, b, 3),
        (129, 3 * b, 65),
        (64, 8 * b, 64),
        (513, b, 18),
    ]);
    if b == 1 {
        v.extend([(33, 1, 2), (17, 15, 5), (70, 1757, 9), (3, 17, 130)]);
        // Rows of whole units (four 16-byte vectors: 16, 32 or 64 elements), so the row
        // layouts read W as units: 64 for every plain dtype, 48 for f32 only (f16, bf16 and
        // fp8 then take the scalar path);
        // n = 40 spans two shuffled tiles (32 activation rows each), 300 rows two shuffled
        // workgroups (256 rows each), 513 rows every weight row of a plain row-layout
        // invocation and a second workgroup.
        v.extend([(5, 48, 17), (65, 64, 9), (300, 64, 40), (513, 64, 18)]);
        // n <= 8 with rows of whole units: the row layouts' 8-row tile (SMALL_N), over every
        // weight row of an invocation and two workgroups.
        v.extend([(513, 64, 7), (66, 48, 2)]);
    }
    v
}

/// Whether f16 sums can hold this dtype's products: fp8 e5m2 spans f16's whole range (up to
/// 57,344), so a few of its products overflow an f16 sum to Inf; the NaN/Inf parity check
/// rightly flags that, and f16 accumulation is not a precision to use with it.
fn f16_sums_hold(dtype: StorageDType) -> bool {
    dtype != StorageDType::F8E5m2
}

/// The precisions this adapter can run, as GEMM keys for `dtype`.
fn keys(gpu: &Gpu, dtype: StorageDType) -> Vec<KernelKey> {
    reachable_variants(&gpu.caps, dtype)
        .into_iter()
        .filter(|k| k.accum == AccumDType::F32 || f16_sums_hold(dtype))
        .collect()
}

/// The budget a precision must meet: the compute dtype's, except that f16 sums get llama.cpp's
/// mul_mat gate itself (a short sum that cancels can lose several f16 ulps relative to its
/// small result; tests/gemv.rs bounds f16 sums over K = 4096 more tightly).
fn budget(key: &KernelKey) -> f64 {
    if key.accum == AccumDType::F16 {
        MUL_MAT_NMSE
    } else {
        matmul_nmse(key.compute).min(MUL_MAT_NMSE)
    }
}

fn check(
    gpu: &Gpu,
    key: &KernelKey,
    (rows, cols, n): (u32, u32, u32),
    limits: Option<PartLimits>,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let w = synthetic(key.dtype, rows as usize * cols as usize, seed).unwrap();
    let x = rng.vec((n * cols) as usize);
    let bias = seed.is_multiple_of(2).then(|| rng.vec(rows as usize));
    let want = reference(key.dtype, (rows, cols), &w, &x, bias.as_deref()).unwrap();

    let limits = limits.unwrap_or_else(|| PartLimits::of(gpu));
    let t = upload_tensor(
        gpu,
        "w",
        key.dtype,
        (rows, cols),
        &w,
        limits,
        &mut |_, _| {},
    )
    .unwrap();
    let xb = gpu.upload("x", bytemuck::cast_slice(&x)).unwrap();
    let bb = bias
        .as_ref()
        .map(|b| gpu.upload("bias", bytemuck::cast_slice(b)).unwrap());
    let outputs = (n * rows) as usize;
    let yb = guarded_output(gpu, outputs);
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    encode_gemm(gpu, &mut enc, key, &t, n, [&xb, &yb], bb.as_ref()).unwrap();
    gpu.submit_and_wait("gemm test", enc).unwrap();
    let what = format!(
        "{} on {} at {rows}x{cols}, n={n}, {} part(s){}",
        for_shape(key, cols, n).name(),
        label(gpu),
        t.parts.len(),
        if bias.is_some() { ", bias" } else { "" }
    );
    let got = read_guarded(gpu, &yb, outputs, &what);
    let e = nmse(&got, &want).unwrap_or_else(|| panic!("{what}: NaN/Inf mismatch"));
    let budget = budget(key);
    let (i, max) = max_abs_error(&got, &want);
    assert!(
        e <= budget,
        "{what}: NMSE {e:.3e} > {budget:.0e}; max |err| {max} at {i} (got {}, want {})",
        got[i],
        want[i]
    );
}

#[test]
fn every_dtype_and_precision_matches_the_reference_on_every_adapter() {
    let mut ran = BTreeSet::new();
    for gpu in all_gpus(Switches::default()) {
        for dtype in DTYPES {
            for key in keys(&gpu, dtype) {
                let t = std::time::Instant::now();
                for (i, shape) in shapes(dtype).into_iter().enumerate() {
                    check(&gpu, &key, shape, None, 200 + i as u64);
                    ran.insert(for_shape(&key, shape.1, shape.2).name());
                }
                eprintln!(
                    "{} on {}: {:.2} s",
                    key.name(),
                    label(&gpu),
                    t.elapsed().as_secs_f64()
                );
                ran.insert(key.name());
            }
        }
    }
    let expected: BTreeSet<String> = DTYPES
        .iter()
        .flat_map(|&d| {
            PRECISIONS
                .into_iter()
                .filter(move |(_, a)| *a == AccumDType::F32 || f16_sums_hold(d))
                .flat_map(move |(c, a)| {
                    // Shuffled activations run on lavapipe (GL has no subgroups).
                    LAYOUTS
                        .into_iter()
                        .chain([Reduction::SerialShuffle])
                        .flat_map(move |l| {
                            // The row layouts also run with vec4 rows (and W_UNITS for
                            // plain dtypes).
                            // The tiles with each register tile.
                            let k = key(d, c, a, l);
                            let v4 = |small_n, wide: bool| {
                                l.one_per_row().then(|| {
                                    KernelKey {
                                        vec4: true,
                                        small_n,
                                        ..k.clone()
                                    }
                                    .with_wide_loads(wide)
                                    .name()
                                })
                            };
                            // 32-byte weight loads (lavapipe has shader-int64) where the
                            // key has them: f32 and bf16 on the shuffled layout.
                            let wide = k.with_wide_loads(true).wide_loads;
                            with_each_tile_reg(&k)
                                .into_iter()
                                .map(|k| k.name())
                                .chain(v4(false, false))
                                .chain(v4(true, false))
                                .chain(v4(false, wide))
                                .chain(v4(true, wide))
                        })
                })
        })
        .collect();
    let missing: Vec<_> = expected.difference(&ran).collect();
    assert!(
        missing.is_empty(),
        "gemm variants that ran on no adapter: {missing:?}"
    );
    // A subgroup per weight row (f32 sums; named by the adapter's subgroup size), on
    // lavapipe: both compute dtypes of every dtype.
    for d in DTYPES {
        for c in ["f32", "f16"] {
            let prefix = format!("gemm_{d}_{c}c_f32acc_subgroup_wg");
            assert!(
                ran.iter()
                    .any(|k| k.starts_with(&prefix) && k.ends_with("_v4")),
                "no {prefix}*_v4 ran on any adapter"
            );
        }
    }
}

#[test]
fn the_selected_kernel_runs_over_row_split_tensors() {
    for gpu in all_gpus(Switches::default()) {
        for (dtype, rows, cols) in [
            (StorageDType::F32, 150, 40),
            (StorageDType::F16, 131, 5),
            (StorageDType::Q4_0, 70, 64),
            (StorageDType::Q6K, 67, 256),
        ] {
            let path = select(&gpu.caps, Op::Gemm, dtype, None);
            let key = path
                .key()
                .unwrap_or_else(|| panic!("{}: {path:?}", label(&gpu)));
            let row_bytes = dtype.bytes_for(u64::from(cols)).unwrap();
            // About 20 rows per part: parts end inside a 64-row tile.
            let limits = PartLimits {
                max_bytes: row_bytes * 20 + 4,
                max_elements: u64::from(u32::MAX),
            };
            check(&gpu, key, (rows, cols, 5), Some(limits), 8);
            check(&gpu, key, (rows, cols, 70), Some(limits), 9);
        }
    }
}

#[test]
fn f16_gemm_is_native_only_where_it_measured_faster() {
    for gpu in all_gpus(Switches::default()) {
        let path = select(&gpu.caps, Op::Gemm, StorageDType::F16, None);
        let race = gpu.caps.tuning.as_ref().and_then(|t| t.f16_gemm.clone());
        let want = match race {
            Some(r) if gpu.caps.f16().usable() && r.native_wins() => "native",
            _ => "fallback",
        };
        assert_eq!(path.kind(), want, "{}: {path:?}", label(&gpu));
        // The layout is the capability model's (the autotune's choice where it ran).
        assert_eq!(
            path.key().unwrap().reduction,
            gpu.caps.gemm_layout_for(StorageDType::F16)
        );
        // Every weight dtype has a GEMM path.
        for d in DTYPES {
            assert!(select(&gpu.caps, Op::Gemm, d, None).key().is_some(), "{d}");
        }
    }
}

/// Without an autotune, CPU adapters get the shuffled row layout wherever shuffles are usable
/// (it measured 2-3x the plain row layout on lavapipe for every dtype), the plain row layout
/// where they are not (GL, or `WGLLM_DISABLE=subgroup`), and GPUs the tiles; f16 weights stay
/// in f32 arithmetic on CPU adapters.
#[test]
fn untuned_gemm_layout_follows_the_adapter() {
    use wgllm::device::Capabilities;
    for switches in ["", "subgroup"] {
        for gpu in all_gpus(Switches::parse(switches).unwrap()) {
            let caps = Capabilities::new(
                gpu.caps.summary.clone(),
                gpu.caps.disabled,
                gpu.caps.selftest.clone(),
            );
            assert!(caps.tuning.is_none());
            let want = if !caps.summary.is_cpu() {
                Reduction::Workgroup
            } else if caps.subgroup_shuffle().usable() {
                Reduction::SerialShuffle
            } else {
                Reduction::Serial
            };
            if switches == "subgroup" {
                assert_ne!(want, Reduction::SerialShuffle, "{}", label(&gpu));
            }
            assert_eq!(caps.gemm_layout(), want, "{}", label(&gpu));
            let path = select(&caps, Op::Gemm, StorageDType::Q8_0, None);
            assert_eq!(path.key().unwrap().reduction, want, "{}", label(&gpu));
            // Unmeasured, a CPU adapter keeps f16 weights in f32 arithmetic (its f16 math
            // converts; lavapipe measured it 2.5-4x slower), saying why; a GPU uses f16.
            if caps.f16().usable() {
                for op in [Op::Gemm, Op::Gemv] {
                    let path = select(&caps, op, StorageDType::F16, None);
                    let want = if caps.summary.is_cpu() {
                        "fallback"
                    } else {
                        "native"
                    };
                    assert_eq!(path.kind(), want, "{}: {path:?}", label(&gpu));
                    if caps.summary.is_cpu() {
                        assert!(format!("{path:?}").contains("CPU adapter"), "{path:?}");
                    }
                }
            }
        }
    }
}

/// Where the autotune raced a dtype's GEMM layouts of its own (GPUs), that dtype's GEMM runs
/// in its fastest layout, and the others keep the f32 race's.
#[test]
fn per_dtype_gemm_races_pick_each_dtypes_layout() {
    use wgllm::device::capabilities::{LayoutRace, Timed};
    let timed = |rate: f64| Timed {
        kernel: "injected".into(),
        rate,
    };
    for gpu in all_gpus(Switches::default()) {
        let Some(mut t) = gpu.caps.tuning.clone() else {
            continue;
        };
        let f32_layout = gpu.caps.gemm_layout();
        // q4_0 measured fastest in whichever layout f32 did not pick.
        let other = if f32_layout == Reduction::Workgroup {
            Reduction::Serial
        } else {
            Reduction::Workgroup
        };
        let rate = |r: Reduction| if r == other { 9.0 } else { 1.0 };
        t.gemm_by_dtype = vec![LayoutRace {
            dtype: StorageDType::Q4_0,
            int_dot: false,
            serial: timed(rate(Reduction::Serial)),
            workgroup: timed(rate(Reduction::Workgroup)),
            subgroup: None,
            serial_shuffle: Some(timed(rate(Reduction::SerialShuffle))),
            subgroup_rows: 1,
            // The tiles measured fastest with 8 x 8 outputs per invocation.
            tile_reg: 8,
        }];
        let caps = gpu.caps.clone().with_tuning(t);
        let q4 = select(&caps, Op::Gemm, StorageDType::Q4_0, None);
        let q4_key = q4.key().unwrap();
        assert_eq!(q4_key.reduction, other, "{}: {q4:?}", label(&gpu));
        if other == Reduction::Workgroup {
            assert_eq!(
                (q4_key.rows_per_invocation, q4_key.rows_per_workgroup),
                (8, 128),
                "{}: {q4:?}",
                label(&gpu)
            );
        }
        let q8 = select(&caps, Op::Gemm, StorageDType::Q8_0, None);
        assert_eq!(q8.key().unwrap().reduction, f32_layout, "{}", label(&gpu));
    }
}

/// A short prefill (n ≤ SMALL_N) runs the tiles as a subgroup per weight row where the
/// subgroup size is fixed, unless the autotune's few-rows race measured the tiles faster, and
/// a row layout only where that race measured the subgroup rows faster; up to SUBGROUP_MAX_N
/// rows any layout gives way where the mid-rows race measured the subgroup rows faster; more
/// activation rows and f16 sums keep their key.
#[test]
fn few_row_gemm_follows_the_race() {
    use wgllm::device::capabilities::{LayoutRace, Timed};
    use wgllm::ops::gemm::{for_tokens, subgroup_shape, SMALL_N, SUBGROUP_MAX_N};
    let timed = |rate: f64| Timed {
        kernel: "injected".into(),
        rate,
    };
    let mut checked = 0;
    for gpu in all_gpus(Switches::default()) {
        let Some(t) = gpu.caps.tuning.clone() else {
            continue;
        };
        let q4_0 = |compute, accum, layout| key(StorageDType::Q4_0, compute, accum, layout);
        let tiles = q4_0(ComputeDType::F32, AccumDType::F32, Reduction::Workgroup);
        let race = |tiles_rate: f64, subgroup_rate: f64| LayoutRace {
            dtype: StorageDType::F32,
            int_dot: false,
            serial: timed(1.0),
            workgroup: timed(tiles_rate),
            subgroup: Some(timed(subgroup_rate)),
            serial_shuffle: None,
            subgroup_rows: 1,
            tile_reg: 4,
        };
        let layout = |caps: &wgllm::device::Capabilities, k: &KernelKey, n: u32| {
            for_tokens(caps, k, n).reduction
        };
        // The adapter's capabilities with the few-rows (n = 4) and mid-rows (n = 32) races
        // replaced by these.
        let with_races = |few: Option<LayoutRace>, mid: Option<LayoutRace>| {
            let mut t = t.clone();
            (t.gemm_few_rows, t.gemm_mid_rows) = (few, mid);
            gpu.caps.clone().with_tuning(t)
        };
        let Some(_) = subgroup_shape(&gpu.caps) else {
            // No fixed subgroup size (GL): the tiles stay tiles.
            assert_eq!(
                layout(&gpu.caps, &tiles, 2),
                Reduction::Workgroup,
                "{}",
                label(&gpu)
            );
            continue;
        };
        let untuned = with_races(None, None);
        assert_eq!(layout(&untuned, &tiles, 2), Reduction::Subgroup);
        assert_eq!(layout(&untuned, &tiles, SMALL_N), Reduction::Subgroup);
        assert_eq!(layout(&untuned, &tiles, SMALL_N + 1), Reduction::Workgroup);
        let f16_sums = q4_0(ComputeDType::F16, AccumDType::F16, Reduction::Workgroup);
        assert_eq!(layout(&untuned, &f16_sums, 2), Reduction::Workgroup);
        let rows = q4_0(ComputeDType::F32, AccumDType::F32, Reduction::Serial);
        assert_eq!(layout(&untuned, &rows, 2), Reduction::Serial);
        // Measured: the tiles 9x faster keep the tiles; the subgroup rows faster take them.
        let tiles_won = with_races(Some(race(9.0, 1.0)), None);
        assert_eq!(layout(&tiles_won, &tiles, 2), Reduction::Workgroup);
        // The row layouts (serial at 1.0 in the race) keep their layout unless the subgroup
        // rows measured faster than they did.
        assert_eq!(layout(&tiles_won, &rows, 2), Reduction::Serial);
        let rows_won = with_races(Some(race(1.0, 9.0)), None);
        assert_eq!(layout(&rows_won, &tiles, 2), Reduction::Subgroup);
        // A GPU's n = 512 race can pick a row layout (the H200 did, for every dtype); its
        // 32-byte units and 8-row tile do not carry over to the subgroup rows.
        let wide_rows = key(
            StorageDType::F32,
            ComputeDType::F32,
            AccumDType::F32,
            Reduction::SerialShuffle,
        )
        .with_wide_loads(true);
        assert!(wide_rows.wide_loads, "{}", wide_rows.name());
        let few = for_tokens(&rows_won, &wide_rows, 2);
        assert_eq!(few.reduction, Reduction::Subgroup, "{}", label(&gpu));
        assert!(!few.wide_loads && !few.small_n, "{}", few.name());
        assert_eq!(layout(&rows_won, &rows, SMALL_N + 1), Reduction::Serial);
        // A chunk of prefill (SMALL_N < n <= SUBGROUP_MAX_N): the subgroup rows only where the
        // mid-rows race measured them faster than the layout, tiles included.
        let mid_tiles_won = with_races(None, Some(race(9.0, 1.0)));
        assert_eq!(layout(&mid_tiles_won, &tiles, 16), Reduction::Workgroup);
        assert_eq!(layout(&mid_tiles_won, &rows, 16), Reduction::Serial);
        let mid_won = with_races(None, Some(race(1.0, 9.0)));
        for n in [SMALL_N + 1, SUBGROUP_MAX_N] {
            assert_eq!(layout(&mid_won, &tiles, n), Reduction::Subgroup, "n = {n}");
            assert_eq!(layout(&mid_won, &rows, n), Reduction::Subgroup, "n = {n}");
        }
        assert_eq!(
            layout(&mid_won, &tiles, SUBGROUP_MAX_N + 1),
            Reduction::Workgroup
        );
        assert_eq!(layout(&mid_won, &f16_sums, 16), Reduction::Workgroup);
        checked += 1;
    }
    // (A device check runs the tests with WGLLM_TUNE=off: then no race exists to inject into.)
    assert!(
        checked > 0 || wgllm::ops::tune::disabled(),
        "no adapter with a fixed subgroup size (lavapipe has one)"
    );
}

/// Llama-3.1-405B's MLP width, K = 53,248: the row layouts loop over all of it. Mesa's
/// llvmpipe (lavapipe and GL) ends a shader invocation's loops after 65,535 iterations in all,
/// without an error, so a kernel whose loops took a step per few elements (or nested) would
/// return partial sums here: every precision and layout on every adapter must give whole
/// ones, or — the workgroup tiles (a GPU layout), which summed 16,384 whole there and returned
/// partial sums at 53,248 before KernelKey::loop_limited_cols — an error that says why.
#[test]
fn long_rows_are_summed_whole_or_refused() {
    let mut failed = Vec::new();
    for gpu in all_gpus(Switches::default()) {
        assert!(gpu.caps.selftest.loop_limit.is_some(), "{}", label(&gpu));
        for dtype in DTYPES {
            for key in keys(&gpu, dtype) {
                let tiles = key.reduction == Reduction::Workgroup;
                let cols = if tiles { 16_384 } else { 53_248 };
                for n in [5, 33] {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        check(&gpu, &key, (9, cols, n), None, 4243)
                    }));
                    if r.is_err() {
                        failed.push(format!("{} (n = {n}) on {}", key.name(), label(&gpu)));
                    }
                }
                if tiles {
                    let w = synthetic(dtype, 9 * 53_248, 1).unwrap();
                    let limits = PartLimits::of(&gpu);
                    let t =
                        upload_tensor(&gpu, "w", dtype, (9, 53_248), &w, limits, &mut |_, _| {})
                            .unwrap();
                    let xb = gpu.storage("x", 5 * 53_248 * 4).unwrap();
                    let yb = gpu.storage("y", 5 * 9 * 4).unwrap();
                    let mut enc = gpu.device.create_command_encoder(&Default::default());
                    let err = encode_gemm(&gpu, &mut enc, &key, &t, 5, [&xb, &yb], None)
                        .expect_err("tiles past their tested K under a loop limit are refused")
                        .to_string();
                    assert!(
                        err.contains("65535 iterations") && err.contains("16384"),
                        "{}: {err}",
                        label(&gpu)
                    );
                }
            }
        }
    }
    assert!(failed.is_empty(), "partial sums from: {failed:#?}");
}
