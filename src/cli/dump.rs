//! `wgllm dump PATH TENSOR`: dequantize one tensor on the GPU (or with the CPU reference) and
//! write little-endian f32 in row-major (numpy) order, or print its statistics.
//!
//! The tensor goes through in row chunks of at most 64 MiB (and the binding limit), so a
//! tensor larger than one binding — or than host memory — is dumped all the same.

use super::CliError;
use crate::device::Gpu;
use crate::dtype::StorageDType;
use crate::formats::{TensorInfo, TensorStore};
use crate::ops::dequantize;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .safetensors file, a .gguf file, a shard index, or a model directory.
    pub path: PathBuf,
    /// The tensor's name (as `wgllm inspect --tensors` lists it).
    pub tensor: String,
    /// Write the values here as little-endian f32, row-major (numpy: np.fromfile(F, '<f4')).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Dequantize with the CPU reference instead of the GPU kernel.
    #[arg(long)]
    pub cpu: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Running statistics over every value.
#[derive(Default, Serialize)]
pub struct Stats {
    pub count: u64,
    pub nan: u64,
    pub inf: u64,
    pub min: Option<f32>,
    pub max: Option<f32>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    #[serde(skip)]
    sum: f64,
    #[serde(skip)]
    sum_sq: f64,
    #[serde(skip)]
    finite: u64,
}

impl Stats {
    fn add(&mut self, values: &[f32]) {
        for &v in values {
            self.count += 1;
            if v.is_nan() {
                self.nan += 1;
                continue;
            }
            if v.is_infinite() {
                self.inf += 1;
                continue;
            }
            self.finite += 1;
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
            self.sum += f64::from(v);
            self.sum_sq += f64::from(v) * f64::from(v);
        }
    }

    fn finish(&mut self) {
        if self.finite > 0 {
            let n = self.finite as f64;
            let mean = self.sum / n;
            self.mean = Some(mean);
            self.std = Some((self.sum_sq / n - mean * mean).max(0.0).sqrt());
        }
    }
}

#[derive(Serialize)]
pub struct Report {
    pub tensor: String,
    pub dtype: StorageDType,
    pub shape: Vec<u64>,
    /// The GPU kernel that dequantized it, or `cpu-reference`.
    pub dequantized_by: String,
    pub adapter: Option<String>,
    pub out: Option<String>,
    pub stats: Stats,
}

/// Bytes per chunk of source or output (whichever is larger).
const CHUNK_BYTES: u64 = 64 << 20;

fn find<'a>(store: &'a TensorStore, name: &str) -> Result<&'a TensorInfo, CliError> {
    store.tensor(name).ok_or_else(|| {
        let needle = name.to_ascii_lowercase();
        let mut close: Vec<&str> = store
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| {
                n.to_ascii_lowercase().contains(&needle) || needle.contains(&n.to_ascii_lowercase())
            })
            .take(8)
            .collect();
        if close.is_empty() {
            close = store
                .tensors
                .iter()
                .map(|t| t.name.as_str())
                .take(8)
                .collect();
        }
        CliError::BadInput(format!(
            "no tensor '{name}' in {}; some that exist: {}",
            store.path.display(),
            close.join(", ")
        ))
    })
}

