//! `wgllm bench`: kernel throughput per adapter × op × dtype × variant, each figure next to a
//! limit measured in the same run on the same adapter (streaming-read GB/s for GEMV), as a
//! ratio, so the numbers hold on a noisy machine.

use super::format::table;
use super::progress::ByteProgress;
use super::CliError;
use crate::device::tensor::{upload_tensor, PartLimits};
use crate::device::{Gpu, GpuTensor};
use crate::dtype::{AccumDType, ComputeDType, StorageDType};
use crate::formats::TensorStore;
use crate::model::weights;
use crate::ops::fma_peak::{self, FmaResult};
use crate::ops::select::{select, KernelKey, KernelPath, Op};
use crate::ops::timing::{self, median_seconds, median_timing, Clock};
use crate::ops::{gemm, gemv, stream_read};
use serde::Serialize;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchOp {
    Gemv,
    Gemm,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The op to measure: gemv (decode, ratio to the streaming-read limit) or gemm (prefill,
    /// ratio to the FMA peak of the compute dtype).
    #[arg(long, value_enum, default_value = "gemv")]
    pub op: BenchOp,
    /// Storage dtypes to measure (comma-separated). Default: every dtype with a kernel here.
    #[arg(long, value_delimiter = ',')]
    pub dtype: Vec<StorageDType>,
    /// Weight shapes as ROWSxCOLS (comma-separated). Default: 4096x4096 and 14336x4096
    /// (Llama-3-8B's attention and MLP projections) for gemv, 4096x4096 for gemm. Tensors
    /// over the binding limit are split by rows, as a model load would.
    #[arg(long, value_delimiter = ',')]
    pub shape: Vec<Shape>,
    /// Activation rows (tokens) for gemm.
    #[arg(long, default_value_t = 512)]
    pub n: u32,
    /// Measure a model instead of synthetic shapes: upload its matrices from the file (with a
    /// progress bar), then time one pass over all of them — one GEMV each, as one decoded
    /// token reads every weight once (or one GEMM each with `--op gemm`, a prefill chunk of
    /// `--n` tokens). Reports the pass time, weight GB/s against the streaming-read limit, and
    /// the tokens/s bound the weight reads alone imply.
    #[arg(long, value_name = "PATH")]
    pub model: Option<std::path::PathBuf>,
    /// Accumulation dtype: f32 (default) or f16 (needs shader-f16), to measure the third
    /// precision level. With f16, only variants that can keep f16 sums are run (not the
    /// subgroup reduction, and GEMM with f16 tiles).
    #[arg(long, value_parser = parse_accum, default_value = "f32")]
    pub accum: AccumDType,
    /// Measure only the variant `select` picks, not every reachable one.
    #[arg(long)]
    pub selected_only: bool,
    /// Let consecutive repetitions write different output buffers (four, in turn), so that
    /// they do not depend on each other and the device need not finish one before starting
    /// the next — as a decode step's Q, K and V projections, which read the same input. By
    /// default every repetition writes the same output, which orders them like a chain of
    /// dependent matmuls.
    #[arg(long)]
    pub independent_outputs: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shape {
    pub rows: u32,
    pub cols: u32,
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (r, c) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("shape '{s}' is not ROWSxCOLS"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("shape '{s}': '{v}' is not a positive integer"))
        };
        Ok(Self {
            rows: parse(r)?,
            cols: parse(c)?,
        })
    }
}

