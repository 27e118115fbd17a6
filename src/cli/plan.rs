//! `wgllm plan`: memory per tensor class (weights, KV cache, activations, overhead) with the
//! formulas, against the device's memory, and the answers: the largest context and batch that
//! fit, and which knob frees the most. `--sweep` prints the weights-dtype × context grid;
//! `--plot` draws it.

use super::format::{bytes, table};
use super::CliError;
use crate::device::{AdapterList, AdapterSummary};
use crate::dtype::{KvDType, StorageDType};
use crate::formats::config::{self, ModelConfig};
use crate::formats::{TensorInfo, TensorStore};
use crate::plan::{answers, bindings_needed, plan, tensors_from_config, Answers, Knobs, Plan};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["model", "config"]))]
pub struct Args {
    /// A model file or directory (as for `inspect`).
    pub model: Option<PathBuf>,
    /// Plan from a config.json alone, for a model you do not have yet.
    #[arg(long, value_name = "CONFIG_JSON")]
    pub config: Option<PathBuf>,
    /// Tokens per sequence the KV cache holds.
    #[arg(long, default_value_t = 4096)]
    pub context: u64,
    /// Concurrent sequences.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Requantize the weights to this dtype (default: as stored; with --config, the declared
    /// torch_dtype, else f16).
    #[arg(long, value_name = "DTYPE")]
    pub weights_dtype: Option<StorageDType>,
    /// KV-cache dtype: f32, f16 or q8_0.
    #[arg(long, value_name = "DTYPE", default_value = "f16", value_parser = parse_kv)]
    pub kv_dtype: KvDType,
    /// Tokens of one sequence processed per prefill step.
    #[arg(long, default_value_t = 512)]
    pub prefill_chunk: u64,
    /// Device memory to plan for (e.g. 24GiB, 80GB, 16000MiB); default: the selected
    /// adapter's (available memory where the driver reports it).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub device_memory: Option<u64>,
    /// Print the grid of total memory for weight dtypes × context lengths.
    #[arg(long)]
    pub sweep: bool,
    /// Draw memory vs context for each weight dtype, with the device-memory line (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_kv(s: &str) -> Result<KvDType, String> {
    KvDType::ALL
        .into_iter()
        .find(|k| k.name() == s.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown KV-cache dtype '{s}'; known: f32, f16, q8_0"))
}

/// Parses `24GiB`, `24 GB`, `1.5TiB`, `16000MiB`, `8589934592`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 24GiB, 80GB, 16000MiB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let bytes = value * mult;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < 2f64.powi(63)) {
        return Err(format!("size '{s}' is out of range"));
    }
    Ok(bytes as u64)
}

/// Weight dtypes of the sweep (rows).
pub const SWEEP_DTYPES: [StorageDType; 8] = [
    StorageDType::F32,
    StorageDType::F16,
    StorageDType::Q8_0,
    StorageDType::Q6K,
    StorageDType::Q5K,
    StorageDType::Q4K,
    StorageDType::Q4_0,
    StorageDType::Nf4,
];
/// Context lengths of the sweep (columns).
pub const SWEEP_CONTEXTS: [u64; 7] = [2048, 4096, 8192, 16384, 32768, 65536, 131072];

#[derive(Serialize)]
pub struct SweepCell {
    pub weights_dtype: StorageDType,
    pub context: u64,
    pub total_bytes: u64,
    pub fits: Option<bool>,
}

#[derive(Serialize)]
pub struct LimitsReport {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub largest_tensor: Option<(String, u64)>,
    pub largest_fits_one_buffer: bool,
    /// Tensors over the binding limit, with the row-range bindings each needs (`null`: one
    /// row alone exceeds it).
    pub split_across_bindings: Vec<(String, u64, Option<u64>)>,
}

#[derive(Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub model: String,
    pub config: ModelConfig,
    pub plan: Plan,
    pub device_memory_bytes: Option<u64>,
    pub device_memory_source: String,
    pub answers: Option<Answers>,
    pub limits: Option<LimitsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Vec<SweepCell>>,
}

fn declared_dtype(c: &ModelConfig) -> StorageDType {
    match c.declared_dtype.as_deref() {
        Some("float32") => StorageDType::F32,
        Some("bfloat16") => StorageDType::Bf16,
        _ => StorageDType::F16,
    }
}

fn load(args: &Args) -> Result<(String, ModelConfig, Vec<TensorInfo>), CliError> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
        let c = config::from_config_json(&text)
            .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
        let t = tensors_from_config(&c, declared_dtype(&c));
        return Ok((path.display().to_string(), c, t));
    }
    let path = args
        .model
        .as_ref()
        .ok_or_else(|| CliError::BadInput("give a MODEL path or --config".into()))?;
    let store = TensorStore::open(path)?;
    let c = store.config.clone().ok_or_else(|| {
        CliError::BadInput(format!(
            "{}: no config.json or GGUF architecture metadata with the hyper-parameters the plan needs (layers, heads, head_dim, …); pass --config",
            path.display()
        ))
    })?;
    Ok((path.display().to_string(), c, store.tensors))
}

