//! The per-adapter autotune: a second of measurements, once per adapter + driver + kernel
//! source (then cached), that replaces the device-type guesses where they matter:
//!
//! * the GEMV row layout (one invocation per row, a workgroup per row reduced in workgroup
//!   memory, or a subgroup per row) — measured on lavapipe the first is 4x faster, on GPUs the
//!   others are;
//! * every native path against its fallback on the same work — f16 compute against unpacking
//!   f16 into f32, for GEMV and GEMM; packed int8 dot products against f32 decoding for the
//!   32-element block dtypes. `select` prefers a native path only where it measured
//!   faster (on lavapipe, f16 arithmetic is emulated and runs at half the speed of f32).
//!
//! `WGLLM_TUNE=off` keeps the heuristics (no measurement); `WGLLM_TUNE=fresh` re-measures.

use crate::device::cache::{adapter_key, cached, fnv1a};
use crate::device::capabilities::{LayoutRace, Race, Timed, Tuning};
use crate::device::selftest::Primitive;
use crate::device::tensor::{upload_tensor, PartLimits};
use crate::device::{DeviceError, Gpu, GpuTensor};
use crate::dtype::{AccumDType, ComputeDType, StorageDType};
use crate::ops::select::{KernelKey, Reduction};
use crate::ops::shader::Shader;
use crate::ops::timing::best_seconds;
use crate::ops::{dequantize, gemm, gemv};

/// GEMV shapes of the race, scored together (weight bytes of all ÷ their summed time): rows
/// as long as a 7-8B model's (short rows favoured other layouts on lavapipe than the
/// 4096-wide ones models have). On a CPU adapter 512 rows: large enough to leave the caches,
/// small enough that the whole tune takes about 15 s on lavapipe. On a GPU a layer's
/// attention and MLP projections, 4096 and 14336 rows: at 512 rows (4 MB of q8_0) an H200
/// GEMV is launch and tail, and the race picked layouts up to 1.8x slower than the best at
/// model sizes; at 14336 rows alone it picked, for q6_k, a one-invocation-per-row layout
/// that is faster there (69 µs against 78) but twice as slow at 4096 rows (55 µs against
/// 27), where 4096 invocations fill a fraction of the GPU. The race's time is calibrated per
/// submission, so larger shapes cost only their upload.
pub fn gemv_shapes(caps: &crate::device::Capabilities) -> Vec<(u32, u32)> {
    if caps.summary.is_cpu() {
        vec![(512, 4096)]
    } else {
        vec![(4096, 4096), (14336, 4096)]
    }
}

/// GEMM shape (rows, cols, activation rows): enough outputs that every layout fills a
/// many-core adapter (the shuffled row layout's 256 × 32 workgroup tiles make 32 workgroups
/// here; at 256 × 256 × 64 it had 2, and a 16-core CPU would have raced it on 2 cores), and
/// rows as long as a small model's.
const GEMM_SHAPE: (u32, u32, u32) = (2048, 1024, 128);
/// GEMM shape on GPUs: the benchmark's 4096×4096 × 512. At 2048×1024×128 the H200 ranked the
/// tiles first for f32 (3.4 against 2.2 TFLOP/s for the shuffled row layout) where at the
/// benchmark's shape the shuffled layout was 36% faster (14.3 against 10.5).
const GEMM_SHAPE_GPU: (u32, u32, u32) = (4096, 4096, 512);

/// The GEMM race's shape on this adapter.
fn gemm_shape(caps: &crate::device::Capabilities) -> (u32, u32, u32) {
    if caps.summary.is_cpu() {
        GEMM_SHAPE
    } else {
        GEMM_SHAPE_GPU
    }
}
const RUNS: usize = 3;
/// Rounds of the GEMV layout race (each layout measured once per round, best kept).
const ROUNDS: usize = 2;

/// Whether `WGLLM_TUNE` asks for no tuning.
pub fn disabled() -> bool {
    std::env::var("WGLLM_TUNE").is_ok_and(|v| v == "off")
}