/// One measured kernel.
#[derive(Serialize)]
pub struct BenchRow {
    pub op: &'static str,
    pub dtype: StorageDType,
    pub kernel: String,
    /// Whether this is the variant `select` picks (what `capabilities` reports).
    pub selected: bool,
    pub rows: u32,
    pub cols: u32,
    /// Activation rows: 1 for gemv.
    pub n: u32,
    /// Row-range parts the weights were split into (1 unless over the binding limit).
    pub parts: usize,
    /// One execution, by the report's `clock` (GPU timestamps where the device has them).
    pub seconds: f64,
    /// One execution by the host's clock around submit and wait: `seconds` plus the host's
    /// work per dispatch (wgpu's command recording and tracking) and the submit/wait round
    /// trip, spread over the repetitions of a submission.
    pub wall_seconds: f64,
    /// Weight bytes read ÷ time (GEMV is memory-bound: this is its figure of merit).
    pub weight_gb_per_s: f64,
    pub gflop_per_s: f64,
    /// gemv: weight_gb_per_s ÷ the streaming-read limit, timed again right before this
    /// kernel (the run's best layout and width).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_stream_read: Option<f64>,
    /// gemm: gflop_per_s ÷ the FMA peak of the kernel's compute dtype, timed again right
    /// before this kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_fma_peak: Option<f64>,
    /// The limit that ratio divides by (GB/s for gemv, GFLOP/s for gemm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

/// One dtype's share of a model pass.
#[derive(Serialize)]
pub struct ModelDtype {
    pub dtype: StorageDType,
    pub matrices: usize,
    pub bytes: u64,
    pub kernel: String,
    /// native / fallback, as `capabilities` reports it.
    pub path: &'static str,
}

/// A pass over every matrix of a model file.
#[derive(Serialize)]
pub struct ModelBench {
    pub path: String,
    pub op: &'static str,
    /// Activation rows per matrix: 1 for a decode pass, `--n` for a prefill chunk.
    pub n: u32,
    pub matrices: usize,
    pub weight_bytes: u64,
    /// Matrices split across bindings (over the binding limit).
    pub split_matrices: usize,
    pub upload_seconds: f64,
    pub seconds: f64,
    pub weight_gb_per_s: f64,
    pub gflop_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_stream_read: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_fma_peak: Option<f64>,
    /// Upper bound on tokens/s from the matmuls' weight reads alone: n / pass time (attention,
    /// norms and sampling come on top).
    pub tokens_per_s_bound: f64,
    pub by_dtype: Vec<ModelDtype>,
    /// Tensors left out, with why (no matmul kernel for their dtype, not 2-D).
    pub not_measured: Vec<String>,
}

#[derive(Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: &'static str,
    pub disabled: Vec<&'static str>,
    /// The clock that timed every kernel and limit here.
    pub clock: Clock,
    /// Whether consecutive repetitions wrote different outputs (`--independent-outputs`).
    pub independent_outputs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_read: Option<stream_read::StreamReadResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fma_peak: Vec<FmaResult>,
    /// An empty kernel's dispatch, the fixed cost inside every row's time (what bounds the
    /// small shapes: on the H200 a 256-row GEMV took 10.5 µs for 1 µs of reading).
    pub dispatch_floor: fma_peak::DispatchFloor,
    pub rows: Vec<BenchRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelBench>,
}

/// The dtypes to measure: those asked for, or every weight dtype `select` has a kernel for.
fn dtypes(gpu: &Gpu, args: &Args, op: Op) -> Result<Vec<StorageDType>, CliError> {
    if args.dtype.is_empty() {
        return Ok(StorageDType::WEIGHT_DTYPES
            .into_iter()
            .filter(|d| select(&gpu.caps, op, *d, None).key().is_some())
            .collect());
    }
    for d in &args.dtype {
        if let KernelPath::Unsupported { reason } = select(&gpu.caps, op, *d, None) {
            return Err(CliError::BadInput(format!(
                "{op} over {d} does not run on {}: {reason}",
                gpu.caps.summary.name
            )));
        }
    }
    Ok(args.dtype.clone())
}

fn parse_accum(s: &str) -> Result<AccumDType, String> {
    match s {
        "f32" => Ok(AccumDType::F32),
        "f16" => Ok(AccumDType::F16),
        _ => Err(format!("'{s}' is not an accumulation dtype (f32, f16)")),
    }
}

