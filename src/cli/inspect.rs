//! `wgllm inspect PATH`: what is inside a model (headers only, nothing loaded) and the
//! three-part verdict for the selected adapter.

use super::format::{bytes, table};
use super::CliError;
use crate::device::Gpu;
use crate::dtype::StorageDType;
use crate::formats::config::ModelConfig;
use crate::formats::{Format, TensorInfo, TensorStore};
use crate::verdict::{judge, Verdict};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .safetensors file, a .gguf file, a model.safetensors.index.json, or a model directory.
    pub path: PathBuf,
    /// List every tensor (name, dtype, shape, bytes, offset), grouped by layer; identical
    /// layers are collapsed unless --all-layers.
    #[arg(long)]
    pub tensors: bool,
    /// With --tensors: print every layer, even identical ones.
    #[arg(long)]
    pub all_layers: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Skip the GPU verdict (only what the files say).
    #[arg(long)]
    pub no_gpu: bool,
}

#[derive(Serialize)]
pub struct DtypeSummary {
    pub dtype: StorageDType,
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
    pub bits_per_weight: f64,
}

#[derive(Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub path: String,
    pub format: Format,
    pub files: Vec<FileJson>,
    pub file_bytes: u64,
    pub tensor_bytes: u64,
    pub parameters: u64,
    pub bytes_per_parameter: f64,
    pub config: Option<ModelConfig>,
    pub dtypes: Vec<DtypeSummary>,
    /// Every tensor with `--tensors`, else omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<Vec<TensorInfo>>,
    pub adapter: Option<String>,
    pub verdict: Option<Verdict>,
}

#[derive(Serialize)]
pub struct FileJson {
    pub path: String,
    pub bytes: u64,
}

pub fn build(store: &TensorStore, gpu: Option<&Gpu>, with_tensors: bool) -> Report {
    let mut dtypes: Vec<DtypeSummary> = Vec::new();
    for t in &store.tensors {
        let d = match dtypes.iter_mut().find(|d| d.dtype == t.dtype) {
            Some(d) => d,
            None => {
                dtypes.push(DtypeSummary {
                    dtype: t.dtype,
                    tensors: 0,
                    parameters: 0,
                    bytes: 0,
                    bits_per_weight: 0.0,
                });
                dtypes.last_mut().expect("just pushed")
            }
        };
        d.tensors += 1;
        d.parameters += t.elements();
        d.bytes += t.bytes;
    }
    for d in &mut dtypes {
        d.bits_per_weight = if d.parameters == 0 {
            0.0
        } else {
            d.bytes as f64 * 8.0 / d.parameters as f64
        };
    }
    dtypes.sort_by_key(|d| std::cmp::Reverse(d.bytes));
    let tensor_bytes: u64 = store.tensors.iter().map(|t| t.bytes).sum();
    let parameters = store.parameters();
    Report {
        schema_version: 1,
        path: store.path.display().to_string(),
        format: store.format,
        files: store
            .files
            .iter()
            .map(|f| FileJson {
                path: f.path.display().to_string(),
                bytes: f.len,
            })
            .collect(),
        file_bytes: store.file_bytes(),
        tensor_bytes,
        parameters,
        bytes_per_parameter: if parameters == 0 {
            0.0
        } else {
            tensor_bytes as f64 / parameters as f64
        },
        config: store.config.clone(),
        dtypes,
        tensors: with_tensors.then(|| store.tensors.clone()),
        adapter: gpu.map(|g| format!("{} ({})", g.caps.summary.name, g.caps.summary.backend)),
        verdict: gpu.map(|g| judge(store, &g.caps)),
    }
}

pub fn run(selector: Option<&str>, args: &Args) -> Result<(), CliError> {
    let store = TensorStore::open(&args.path)?;
    let gpu = if args.no_gpu {
        None
    } else {
        Some(super::open_gpu(selector)?)
    };
    let report = build(&store, gpu.as_ref(), args.tensors);
    super::format::emit(args.json, &report, |r| render(r, &store, args))
}

fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// `(layer, rest)` for per-layer tensor names (`model.layers.3.mlp…`, `blk.3.ffn…`).
fn layer_of(name: &str) -> Option<(u64, String)> {
    for prefix in ["model.layers.", "blk.", "layers.", "transformer.h."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let (n, tail) = rest.split_once('.')?;
            return Some((n.parse().ok()?, tail.to_string()));
        }
    }
    None
}