/// The cached tuning of this adapter, or a fresh measurement (then cached).
pub fn run_or_load(gpu: &Gpu) -> Result<Tuning, DeviceError> {
    // The kernels measured, the code that picks their variants, and this file (what is
    // measured, and how) fingerprint the result.
    let mut sources: String = [
        Shader::Gemv,
        Shader::Gemm,
        Shader::Blocks,
        Shader::Fp8,
        Shader::IntDot,
        Shader::U64,
        Shader::QuantizeQ8,
    ]
    .iter()
    .map(|sh| sh.source())
    .collect();
    sources.push_str(include_str!("tune.rs"));
    // Which variant runs for a shape (for_cols: vectors, units, layouts) is decided here.
    sources.push_str(include_str!("select.rs"));
    sources.push_str(include_str!("gemv.rs"));
    sources.push_str(include_str!("gemm.rs"));
    // The candidate shapes and layouts raced (device geometry), and how a kernel is timed.
    sources.push_str(include_str!("../device/capabilities.rs"));
    sources.push_str(include_str!("timing.rs"));
    // The WGLLM_DISABLE switches too: they decide what is raced (with `dot4` off no int-dot
    // kernel is), and `dot4` leaves the device's features as they are, so the adapter key
    // alone would hand a run without the switch the measurements of a run with it.
    let key = format!(
        "{}|{:?}|{:?}|{:016x}",
        adapter_key(gpu),
        gpu.caps.selftest.workarounds(),
        gpu.caps.disabled,
        fnv1a(sources.as_bytes())
    );
    let fresh = std::env::var("WGLLM_TUNE").is_ok_and(|v| v == "fresh");
    let (mut tuning, was_cached) = cached("tuning", &key, fresh, || {
        log::info!(
            "measuring kernel layouts and native-vs-fallback paths on {} (first run on this \
             adapter and driver only: about 15 s on a CPU adapter, up to a minute on a GPU; cached{})",
            gpu.caps.summary.name,
            crate::device::cache::cache_dir()
                .map(|d| format!(" in {}", d.display()))
                .unwrap_or_default()
        );
        let start = std::time::Instant::now();
        let t = measure(gpu);
        log::info!("tuning took {:.1} s", start.elapsed().as_secs_f64());
        t
    })?;
    tuning.cached = was_cached;
    Ok(tuning)
}

fn upload(
    gpu: &Gpu,
    dtype: StorageDType,
    (rows, cols): (u32, u32),
) -> Result<GpuTensor, DeviceError> {
    let bytes = dequantize::synthetic(dtype, rows as usize * cols as usize, 5).unwrap_or_default();
    upload_tensor(
        gpu,
        "tuning weights",
        dtype,
        (rows, cols),
        &bytes,
        PartLimits::of(gpu),
        &mut |_, _| {},
    )
}

/// Weight GB/s of a GEMV kernel over the weights `ws` together: their bytes ÷ the sum of
/// their times.
fn gemv_rate(gpu: &Gpu, key: &KernelKey, ws: &[GpuTensor]) -> Result<Timed, DeviceError> {
    let (mut bytes, mut seconds) = (0u64, 0.0);
    for w in ws {
        let x = gpu.storage("tuning x", u64::from(w.cols) * 4)?;
        let y = gpu.storage("tuning y", u64::from(w.rows) * 4)?;
        seconds += best_seconds(gpu, "tuning gemv", RUNS, |enc| {
            gemv::encode_gemv_tensor(gpu, enc, key, w, [&x, &y], None)
        })?;
        bytes += w.bytes();
    }
    Ok(Timed {
        kernel: key.for_cols(ws[0].cols).name(),
        rate: bytes as f64 / seconds / 1e9,
    })
}