/// The device memory to plan for, where it came from, and the adapter's limits.
fn device(selector: Option<&str>, args: &Args) -> (Option<u64>, String, Option<AdapterSummary>) {
    let list = AdapterList::enumerate();
    let summary = list
        .select(selector)
        .ok()
        .map(|i| AdapterSummary::probe(&list.instance, &list.adapters[i], i));
    if let Some(m) = args.device_memory {
        return (Some(m), "--device-memory".into(), summary);
    }
    match &summary {
        Some(s) => match s.memory.usable_bytes() {
            Some(m) => (
                Some(m),
                format!(
                    "{} of {} ({})",
                    if s.memory.available_bytes.is_some() {
                        "available memory"
                    } else {
                        "device-local memory"
                    },
                    s.name,
                    s.backend
                ),
                summary.clone(),
            ),
            None => (
                None,
                format!("{} ({}): {}", s.name, s.backend, s.memory.source),
                summary.clone(),
            ),
        },
        None => (None, "no adapter found; pass --device-memory".into(), None),
    }
}

pub fn run(selector: Option<&str>, args: &Args) -> Result<(), CliError> {
    let (model, c, tensors) = load(args)?;
    let knobs = Knobs {
        context: args.context,
        batch: args.batch,
        weights_dtype: args.weights_dtype,
        kv_dtype: args.kv_dtype,
        prefill_chunk: args.prefill_chunk,
    };
    let p = plan(&c, &tensors, &knobs).map_err(|e| CliError::BadInput(e.to_string()))?;
    let (device_bytes, device_source, summary) = device(selector, args);
    let answers = device_bytes.map(|d| answers(&c, &tensors, &p, d));
    let limits = summary.as_ref().map(|s| {
        let l = &s.limits;
        let planned: Vec<(String, u64, Vec<u64>)> = tensors
            .iter()
            .map(|t| {
                let d = knobs
                    .weights_dtype
                    .map_or(t.dtype, |d| crate::plan::requantized_dtype(t, d));
                (
                    t.name.clone(),
                    d.bytes_for(t.elements()).unwrap_or(t.bytes),
                    t.shape.clone(),
                )
            })
            .collect();
        LimitsReport {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            largest_tensor: p.largest_tensor.clone(),
            largest_fits_one_buffer: p
                .largest_tensor
                .as_ref()
                .is_none_or(|(_, b)| *b <= l.max_buffer_size),
            split_across_bindings: planned
                .iter()
                .filter(|(_, b, _)| *b > l.max_storage_buffer_binding_size)
                .map(|(n, b, shape)| {
                    (
                        n.clone(),
                        *b,
                        bindings_needed(*b, shape, l.max_storage_buffer_binding_size),
                    )
                })
                .collect(),
        }
    });
    let sweep = if args.sweep || args.plot.is_some() {
        let mut cells = Vec::new();
        for d in SWEEP_DTYPES {
            for ctx in SWEEP_CONTEXTS {
                let k = Knobs {
                    weights_dtype: Some(d),
                    context: ctx,
                    ..knobs.clone()
                };
                let total = plan(&c, &tensors, &k)
                    .map_err(|e| CliError::BadInput(e.to_string()))?
                    .total;
                cells.push(SweepCell {
                    weights_dtype: d,
                    context: ctx,
                    total_bytes: total,
                    fits: device_bytes.map(|m| total <= m),
                });
            }
        }
        Some(cells)
    } else {
        None
    };
    if let (Some(path), Some(cells)) = (&args.plot, &sweep) {
        draw(path, &model, cells, device_bytes)?;
    }
    let report = Report {
        schema_version: 1,
        model,
        config: c,
        plan: p,
        device_memory_bytes: device_bytes,
        device_memory_source: device_source,
        answers,
        limits,
        sweep: if args.sweep { sweep } else { None },
    };
    super::format::emit(args.json, &report, |r| {
        let mut text = render(r);
        if let Some(path) = &args.plot {
            text.push_str(&format!("plot written to {}\n", path.display()));
        }
        text
    })
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

fn render(r: &Report) -> String {
    let p = &r.plan;
    let k = &p.knobs;
    let mut out = String::new();
    let verdict = match (&r.answers, r.device_memory_bytes) {
        (Some(a), Some(d)) if a.fits => format!(
            "fits: {} of {} ({} headroom)",
            gib(p.total),
            gib(d),
            gib(a.headroom_bytes as u64)
        ),
        (Some(_), Some(d)) => format!(
            "does NOT fit: {} needed, {} available",
            gib(p.total),
            gib(d)
        ),
        _ => format!(
            "needs {}; device memory unknown ({})",
            gib(p.total),
            r.device_memory_source
        ),
    };
    out.push_str(&format!("Plan for {}: {verdict}\n", r.model));
    out.push_str(&format!(
        "  context {} × batch {}, weights {}, KV cache {}, prefill chunk {}; device memory: {}\n\n",
        k.context,
        k.batch,
        k.weights_dtype
            .map_or("as stored".to_string(), |d| d.to_string()),
        k.kv_dtype,
        k.prefill_chunk,
        r.device_memory_source
    ));
    let mut rows = Vec::new();
    let mut section = |name: &str, class: &crate::plan::Class| {
        rows.push(vec![name.to_string(), bytes(class.bytes), String::new()]);
        for i in &class.items {
            rows.push(vec![
                format!("  {}", i.name),
                bytes(i.bytes),
                i.formula.clone(),
            ]);
        }
    };
    section("weights", &p.weights);
    section("KV cache", &p.kv_cache);
    section("activations", &p.activations);
    section("overhead", &p.overhead);
    rows.push(vec!["total".into(), bytes(p.total), String::new()]);
    out.push_str(&table(&["class", "bytes", "formula"], &rows));
    out.push_str(&format!(
        "  activations: decode step {} (batch {} tokens), prefill chunk {} — the larger is allocated\n",
        bytes(p.activations_decode),
        k.batch,
        bytes(p.activations_prefill)
    ));
    if let Some(l) = &r.limits {
        if let Some((name, b)) = &l.largest_tensor {
            out.push_str(&format!(
                "\n  largest tensor {name}: {} (max_buffer_size {}{})\n",
                bytes(*b),
                bytes(l.max_buffer_size),
                if l.largest_fits_one_buffer {
                    ""
                } else {
                    ": must be split across buffers"
                }
            ));
        }
        if !l.split_across_bindings.is_empty() {
            out.push_str(&format!(
                "  {} tensors exceed max_storage_buffer_binding_size ({}) and are split across bindings, e.g. {} into {}\n",
                l.split_across_bindings.len(),
                bytes(l.max_storage_buffer_binding_size),
                l.split_across_bindings[0].0,
                l.split_across_bindings[0].2.map_or("(a row alone is too large)".into(), |n| format!("{n} bindings"))
            ));
        }
    }
    if let Some(a) = &r.answers {
        out.push_str(&format!(
            "\n  max context at batch {}: {}\n  max batch at context {}: {}\n",
            k.batch,
            if a.max_context == 0 {
                "none fits".into()
            } else {
                a.max_context.to_string()
            },
            k.context,
            if a.max_batch == 0 {
                "none fits".into()
            } else {
                a.max_batch.to_string()
            },
        ));
        if !a.savings.is_empty() {
            out.push_str(if a.fits {
                "  what frees the most:\n"
            } else {
                "  what would make it fit (most freed first):\n"
            });
            for s in &a.savings {
                out.push_str(&format!(
                    "    {:<34} saves {:>10} → {}{}\n",
                    s.change,
                    gib(s.saves_bytes),
                    gib(s.new_total),
                    if s.fits { " (fits)" } else { "" }
                ));
            }
        }
    }
    if let Some(cells) = &r.sweep {
        out.push_str("\nTotal memory by weights dtype × context (✓ fits, ✗ does not)\n");
        let mut header = vec!["weights".to_string()];
        header.extend(SWEEP_CONTEXTS.iter().map(|c| format!("{}k", c / 1024)));
        let rows: Vec<Vec<String>> = SWEEP_DTYPES
            .iter()
            .map(|d| {
                let mut row = vec![d.to_string()];
                for c in cells.iter().filter(|c| c.weights_dtype == *d) {
                    let mark = match c.fits {
                        Some(true) => " ✓",
                        Some(false) => " ✗",
                        None => "",
                    };
                    row.push(format!(
                        "{:.1}{mark}",
                        c.total_bytes as f64 / (1u64 << 30) as f64
                    ));
                }
                row
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        out.push_str(&table(&header, &rows));
        out.push_str("  (GiB)\n");
    }
    out
}

/// Memory vs context for each weight dtype, with the device-memory line.
fn draw(
    path: &std::path::Path,
    model: &str,
    cells: &[SweepCell],
    device: Option<u64>,
) -> Result<(), CliError> {
    use plotters::prelude::*;
    let to_gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let ymax = cells
        .iter()
        .map(|c| to_gib(c.total_bytes))
        .chain(device.map(to_gib))
        .fold(1.0, f64::max)
        * 1.1;
    let xs: Vec<f64> = SWEEP_CONTEXTS.iter().map(|c| (*c as f64).log2()).collect();
    let err = |e: String| CliError::BadInput(format!("drawing {}: {e}", path.display()));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Memory vs context — {model}"), ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs[0]..xs[xs.len() - 1], 0f64..ymax)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("context (tokens)")
        .y_desc("GiB")
        .x_label_formatter(&|v| format!("{}k", (2f64.powf(*v) / 1024.0).round()))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, d) in SWEEP_DTYPES.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = cells
            .iter()
            .filter(|c| c.weights_dtype == *d)
            .map(|c| ((c.context as f64).log2(), to_gib(c.total_bytes)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(d.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if let Some(d) = device {
        let y = to_gib(d);
        chart
            .draw_series(LineSeries::new(
                vec![(xs[0], y), (xs[xs.len() - 1], y)],
                BLACK.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?
            .label("device memory")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