fn tensor_rows(ts: &[&TensorInfo]) -> Vec<Vec<String>> {
    ts.iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.dtype.to_string(),
                format!("{:?}", t.shape),
                bytes(t.bytes),
                t.offset.to_string(),
            ]
        })
        .collect()
}

/// (name suffix, dtype, shape) of each tensor of a layer: equal signatures collapse.
type LayerSignature = Vec<(String, StorageDType, Vec<u64>)>;

fn render_tensors(store: &TensorStore, all_layers: bool) -> String {
    let header = ["name", "dtype", "shape", "bytes", "offset"];
    let global: Vec<&TensorInfo> = store
        .tensors
        .iter()
        .filter(|t| layer_of(&t.name).is_none())
        .collect();
    let mut layers: std::collections::BTreeMap<u64, Vec<&TensorInfo>> = Default::default();
    for t in &store.tensors {
        if let Some((l, _)) = layer_of(&t.name) {
            layers.entry(l).or_default().push(t);
        }
    }
    let mut out = String::from("\nTensors\n");
    out.push_str(&table(&header, &tensor_rows(&global)));
    // A layer's signature: (name suffix, dtype, shape) of each tensor, in name order.
    let signature = |ts: &[&TensorInfo]| -> LayerSignature {
        let mut s: LayerSignature = ts
            .iter()
            .map(|t| {
                (
                    layer_of(&t.name).map(|(_, r)| r).unwrap_or_default(),
                    t.dtype,
                    t.shape.clone(),
                )
            })
            .collect();
        s.sort();
        s
    };
    let mut previous: Option<(u64, LayerSignature)> = None;
    let mut collapsed: Vec<u64> = Vec::new();
    let flush = |collapsed: &mut Vec<u64>, out: &mut String, of: u64| {
        if let (Some(first), Some(last)) = (collapsed.first(), collapsed.last()) {
            let which = if first == last {
                format!("layer {first}")
            } else {
                format!("layers {first}–{last}")
            };
            out.push_str(&format!(
                "  … {which} identical to layer {of} (names, dtypes, shapes); --all-layers prints them\n"
            ));
        }
        collapsed.clear();
    };
    for (l, ts) in &layers {
        let mut ts = ts.clone();
        ts.sort_by(|a, b| a.name.cmp(&b.name));
        let sig = signature(&ts);
        if !all_layers {
            if let Some((of, prev)) = &previous {
                if *prev == sig {
                    collapsed.push(*l);
                    continue;
                }
                flush(&mut collapsed, &mut out, *of);
            }
        }
        out.push_str(&format!("  layer {l}\n"));
        out.push_str(&table(&header, &tensor_rows(&ts)));
        previous = Some((*l, sig));
    }
    if let Some((of, _)) = &previous {
        flush(&mut collapsed, &mut out, *of);
    }
    out
}