/// Shapes as "4096x4096 + 14336x4096".
pub fn shapes_text(shapes: &[(u32, u32)]) -> String {
    shapes
        .iter()
        .map(|(r, c)| format!("{r}x{c}"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The race's weights of `dtype`, one tensor per shape.
fn upload_all(
    gpu: &Gpu,
    dtype: StorageDType,
    shapes: &[(u32, u32)],
) -> Result<Vec<GpuTensor>, DeviceError> {
    shapes
        .iter()
        .map(|&shape| upload(gpu, dtype, shape))
        .collect()
}

/// GFLOP/s of a GEMM kernel over `w` with `n` activation rows.
fn gemm_rate(gpu: &Gpu, key: &KernelKey, w: &GpuTensor, n: u32) -> Result<Timed, DeviceError> {
    let x = gpu.storage("tuning x", u64::from(w.cols) * u64::from(n) * 4)?;
    let y = gpu.storage("tuning y", u64::from(w.rows) * u64::from(n) * 4)?;
    let seconds = best_seconds(gpu, "tuning gemm", RUNS, |enc| {
        gemm::encode_gemm(gpu, enc, key, w, n, [&x, &y], None)
    })?;
    Ok(Timed {
        kernel: gemm::for_shape(key, w.cols, n).name(),
        rate: gemm::flops(w.rows, w.cols, n) as f64 / seconds / 1e9,
    })
}

/// Activation rows of the few-rows GEMM race (GPUs): a short prefill.
pub const FEW_ROWS: u32 = 4;

/// Activation rows of the mid-rows GEMM race (GPUs): a chunk of prefill, up to which
/// (gemm::SUBGROUP_MAX_N) the subgroup rows may replace the selected layout.
pub const MID_ROWS: u32 = crate::ops::gemm::SUBGROUP_MAX_N;

/// Times every GEMM layout this adapter can run on the weights `w` (f32 tiles and products),
/// with `n` activation rows; on GPUs the tiles with each register tile (gemm::TILE_REGS);
/// for n ≤ gemm::SUBGROUP_MAX_N also a subgroup per weight row, where the subgroup size is
/// fixed.
fn race_gemm_layouts(gpu: &Gpu, w: &GpuTensor, n: u32) -> Result<LayoutRace, DeviceError> {
    // As `select` runs them: 32-byte weight loads where it would.
    let key = |layout| {
        gemm::key(w.dtype, ComputeDType::F32, AccumDType::F32, layout)
            .with_wide_loads(gpu.caps.int64().usable())
    };
    let rate = |layout| gemm_rate(gpu, &key(layout), w, n);
    // CPU adapters run the tiles several times slower than the rows whatever their size, and
    // keep the default (a larger one would lengthen their tune).
    let regs: &[u32] = if gpu.caps.summary.is_cpu() {
        &[gemm::TILE_REG]
    } else {
        &gemm::TILE_REGS
    };
    let tiles = |r| {
        gemm_rate(
            gpu,
            &gemm::with_tile_reg(&key(Reduction::Workgroup), r),
            w,
            n,
        )
    };
    let (mut workgroup, mut tile_reg) = (tiles(regs[0])?, regs[0]);
    for &r in &regs[1..] {
        let t = tiles(r)?;
        if t.rate > workgroup.rate {
            (workgroup, tile_reg) = (t, r);
        }
    }
    let subgroup = match gemm::subgroup_shape(&gpu.caps) {
        Some(shape) if n <= gemm::SUBGROUP_MAX_N => Some(gemm_rate(
            gpu,
            &gemm::with_subgroup_shape(&key(Reduction::Workgroup), shape),
            w,
            n,
        )?),
        _ => None,
    };
    Ok(LayoutRace {
        dtype: w.dtype,
        int_dot: false,
        serial: rate(Reduction::Serial)?,
        workgroup,
        subgroup,
        serial_shuffle: if gpu.caps.subgroup_shuffle().usable() {
            Some(rate(Reduction::SerialShuffle)?)
        } else {
            None
        },
        subgroup_rows: 1,
        tile_reg,
    })
}

/// Times every GEMV row layout this adapter can run on the weights `w` (the int-dot variant
/// with `int_dot`).
fn race_gemv_layouts(
    gpu: &Gpu,
    ws: &[GpuTensor],
    int_dot: bool,
) -> Result<LayoutRace, DeviceError> {
    let caps = &gpu.caps;
    let g = &caps.geometry;
    let dtype = ws[0].dtype;
    // f16 weights race their layouts with f32 compute wherever that fallback runs (it always
    // exists; native f16 is raced against it afterwards, in the layout found here). Racing
    // with f16 compute let lavapipe's slow f16 arithmetic pick the layout for the f32 path.
    let compute = if dtype == StorageDType::F16
        && caps.f16().usable()
        && !caps.selftest.passed(Primitive::Unpack2x16FloatHi)
    {
        ComputeDType::F16
    } else {
        ComputeDType::F32
    };
    // A layout and its rows per subgroup.
    let key = |(r, rows): (Reduction, u32)| {
        let k = KernelKey::gemv(
            dtype,
            compute,
            r,
            g.gemv_shape(r).with_rows_per_invocation(rows),
            KernelKey::reads_vec4(dtype, int_dot),
            caps.selftest.workarounds(),
        );
        // As `select` runs it: 32-byte loads where it would.
        if int_dot { k.with_int_dot() } else { k }.with_wide_reader(caps.int64().usable())
    };
    let mut layouts = vec![(Reduction::Serial, 1), (Reduction::Workgroup, 1)];
    if caps.subgroups().usable() && g.gemv_subgroup.is_some() {
        layouts.push((Reduction::Subgroup, 1));
        // On GPUs, also 2 and 4 rows per subgroup, each activation load serving all of them
        // (fewer L1 requests per weight; fewer subgroups in flight). CPU adapters run one
        // invocation per row and are not raced on it (it would lengthen their tune).
        if !caps.summary.is_cpu()
            && key((Reduction::Subgroup, 1))
                .for_cols(ws[0].cols)
                .can_share_rows()
        {
            layouts.extend([(Reduction::Subgroup, 2), (Reduction::Subgroup, 4)]);
        }
    }
    if caps.subgroup_shuffle().usable() && key((Reduction::SerialShuffle, 1)).shares_x() {
        layouts.push((Reduction::SerialShuffle, 1));
    }
    // Round-robin, each layout's best of ROUNDS: on a shared machine the speed drifts for
    // seconds at a time, and one slow moment must not pick a layout (measured on lavapipe: a
    // single pass once ranked f32's serial layout above one twice as fast).
    let mut best: Vec<Option<Timed>> = vec![None; layouts.len()];
    for _ in 0..ROUNDS {
        for (slot, &layout) in best.iter_mut().zip(&layouts) {
            let t = gemv_rate(gpu, &key(layout), ws)?;
            if slot.as_ref().is_none_or(|b| t.rate > b.rate) {
                *slot = Some(t);
            }
        }
    }
    // Each layout's fastest variant, and its rows per subgroup.
    let fastest = |r: Reduction| {
        layouts
            .iter()
            .zip(&best)
            .filter(|((l, _), _)| *l == r)
            .filter_map(|((_, rows), t)| t.clone().map(|t| (t, *rows)))
            .max_by(|a, b| a.0.rate.total_cmp(&b.0.rate))
    };
    let take = |r: Reduction| fastest(r).map(|(t, _)| t);
    let timed = |r: Reduction| {
        take(r).ok_or_else(|| DeviceError::Internal {
            what: "the layout race".into(),
            detail: format!("{} was not measured", r.name()),
        })
    };
    Ok(LayoutRace {
        dtype,
        int_dot,
        serial: timed(Reduction::Serial)?,
        workgroup: timed(Reduction::Workgroup)?,
        subgroup: take(Reduction::Subgroup),
        serial_shuffle: take(Reduction::SerialShuffle),
        subgroup_rows: fastest(Reduction::Subgroup).map_or(1, |(_, rows)| rows),
        tile_reg: gemm::TILE_REG,
    })
}

/// Runs the measurements: every weight dtype's GEMV layouts, the GEMM layouts, and each
/// native path against its fallback (about 15 s on lavapipe, a second or two on a GPU).
pub fn measure(gpu: &Gpu) -> Result<Tuning, DeviceError> {
    let caps = &gpu.caps;
    let gemv_shapes = gemv_shapes(caps);
    let dtypes: Vec<StorageDType> = dequantize::DTYPES
        .into_iter()
        .filter(|&d| {
            crate::ops::select::select(caps, crate::ops::select::Op::Gemv, d, None)
                .key()
                .is_some()
        })
        .collect();
    // The tune takes 15 s on lavapipe and up to a minute on a GPU (more layouts, two shapes):
    // a bar on stderr, drawn only when it is a terminal, says how far it is.
    let progress = indicatif::ProgressBar::with_draw_target(
        Some(dtypes.len() as u64 + 1),
        indicatif::ProgressDrawTarget::stderr(),
    );
    progress.set_style(
        indicatif::ProgressStyle::with_template("tuning kernels [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut gemv = Vec::new();
    for dtype in dtypes {
        progress.set_message(format!("gemv {dtype}"));
        log::debug!("tuning gemv layouts for {dtype}");
        // One upload serves the f32-decode and int-dot races.
        let ws = upload_all(gpu, dtype, &gemv_shapes)?;
        gemv.push(race_gemv_layouts(gpu, &ws, false)?);
        if KernelKey::has_int_dot(dtype) && caps.dot4().usable() {
            gemv.push(race_gemv_layouts(gpu, &ws, true)?);
        }
        progress.inc(1);
    }
    progress.set_message("gemm and native-vs-fallback races");
    let (rows, cols, n) = gemm_shape(caps);
    let gemm_key = |dtype, compute, layout| gemm::key(dtype, compute, AccumDType::F32, layout);
    let w32 = upload(gpu, StorageDType::F32, (rows, cols))?;
    let gemm = race_gemm_layouts(gpu, &w32, n)?;
    // On GPUs every dtype's layouts are raced too (a few seconds there): on the H200 the
    // fastest layout differed by dtype (f32: the shuffled rows, 14.3 TFLOP/s against 10.5 for
    // the tiles; f16 with f32 tiles: the tiles, 10.5 against 7.9). CPU adapters keep the f32
    // race for every dtype (about 3 s a dtype on lavapipe).
    let mut gemm_by_dtype = Vec::new();
    if !caps.summary.is_cpu() {
        for dtype in dequantize::DTYPES {
            if dtype != StorageDType::F32
                && crate::ops::select::select(caps, crate::ops::select::Op::Gemm, dtype, None)
                    .key()
                    .is_some()
            {
                let w = upload(gpu, dtype, (rows, cols))?;
                gemm_by_dtype.push(race_gemm_layouts(gpu, &w, n)?);
            }
        }
    }
    // A short prefill on GPUs with a fixed subgroup size: the tiles against a subgroup per
    // weight row (gemm::for_tokens), f32 at the GEMM race's shape with FEW_ROWS rows.
    // And a chunk of prefill (MID_ROWS rows), where the subgroup rows replace the selected
    // layout only if measured faster.
    let (gemm_few_rows, gemm_mid_rows) =
        if !caps.summary.is_cpu() && gemm::subgroup_shape(caps).is_some() {
            (
                Some(race_gemm_layouts(gpu, &w32, FEW_ROWS)?),
                Some(race_gemm_layouts(gpu, &w32, MID_ROWS)?),
            )
        } else {
            (None, None)
        };
    let mut tuning = Tuning {
        gemv_shapes: gemv_shapes.clone(),
        gemv,
        gemm: Some(gemm),
        gemm_by_dtype,
        gemm_few_rows,
        gemm_mid_rows,
        f16_gemv: None,
        f16_gemm: None,
        cached: false,
    };
    // The races run in the layouts just measured fastest.
    let geometry = caps.geometry.clone().tuned(&tuning);
    let fallback_runs = caps.selftest.passed(Primitive::Unpack2x16FloatHi);
    if caps.f16().usable() && fallback_runs {
        let w16 = upload_all(gpu, StorageDType::F16, &gemv_shapes)?;
        let r = geometry.gemv_reduction(
            StorageDType::F16,
            false,
            caps.subgroups().usable(),
            caps.subgroup_shuffle().usable(),
        );
        let key = |compute| {
            KernelKey::gemv(
                StorageDType::F16,
                compute,
                r,
                geometry.gemv_shape_for(StorageDType::F16, false, r),
                true,
                caps.selftest.workarounds(),
            )
            .with_wide_reader(caps.int64().usable())
        };
        tuning.f16_gemv = Some(Race {
            work: format!("f16 gemv {}", shapes_text(&gemv_shapes)),
            unit: "GB/s".into(),
            native: gemv_rate(gpu, &key(ComputeDType::F16), &w16)?,
            fallback: gemv_rate(gpu, &key(ComputeDType::F32), &w16)?,
        });
        let w = upload(gpu, StorageDType::F16, (rows, cols))?;
        let layout = geometry.gemm_layout_for(StorageDType::F16);
        let tile_reg = geometry.gemm_tile_reg_for(StorageDType::F16);
        let key =
            |compute| gemm::with_tile_reg(&gemm_key(StorageDType::F16, compute, layout), tile_reg);
        tuning.f16_gemm = Some(Race {
            work: format!("f16 gemm {rows}x{cols}, n={n}"),
            unit: "GFLOP/s".into(),
            native: gemm_rate(gpu, &key(ComputeDType::F16), &w, n)?,
            fallback: gemm_rate(gpu, &key(ComputeDType::F32), &w, n)?,
        });
    }
    progress.finish_and_clear();
    Ok(tuning)
}