/// Dequantizes `t` in row chunks of at most `chunk_bytes` (source or f32 output, and the
/// adapter's binding limit), handing each chunk's values to `sink`.
pub fn dequantize_tensor(
    store: &TensorStore,
    t: &TensorInfo,
    gpu: Option<&Gpu>,
    chunk_bytes: u64,
    mut sink: impl FnMut(&[f32]) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let dtype = t.dtype;
    if !dequantize::DTYPES.contains(&dtype) {
        return Err(CliError::BadInput(format!(
            "tensor '{}' is {dtype}, which wgllm cannot dequantize (yet); dtypes it can: {}",
            t.name,
            dequantize::DTYPES
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let data = store.data(t)?;
    let rows = t.shape.first().copied().unwrap_or(1).max(1);
    let row_elements = t.elements() / rows;
    if row_elements == 0 {
        return Ok(());
    }
    let row_bytes = dtype.bytes_for(row_elements).ok_or_else(|| {
        CliError::BadInput(format!(
            "tensor '{}': a row is not a whole number of {dtype} blocks",
            t.name
        ))
    })?;
    let mut chunk_limit = chunk_bytes;
    if let Some(g) = gpu {
        chunk_limit = chunk_limit.min(g.caps.summary.limits.max_storage_buffer_binding_size);
    }
    let per_row = row_bytes.max(row_elements * 4);
    if per_row > chunk_limit {
        return Err(CliError::BadInput(format!(
            "tensor '{}': one row ({per_row} bytes) exceeds the {chunk_limit}-byte chunk this adapter can bind",
            t.name
        )));
    }
    let rows_per_chunk = (chunk_limit / per_row).max(1);
    let mut row = 0;
    while row < rows {
        let n = rows_per_chunk.min(rows - row);
        let bytes = &data[(row * row_bytes) as usize..((row + n) * row_bytes) as usize];
        let values = match gpu {
            Some(g) => dequantize::run(g, dtype, bytes)?,
            None => dequantize::reference(dtype, bytes),
        }
        .ok_or_else(|| CliError::BadInput(format!("no dequantizer for {dtype}")))?;
        sink(&values)?;
        row += n;
    }
    Ok(())
}

pub fn run(selector: Option<&str>, args: &Args) -> Result<(), CliError> {
    let store = TensorStore::open(&args.path)?;
    let t = find(&store, &args.tensor)?;
    let gpu = if args.cpu {
        None
    } else {
        // Dequantization selects no matmul kernel: no autotune.
        Some(super::open_gpu_untuned(selector)?)
    };
    let mut file = match &args.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| CliError::BadInput(format!("{}: {e}", p.display())))?,
        )),
        None => None,
    };
    let mut stats = Stats::default();
    let mut bar = super::progress::ByteProgress::new(&format!("dequantizing {}", t.name));
    let total = t.elements() * 4;
    let mut done = 0u64;
    dequantize_tensor(&store, t, gpu.as_ref(), CHUNK_BYTES, |values| {
        done += values.len() as u64 * 4;
        bar.update(done, total);
        stats.add(values);
        if let Some(f) = file.as_mut() {
            f.write_all(bytemuck::cast_slice(values))
                .map_err(|e| CliError::BadInput(format!("writing the output: {e}")))?;
        }
        Ok(())
    })?;
    bar.finish();
    if let Some(mut f) = file {
        f.flush()
            .map_err(|e| CliError::BadInput(format!("writing the output: {e}")))?;
    }
    stats.finish();
    let report = Report {
        tensor: t.name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        dequantized_by: match &gpu {
            Some(g) => dequantize::variant(t.dtype, &g.caps.selftest.workarounds())
                .map_or("?".into(), |v| v.name),
            None => "cpu-reference".into(),
        },
        adapter: gpu
            .as_ref()
            .map(|g| format!("{} ({})", g.caps.summary.name, g.caps.summary.backend)),
        out: args.out.as_ref().map(|p| p.display().to_string()),
        stats,
    };
    super::format::emit(args.json, &report, render)
}

fn render(report: &Report) -> String {
    let s = &report.stats;
    let mut out = format!(
        "{} {} {:?} — dequantized by {}{}\n",
        report.tensor,
        report.dtype,
        report.shape,
        report.dequantized_by,
        report
            .adapter
            .as_ref()
            .map_or(String::new(), |a| format!(" on {a}"))
    );
    out.push_str(&format!(
        "  {} values: min {} max {} mean {} std {}; NaN {} Inf {}\n",
        s.count,
        s.min.map_or("-".into(), |v| format!("{v:.6}")),
        s.max.map_or("-".into(), |v| format!("{v:.6}")),
        s.mean.map_or("-".into(), |v| format!("{v:.6}")),
        s.std.map_or("-".into(), |v| format!("{v:.6}")),
        s.nan,
        s.inf
    ));
    if let Some(o) = &report.out {
        out.push_str(&format!(
            "  written to {o} (little-endian f32, row-major)\n"
        ));
    }
    out
}