fn render(r: &Report, store: &TensorStore, args: &Args) -> String {
    let mut out = String::new();
    if let Some(v) = &r.verdict {
        out.push_str(&format!(
            "Verdict on {}: {}\n\n",
            r.adapter.as_deref().unwrap_or("?"),
            v.summary
        ));
    }
    out.push_str(&format!(
        "{} ({:?}, {} file{}, {})\n",
        r.path,
        r.format,
        r.files.len(),
        if r.files.len() == 1 { "" } else { "s" },
        bytes(r.file_bytes)
    ));
    match &r.config {
        Some(c) => {
            out.push_str(&format!(
                "  architecture {} (from {}): {} layers, hidden {}, MLP {}, heads {} (kv {}), head_dim {}, vocab {}\n",
                c.architecture,
                c.source,
                c.num_layers,
                c.hidden_size,
                c.intermediate_size,
                c.num_heads,
                c.num_kv_heads,
                c.head_dim,
                c.vocab_size
            ));
            out.push_str(&format!(
                "  rope θ {}{}, context {}, tied embeddings: {}, attention bias: {}{}\n",
                c.rope_theta,
                c.rope_scaling.as_ref().map_or(String::new(), |s| format!(
                    " ({} ×{})",
                    s.kind,
                    s.factor.unwrap_or(1.0)
                )),
                c.max_position_embeddings
                    .map_or("?".into(), |m| m.to_string()),
                c.tie_word_embeddings,
                c.attention_bias,
                c.declared_dtype
                    .as_ref()
                    .map_or(String::new(), |d| format!(", declared dtype {d}"))
            ));
            if let Some(q) = &c.quantization {
                out.push_str(&format!(
                    "  pre-quantized: {} {} — {}\n",
                    q.method, q.scheme, q.note
                ));
            }
        }
        None => out.push_str("  no config.json or architecture metadata\n"),
    }
    out.push_str(&format!(
        "  {} parameters in {} tensors; {} of tensor data ({:.3} bytes/parameter), {} of files\n",
        count(r.parameters),
        store.tensors.len(),
        bytes(r.tensor_bytes),
        r.bytes_per_parameter,
        bytes(r.file_bytes)
    ));
    if let Some(v) = &r.verdict {
        if let Some(implied) = v.loader.config_parameters {
            let tensors = v.loader.tensor_parameters;
            if implied == tensors {
                out.push_str(&format!(
                    "  parameter count matches the config ({})\n",
                    count(implied)
                ));
            } else {
                out.push_str(&format!(
                    "  ⚠ the config implies {} parameters, the tensors hold {} (difference {}): a tensor is missing or extra\n",
                    implied,
                    tensors,
                    tensors as i128 - implied as i128
                ));
            }
        }
    }

    out.push_str("\nStorage dtypes\n");
    let rows: Vec<Vec<String>> = r
        .dtypes
        .iter()
        .map(|d| {
            vec![
                d.dtype.to_string(),
                d.tensors.to_string(),
                count(d.parameters),
                bytes(d.bytes),
                format!("{:.2}", d.bits_per_weight),
            ]
        })
        .collect();
    out.push_str(&table(
        &["dtype", "tensors", "parameters", "bytes", "bits/weight"],
        &rows,
    ));

    if args.tensors {
        out.push_str(&render_tensors(store, args.all_layers));
    }

    if let Some(v) = &r.verdict {
        out.push_str(&format!(
            "\nCan {} run it?\n",
            r.adapter.as_deref().unwrap_or("this adapter")
        ));
        let l = &v.loader;
        out.push_str(&format!(
            "  1. loader: {}\n",
            if l.disagreements.is_empty() && l.problems.is_empty() {
                "reads every tensor; config agrees with the shapes".to_string()
            } else {
                format!("{} problem(s)", l.disagreements.len() + l.problems.len())
            }
        ));
        for p in &l.problems {
            out.push_str(&format!("     - {p}\n"));
        }
        for d in l.disagreements.iter().take(10) {
            out.push_str(&format!("     - {}: {}\n", d.tensor, d.problem));
        }
        if l.disagreements.len() > 10 {
            out.push_str(&format!("     … and {} more\n", l.disagreements.len() - 10));
        }
        let m = &v.memory;
        out.push_str(&format!(
            "  2. memory: weights {} vs device {} — {}\n",
            bytes(m.weight_bytes),
            m.device_bytes.map_or("unknown".into(), bytes),
            match m.fits {
                Some(true) => "fits".to_string(),
                Some(false) => "does NOT fit".to_string(),
                None => format!("unknown ({})", m.device_memory_source),
            }
        ));
        if let Some((name, b)) = &m.largest_tensor {
            out.push_str(&format!(
                "     largest tensor {name} {} (max_buffer_size {}, binding limit {})\n",
                bytes(*b),
                bytes(m.max_buffer_size),
                bytes(m.max_storage_buffer_binding_size)
            ));
        }
        for s in &m.split_across_bindings {
            out.push_str(&format!(
                "     - {} ({}) exceeds the binding limit: {}\n",
                s.name,
                bytes(s.bytes),
                s.bindings
                    .map_or("one row alone is too large".into(), |n| format!(
                        "split into {n} bindings by rows"
                    ))
            ));
        }
        out.push_str("  3. kernels (per storage dtype of the matrices):\n");
        let rows: Vec<Vec<String>> = v
            .kernels
            .iter()
            .map(|k| {
                vec![
                    k.dtype.to_string(),
                    k.matrices.to_string(),
                    k.gemv.path.into(),
                    k.gemm.path.into(),
                    k.gemv.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["dtype", "matrices", "gemv", "gemm", "why (gemv)"],
            &rows,
        ));
        out.push_str(&format!("\n  → {}\n", v.summary));
        for f in &v.fixes {
            out.push_str(&format!("    fix: {f}\n"));
        }
        for c in &v.caveats {
            out.push_str(&format!("    note: {c}\n"));
        }
    }
    out
}