/// The keys with their sums in `accum`: f32 leaves them as they are; f16 keeps those that can
/// hold f16 sums (`KernelKey::can_sum_in_f16`).
fn with_accum(
    gpu: &Gpu,
    keys: Vec<crate::ops::select::KernelKey>,
    accum: AccumDType,
) -> Result<Vec<crate::ops::select::KernelKey>, CliError> {
    if accum == AccumDType::F32 {
        return Ok(keys);
    }
    if !gpu.caps.f16().usable() {
        return Err(CliError::BadInput(format!(
            "--accum f16 needs f16 arithmetic, and {}: {}",
            gpu.caps.summary.name,
            gpu.caps.f16().why_not("shader-f16")
        )));
    }
    let mut out: Vec<_> = keys
        .into_iter()
        .filter(|k| k.can_sum_in_f16())
        .map(|k| k.with_accum(accum))
        .collect();
    out.dedup();
    if out.is_empty() {
        return Err(CliError::BadInput(
            "no variant of this selection can keep f16 sums (drop --selected-only)".into(),
        ));
    }
    Ok(out)
}

/// Synthetic weights of a shape, uploaded (split by rows where needed), and the selected
/// and reachable kernels for them.
fn weights(gpu: &Gpu, dtype: StorageDType, shape: Shape) -> Result<GpuTensor, CliError> {
    // Real-looking data (random values, finite scales): zeros or NaNs can run at other speeds.
    let n = shape.rows as usize * shape.cols as usize;
    let bytes = crate::ops::dequantize::synthetic(dtype, n, 7)
        .ok_or_else(|| CliError::BadInput(format!("{dtype}: {n} elements are not whole blocks")))?;
    Ok(upload_tensor(
        gpu,
        &format!("bench {dtype} {}x{}", shape.rows, shape.cols),
        dtype,
        (shape.rows, shape.cols),
        &bytes,
        PartLimits::of(gpu),
        &mut |_, _| {},
    )?)
}

/// Activations: `n` rows of `cols` small values.
fn activations(gpu: &Gpu, n: u32, cols: u32) -> Result<wgpu::Buffer, CliError> {
    let x: Vec<f32> = (0..u64::from(n) * u64::from(cols))
        .map(|i| ((i % 7) as f32 - 3.0) * 0.25)
        .collect();
    Ok(gpu.upload("bench x", bytemuck::cast_slice(&x))?)
}

fn bench_op(gpu: &Gpu, args: &Args, op: Op, limits: &Limits) -> Result<Vec<BenchRow>, CliError> {
    let n = if op == Op::Gemv { 1 } else { args.n.max(1) };
    let default_shapes: &[Shape] = if op == Op::Gemv {
        &[
            Shape {
                rows: 4096,
                cols: 4096,
            },
            Shape {
                rows: 14336,
                cols: 4096,
            },
        ]
    } else {
        &[Shape {
            rows: 4096,
            cols: 4096,
        }]
    };
    let shapes = if args.shape.is_empty() {
        default_shapes
    } else {
        &args.shape[..]
    };
    let mut rows: Vec<BenchRow> = Vec::new();
    for dtype in dtypes(gpu, args, op)? {
        // GEMM's selected kernel for this many activation rows (gemm::for_tokens).
        let selected = select(&gpu.caps, op, dtype, None).key().map(|k| match op {
            Op::Gemv => k.clone(),
            _ => gemm::for_tokens(&gpu.caps, k, n),
        });
        let keys = match (args.selected_only, op) {
            (true, _) => selected.iter().cloned().collect(),
            (false, Op::Gemv) => gemv::reachable_variants(&gpu.caps, dtype),
            (false, _) => gemm::reachable_variants(&gpu.caps, dtype),
        };
        let keys = with_accum(gpu, keys, args.accum)?;
        for &shape in shapes {
            eprintln!(
                "{op} {dtype} {}x{} (n = {n}): {} variants…",
                shape.rows,
                shape.cols,
                keys.len()
            );
            let w = weights(gpu, dtype, shape)?;
            let x = activations(gpu, n, shape.cols)?;
            let outputs = if args.independent_outputs { 4 } else { 1 };
            let ys = (0..outputs)
                .map(|_| gpu.storage("bench y", u64::from(shape.rows) * u64::from(n) * 4))
                .collect::<Result<Vec<_>, _>>()?;
            let first_row = rows.len();
            let selected_kernel = selected
                .as_ref()
                .map(|s| running(op, s, shape.cols, n).name());
            for key in &keys {
                // The kernel that runs for this shape: keys that run the same one (the tiles
                // become a subgroup per row for a few activation rows; GEMV rows that are not
                // whole vectors or groups take another reader) are measured once.
                let kernel = running(op, key, shape.cols, n).name();
                // By the kernel that runs, not the key: two keys can run one kernel (the H200's
                // selected q5_1 int-dot key carried a vec4 flag its subgroup layout ignores,
                // and no row was marked selected).
                let is_selected = selected_kernel.as_ref() == Some(&kernel);
                if let Some(row) = rows[first_row..].iter_mut().find(|r| r.kernel == kernel) {
                    row.selected = row.selected || is_selected;
                    continue;
                }
                // The limit is timed next to each kernel: on a shared machine bandwidth drifts
                // by tens of percent over a run, and a ratio is only fair against the limit of
                // the same moment.
                let near = limits.nearby(gpu)?;
                let mut rep = 0usize;
                let timing = median_timing(gpu, &format!("the {op} benchmark"), 5, |enc| {
                    let y = &ys[rep % ys.len()];
                    rep += 1;
                    match op {
                        Op::Gemv => gemv::encode_gemv_tensor(gpu, enc, key, &w, [&x, y], None),
                        _ => gemm::encode_gemm(gpu, enc, key, &w, n, [&x, y], None),
                    }
                })?;
                let seconds = timing.seconds;
                let gbs = w.bytes() as f64 / seconds / 1e9;
                let gflops = gemm::flops(shape.rows, shape.cols, n) as f64 / seconds / 1e9;
                rows.push(BenchRow {
                    op: op.name(),
                    dtype,
                    kernel,
                    selected: is_selected,
                    rows: shape.rows,
                    cols: shape.cols,
                    n,
                    parts: w.parts.len(),
                    seconds,
                    wall_seconds: timing.wall_seconds,
                    weight_gb_per_s: gbs,
                    gflop_per_s: gflops,
                    ratio_to_stream_read: near.read_ratio(gbs),
                    ratio_to_fma_peak: near.fma_ratio(gflops, key.compute),
                    limit: near.limit(key.compute),
                });
            }
        }
    }
    Ok(rows)
}

