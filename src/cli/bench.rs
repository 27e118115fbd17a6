//! `wgllm bench`: kernel throughput per adapter × op × dtype × variant, each figure next to a
//! limit measured in the same run on the same adapter (streaming-read GB/s for GEMV), as a
//! ratio, so the numbers hold on a noisy machine.

use super::format::table;
use super::CliError;
use crate::device::Gpu;
use crate::dtype::StorageDType;
use crate::ops::gemv::{check_shape, encode_gemv, kernel_for, reachable_variants, GemvError};
use crate::ops::select::{select, Op};
use crate::ops::stream_read;
use crate::ops::timing::median_seconds;
use serde::Serialize;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchOp {
    Gemv,
    Gemm,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The op to measure.
    #[arg(long, value_enum, default_value = "gemv")]
    pub op: BenchOp,
    /// Storage dtypes to measure (comma-separated). Default: every dtype with a kernel here.
    #[arg(long, value_delimiter = ',')]
    pub dtype: Vec<StorageDType>,
    /// Shapes as ROWSxCOLS (comma-separated). Default: 4096x4096 and 14336x4096 (Llama-3-8B's
    /// attention and MLP projections).
    #[arg(long, value_delimiter = ',', default_value = "4096x4096,14336x4096")]
    pub shape: Vec<Shape>,
    /// Measure only the variant `select` picks, not every reachable one.
    #[arg(long)]
    pub selected_only: bool,
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
    /// native / fallback, as `select` would call this variant's path.
    pub selected: bool,
    pub rows: u32,
    pub cols: u32,
    pub seconds: f64,
    /// Weight bytes read ÷ time (GEMV is memory-bound: this is its figure of merit).
    pub weight_gb_per_s: f64,
    pub gflop_per_s: f64,
    /// weight_gb_per_s ÷ the streaming-read limit measured in this run.
    pub ratio_to_stream_read: f64,
    /// Why the shape was not run, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: &'static str,
    pub disabled: Vec<&'static str>,
    pub stream_read: stream_read::StreamReadResult,
    pub rows: Vec<BenchRow>,
}

fn bench_gemv(gpu: &Gpu, args: &Args, limit_gb_s: f64) -> Result<Vec<BenchRow>, CliError> {
    let dtypes: Vec<StorageDType> = if args.dtype.is_empty() {
        StorageDType::WEIGHT_DTYPES
            .into_iter()
            .filter(|d| select(&gpu.caps, Op::Gemv, *d, None).key().is_some())
            .collect()
    } else {
        args.dtype.clone()
    };
    let mut rows = Vec::new();
    for dtype in dtypes {
        let (selected_key, _) =
            kernel_for(gpu, dtype).map_err(|e| CliError::BadInput(e.to_string()))?;
        let keys = if args.selected_only {
            vec![selected_key.clone()]
        } else {
            reachable_variants(&gpu.caps, dtype)
        };
        for shape in &args.shape {
            let skip = |why: String, kernel: String| BenchRow {
                op: "gemv",
                dtype,
                kernel,
                selected: false,
                rows: shape.rows,
                cols: shape.cols,
                seconds: f64::NAN,
                weight_gb_per_s: f64::NAN,
                gflop_per_s: f64::NAN,
                ratio_to_stream_read: f64::NAN,
                skipped: Some(why),
            };
            let bytes = match check_shape(gpu, dtype, shape.rows, shape.cols) {
                Ok(b) => b,
                Err(GemvError::Device(e)) => return Err(e.into()),
                Err(e) => {
                    rows.push(skip(e.to_string(), "-".into()));
                    continue;
                }
            };
            eprintln!(
                "gemv {dtype} {}x{}: {} variants…",
                shape.rows,
                shape.cols,
                keys.len()
            );
            // Real-looking data (random values, finite scales): zeros or NaNs can run at other
            // speeds.
            let n = shape.rows as usize * shape.cols as usize;
            let w_bytes = crate::ops::dequantize::synthetic(dtype, n, 7).ok_or_else(|| {
                CliError::BadInput(format!("cannot make synthetic {dtype} weights"))
            })?;
            let w = gpu.upload("bench weights", &w_bytes)?;
            drop(w_bytes);
            let x: Vec<f32> = (0..shape.cols)
                .map(|i| ((i % 7) as f32 - 3.0) * 0.25)
                .collect();
            let xb = gpu.upload("bench x", bytemuck::cast_slice(&x))?;
            let yb = gpu.storage("bench y", u64::from(shape.rows) * 4)?;
            for key in &keys {
                let seconds = median_seconds(gpu, "the gemv benchmark", 5, |enc| {
                    encode_gemv(gpu, enc, key, (shape.rows, shape.cols), [&w, &xb, &yb])
                })?;
                let gbs = bytes as f64 / seconds / 1e9;
                rows.push(BenchRow {
                    op: "gemv",
                    dtype,
                    kernel: key.name(),
                    selected: *key == selected_key,
                    rows: shape.rows,
                    cols: shape.cols,
                    seconds,
                    weight_gb_per_s: gbs,
                    gflop_per_s: 2.0 * n as f64 / seconds / 1e9,
                    ratio_to_stream_read: gbs / limit_gb_s,
                    skipped: None,
                });
            }
        }
    }
    Ok(rows)
}