/// Uploads every matrix of the model at `path` that has a kernel, then times one pass over all
/// of them with the kernels `select` picks.
fn bench_model(
    gpu: &Gpu,
    path: &std::path::Path,
    op: Op,
    n: u32,
    limits: &Limits,
) -> Result<ModelBench, CliError> {
    let n = if op == Op::Gemv { 1 } else { n.max(1) };
    let store = TensorStore::open(path)?;
    let mut not_measured = Vec::new();
    let mut keys = std::collections::BTreeMap::new();
    for t in &store.tensors {
        if !weights::is_kernel_matrix(t) {
            if t.is_matrix() {
                not_measured.push(format!("{} ({}: no matmul kernel)", t.name, t.dtype));
            }
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = keys.entry(t.dtype) {
            match select(&gpu.caps, op, t.dtype, None) {
                KernelPath::Unsupported { reason } => {
                    not_measured.push(format!("{} ({op} over {}: {reason})", t.name, t.dtype))
                }
                path => {
                    e.insert(path);
                }
            }
        }
    }
    let mut bar = ByteProgress::new("uploading weights");
    let start = std::time::Instant::now();
    let loaded = weights::upload(
        gpu,
        &store,
        |t| weights::is_kernel_matrix(t) && keys.contains_key(&t.dtype),
        &mut |done, total| bar.update(done, total),
    )
    .map_err(|e| match e {
        weights::LoadError::Format(f) => CliError::Format(f),
        weights::LoadError::Device(d) => CliError::Device(d),
        other => CliError::DoesNotFit(other.to_string()),
    })?;
    bar.finish();
    let upload_seconds = start.elapsed().as_secs_f64();
    if loaded.matrices.is_empty() {
        return Err(CliError::BadInput(format!(
            "{}: no matrix with a {op} kernel on this adapter{}",
            path.display(),
            if not_measured.is_empty() {
                String::new()
            } else {
                format!(" ({})", not_measured.join("; "))
            }
        )));
    }
    let max_cols = loaded.matrices.iter().map(|m| m.cols).max().unwrap_or(1);
    let max_rows = loaded.matrices.iter().map(|m| m.rows).max().unwrap_or(1);
    let x = activations(gpu, n, max_cols)?;
    let y = gpu.storage("bench y", u64::from(max_rows) * u64::from(n) * 4)?;
    eprintln!(
        "timing a {op} pass over {} matrices…",
        loaded.matrices.len()
    );
    // Each dtype's selected kernel for this many activation rows (gemm::for_tokens), once.
    let run_keys: std::collections::BTreeMap<StorageDType, KernelKey> = keys
        .iter()
        .filter_map(|(dtype, path)| {
            let key = path.key()?;
            Some((
                *dtype,
                match op {
                    Op::Gemv => key.clone(),
                    _ => gemm::for_tokens(&gpu.caps, key, n),
                },
            ))
        })
        .collect();
    let seconds = median_seconds(gpu, &format!("the model {op} pass"), 3, |enc| {
        for m in &loaded.matrices {
            let key = &run_keys[&m.dtype];
            match op {
                Op::Gemv => gemv::encode_gemv_tensor(gpu, enc, key, m, [&x, &y], None)?,
                _ => gemm::encode_gemm(gpu, enc, key, m, n, [&x, &y], None)?,
            }
        }
        Ok(())
    })?;
    let flops: u64 = loaded
        .matrices
        .iter()
        .map(|m| gemm::flops(m.rows, m.cols, n))
        .sum();
    let gbs = loaded.bytes as f64 / seconds / 1e9;
    let gflops = flops as f64 / seconds / 1e9;
    // The limit of the same moment (see bench_op).
    let limits = limits.nearby(gpu)?;
    let by_dtype = keys
        .iter()
        .map(|(dtype, path)| {
            let of: Vec<&GpuTensor> = loaded
                .matrices
                .iter()
                .filter(|m| m.dtype == *dtype)
                .collect();
            ModelDtype {
                dtype: *dtype,
                matrices: of.len(),
                bytes: of.iter().map(|m| m.bytes()).sum(),
                // The kernels that ran: a dtype's matrices of other widths may take another
                // reader (realigned groups, no 16-byte vectors) or GEMM tile.
                kernel: run_keys
                    .get(dtype)
                    .map(|k| {
                        let mut names: Vec<String> = of
                            .iter()
                            .map(|m| running(op, k, m.cols, n).name())
                            .collect();
                        names.sort();
                        names.dedup();
                        names.join(", ")
                    })
                    .unwrap_or_default(),
                path: path.kind(),
            }
        })
        .collect();
    Ok(ModelBench {
        path: path.display().to_string(),
        op: op.name(),
        n,
        matrices: loaded.matrices.len(),
        weight_bytes: loaded.bytes,
        split_matrices: loaded.matrices.iter().filter(|m| m.parts.len() > 1).count(),
        upload_seconds,
        seconds,
        weight_gb_per_s: gbs,
        gflop_per_s: gflops,
        ratio_to_stream_read: limits.read_ratio(gbs),
        ratio_to_fma_peak: limits.fma_ratio(gflops, ComputeDType::F32),
        tokens_per_s_bound: f64::from(n) / seconds,
        by_dtype,
        not_measured,
    })
}

/// The kernel `key` runs as over rows of `cols` elements and `n` activation rows: the reader
/// its encoder picks for the shape (gemv's for_cols, gemm's for_shape).
fn running(op: Op, key: &KernelKey, cols: u32, n: u32) -> KernelKey {
    match op {
        Op::Gemv => key.for_cols(cols),
        _ => gemm::for_shape(key, cols, n),
    }
}

/// The limits measured in this run.
struct Limits {
    stream_read: Option<stream_read::StreamReadResult>,
    fma: Vec<FmaResult>,
    /// The streaming-read source kept for timing the limit again next to each kernel (not
    /// kept for a model pass, whose weights need the memory).
    stream_source: Option<wgpu::Buffer>,
}

impl Limits {
    /// The same limits, timed again now (each in the configuration measured best).
    fn nearby(&self, gpu: &Gpu) -> Result<Limits, CliError> {
        Ok(Limits {
            stream_read: match &self.stream_read {
                Some(l) => Some(stream_read::remeasure(gpu, l, self.stream_source.as_ref())?),
                None => None,
            },
            fma: self
                .fma
                .iter()
                .map(|f| fma_peak::measure(gpu, f.dtype))
                .collect::<Result<_, _>>()?,
            stream_source: None,
        })
    }

    /// The figure a kernel of `compute` dtype is divided by.
    fn limit(&self, compute: ComputeDType) -> Option<f64> {
        self.stream_read
            .as_ref()
            .map(|l| l.gb_per_s)
            .or_else(|| self.fma_peak(compute).map(|f| f.gflop_per_s))
    }

    /// The FMA peak a kernel of `compute` dtype is held to (i8 and f32 kernels: the f32 one).
    fn fma_peak(&self, compute: ComputeDType) -> Option<&FmaResult> {
        let peak_dtype = if compute == ComputeDType::F16 {
            ComputeDType::F16
        } else {
            ComputeDType::F32
        };
        self.fma.iter().find(|f| f.dtype == peak_dtype)
    }

    /// Weight GB/s as a share of the streaming-read limit (when measured).
    fn read_ratio(&self, gb_per_s: f64) -> Option<f64> {
        self.stream_read.as_ref().map(|l| gb_per_s / l.gb_per_s)
    }

    /// GFLOP/s as a share of the FMA peak of `compute` (when measured).
    fn fma_ratio(&self, gflop_per_s: f64, compute: ComputeDType) -> Option<f64> {
        self.fma_peak(compute).map(|f| gflop_per_s / f.gflop_per_s)
    }
}

/// Measures the limit (streaming read for gemv, FMA peak per compute dtype for gemm), then
/// every requested kernel, on one opened adapter. `benches/gemv.rs` calls this too, for every
/// adapter.
pub fn measure(gpu: &Gpu, args: &Args) -> Result<BenchReport, CliError> {
    let name = &gpu.caps.summary.name;
    let dispatch_floor = fma_peak::measure_dispatch_floor(gpu)?;
    let (op, limits) = match args.op {
        BenchOp::Gemv => {
            eprintln!("measuring the streaming-read limit on {name}…");
            let l = stream_read::measure_limit(gpu)?;
            let stream_source = match args.model {
                None => Some(stream_read::source(gpu, l.bytes)?),
                Some(_) => None,
            };
            (
                Op::Gemv,
                Limits {
                    stream_read: Some(l),
                    fma: Vec::new(),
                    stream_source,
                },
            )
        }
        BenchOp::Gemm => {
            eprintln!("measuring the FMA peak on {name}…");
            let mut fma = vec![fma_peak::measure(gpu, ComputeDType::F32)?];
            if gpu.caps.f16().usable() {
                fma.push(fma_peak::measure(gpu, ComputeDType::F16)?);
            }
            (
                Op::Gemm,
                Limits {
                    stream_read: None,
                    fma,
                    stream_source: None,
                },
            )
        }
    };
    let (rows, model) = match &args.model {
        Some(path) => (
            Vec::new(),
            Some(bench_model(gpu, path, op, args.n, &limits)?),
        ),
        None => (bench_op(gpu, args, op, &limits)?, None),
    };
    Ok(BenchReport {
        adapter: name.clone(),
        backend: gpu.caps.summary.backend,
        disabled: gpu.caps.disabled.names(),
        clock: timing::clock(gpu),
        independent_outputs: args.independent_outputs,
        stream_read: limits.stream_read,
        fma_peak: limits.fma,
        dispatch_floor,
        rows,
        model,
    })
}

pub fn run(selector: Option<&str>, args: &Args) -> Result<(), CliError> {
    let gpu = super::open_gpu(selector)?;
    let report = measure(&gpu, args)?;
    super::format::emit(args.json, &report, render)
}

/// The human table.
pub fn render(r: &BenchReport) -> String {
    let mut limits = Vec::new();
    if let Some(l) = &r.stream_read {
        limits.push(format!(
            "streaming-read limit {:.1} GB/s ({:?}, {} invocations, {}-byte loads)",
            l.gb_per_s, l.layout, l.invocations, l.word_bytes
        ));
    }
    for f in &r.fma_peak {
        limits.push(format!("{} FMA peak {:.1} GFLOP/s", f.dtype, f.gflop_per_s));
    }
    limits.push(format!(
        "an empty dispatch {:.1} µs",
        r.dispatch_floor.dependent_seconds * 1e6
    ));
    if !r.disabled.is_empty() {
        limits.push(format!("WGLLM_DISABLE={}", r.disabled.join(",")));
    }
    limits.push(format!("timed by {}", r.clock.name()));
    if r.independent_outputs {
        limits.push("repetitions write independent outputs".into());
    }
    let mut out = format!("{} ({}): {}\n", r.adapter, r.backend, limits.join("; "));
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|b| {
            let ratio = b.ratio_to_stream_read.or(b.ratio_to_fma_peak);
            vec![
                b.op.into(),
                b.dtype.to_string(),
                if b.n > 1 {
                    format!("{}x{} n={}", b.rows, b.cols, b.n)
                } else {
                    format!("{}x{}", b.rows, b.cols)
                },
                format!("{}{}", b.kernel, if b.selected { " *" } else { "" }),
                format!("{:.1} µs", b.seconds * 1e6),
                format!("{:.1} µs", b.wall_seconds * 1e6),
                format!("{:.1} GB/s", b.weight_gb_per_s),
                format!("{:.1} GFLOP/s", b.gflop_per_s),
                match (ratio, b.limit) {
                    (Some(r), Some(l)) => format!("{:.0}% of {l:.1}", r * 100.0),
                    (Some(r), None) => format!("{:.0}%", r * 100.0),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    if !r.rows.is_empty() {
        let limit = if r.fma_peak.is_empty() {
            "of read limit (GB/s, timed next to it)"
        } else {
            "of FMA peak (GFLOP/s, timed next to it)"
        };
        out.push_str(&table(
            &[
                "op",
                "dtype",
                "shape",
                "kernel (* = selected)",
                "time",
                "host-timed",
                "weights read",
                "compute",
                limit,
            ],
            &rows,
        ));
    }
    if let Some(m) = &r.model {
        out.push_str(&render_model(m));
    }
    if r.rows.iter().any(|b| b.parts > 1) {
        out.push_str(
            "(weights over the binding limit were split by rows, as a model load splits them)\n",
        );
    }
    out
}

fn render_model(m: &ModelBench) -> String {
    let ratio = m
        .ratio_to_stream_read
        .map(|r| format!("{:.0}% of the streaming-read limit", r * 100.0))
        .or(m
            .ratio_to_fma_peak
            .map(|r| format!("{:.0}% of the f32 FMA peak", r * 100.0)))
        .unwrap_or_default();
    let mut out = format!(
        "{}: {} matrices, {} of weights ({} split across bindings), uploaded in {:.1} s\n\
         one {} pass (n = {}): {:.2} ms, {:.1} GB/s of weights, {:.1} GFLOP/s — {ratio}\n\
         => at most {:.1} tokens/s {} from the matmuls alone (attention, norms and sampling come on top)\n",
        m.path,
        m.matrices,
        super::format::bytes(m.weight_bytes),
        m.split_matrices,
        m.upload_seconds,
        m.op,
        m.n,
        m.seconds * 1e3,
        m.weight_gb_per_s,
        m.gflop_per_s,
        m.tokens_per_s_bound,
        if m.op == "gemv" { "decoded" } else { "prefilled" }
    );
    let rows: Vec<Vec<String>> = m
        .by_dtype
        .iter()
        .map(|d| {
            vec![
                d.dtype.to_string(),
                d.matrices.to_string(),
                super::format::bytes(d.bytes),
                format!("{} ({})", d.kernel, d.path),
            ]
        })
        .collect();
    out.push_str(&table(
        &["dtype", "matrices", "bytes", "kernel (path)"],
        &rows,
    ));
    for n in &m.not_measured {
        out.push_str(&format!("  not measured: {n}\n"));
    }
    out
}