/// Measures the streaming-read limit, then every requested kernel, on one opened adapter.
/// `benches/gemv.rs` calls this too, for every adapter.
pub fn measure(gpu: &Gpu, args: &Args) -> Result<BenchReport, CliError> {
    if args.op == BenchOp::Gemm {
        return Err(CliError::BadInput(
            "gemm: not implemented yet (no GEMM kernel exists; see `wgllm capabilities`)".into(),
        ));
    }
    eprintln!(
        "measuring the streaming-read limit on {}…",
        gpu.caps.summary.name
    );
    let limit = stream_read::measure_limit(gpu)?;
    let rows = bench_gemv(gpu, args, limit.gb_per_s)?;
    Ok(BenchReport {
        adapter: gpu.caps.summary.name.clone(),
        backend: gpu.caps.summary.backend,
        disabled: gpu.caps.disabled.names(),
        stream_read: limit,
        rows,
    })
}

pub fn run(selector: Option<&str>, args: &Args) -> Result<(), CliError> {
    let gpu = super::open_gpu(selector)?;
    let report = measure(&gpu, args)?;
    super::format::emit(args.json, &report, render)
}

/// The human table.
pub fn render(r: &BenchReport) -> String {
    let mut out = format!(
        "{} ({}): streaming-read limit {:.1} GB/s ({:?}, {} invocations){}\n",
        r.adapter,
        r.backend,
        r.stream_read.gb_per_s,
        r.stream_read.layout,
        r.stream_read.invocations,
        if r.disabled.is_empty() {
            String::new()
        } else {
            format!("; WGLLM_DISABLE={}", r.disabled.join(","))
        }
    );
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|b| match &b.skipped {
            Some(why) => vec![
                b.op.into(),
                b.dtype.to_string(),
                format!("{}x{}", b.rows, b.cols),
                "-".into(),
                format!("skipped: {why}"),
                String::new(),
                String::new(),
                String::new(),
            ],
            None => vec![
                b.op.into(),
                b.dtype.to_string(),
                format!("{}x{}", b.rows, b.cols),
                format!("{}{}", b.kernel, if b.selected { " *" } else { "" }),
                format!("{:.1} µs", b.seconds * 1e6),
                format!("{:.1} GB/s", b.weight_gb_per_s),
                format!("{:.1} GFLOP/s", b.gflop_per_s),
                format!("{:.0}%", b.ratio_to_stream_read * 100.0),
            ],
        })
        .collect();
    out.push_str(&table(
        &[
            "op",
            "dtype",
            "shape",
            "kernel (* = selected)",
            "time",
            "weights read",
            "compute",
            "of limit",
        ],
        &rows,
    ));
    out
}
