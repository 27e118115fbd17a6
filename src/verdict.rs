//! The three-part question for one model on one adapter: can the loader read it, can the GPU
//! hold it, does a kernel exist for each of its storage dtypes — and one line that sums it
//! up, with what would fix a "cannot run". Kernel answers come from `ops::select`, the same
//! function `capabilities` prints.

use crate::device::Capabilities;
use crate::dtype::StorageDType;
use crate::formats::check::{cross_check, Disagreement};
use crate::formats::TensorStore;
use crate::ops::select::{select, KernelPath, Op};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct LoaderPart {
    /// Every storage dtype was recognised and every tensor located.
    pub readable: bool,
    /// Ways the configuration disagrees with the tensors.
    pub disagreements: Vec<Disagreement>,
    /// Parameters implied by the configuration, when there is one.
    pub config_parameters: Option<u64>,
    pub tensor_parameters: u64,
    pub problems: Vec<String>,
}

/// A tensor that must be split because it exceeds a per-binding or per-buffer limit.
#[derive(Clone, Debug, Serialize)]
pub struct SplitTensor {
    pub name: String,
    pub bytes: u64,
    /// Bindings (row ranges) it needs at this adapter's binding limit; `None` when one row
    /// alone exceeds the limit.
    pub bindings: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemoryPart {
    pub weight_bytes: u64,
    pub device_bytes: Option<u64>,
    pub device_memory_source: String,
    /// `None` when the device's memory is unknown.
    pub fits: Option<bool>,
    pub largest_tensor: Option<(String, u64)>,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    /// Tensors over `max_buffer_size`: split across buffers.
    pub over_max_buffer: Vec<SplitTensor>,
    /// Tensors over `max_storage_buffer_binding_size`: split across bindings by rows.
    pub split_across_bindings: Vec<SplitTensor>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathPart {
    pub path: &'static str,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

impl From<KernelPath> for PathPart {
    fn from(p: KernelPath) -> Self {
        let kernel = p.key().map(|k| k.name());
        let reason = match &p {
            KernelPath::Native {
                detail, feature, ..
            } => format!("{detail} [{feature}]"),
            KernelPath::Fallback { reason, .. } | KernelPath::Unsupported { reason } => {
                reason.clone()
            }
        };
        Self {
            path: p.kind(),
            reason,
            kernel,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelPart {
    pub dtype: StorageDType,
    /// Matrices (2-D tensors) stored in this dtype: these need the matmul kernels.
    pub matrices: usize,
    pub gemv: PathPart,
    pub gemm: PathPart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    RunsNatively,
    RunsWithFallbacks,
    CannotRun,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub loader: LoaderPart,
    pub memory: MemoryPart,
    pub kernels: Vec<KernelPart>,
    pub outcome: Outcome,
    /// The one-line answer.
    pub summary: String,
    /// What would make it run (or run natively), most useful first.
    pub fixes: Vec<String>,
    /// What the answer does not cover yet.
    pub caveats: Vec<String>,
}

fn split(name: &str, bytes: u64, shape: &[u64], limit: u64) -> SplitTensor {
    SplitTensor {
        name: name.to_string(),
        bytes,
        bindings: crate::plan::bindings_needed(bytes, shape, limit),
    }
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Answers the three-part question for `store` on the adapter described by `caps`.
pub fn judge(store: &TensorStore, caps: &Capabilities) -> Verdict {
    // (1) Loader.
    let mut problems = Vec::new();
    let disagreements = store
        .config
        .as_ref()
        .map(|c| cross_check(c, &store.tensors))
        .unwrap_or_default();
    let config_parameters = store.config.as_ref().and_then(|c| c.expected_parameters());
    let tensor_parameters = store.parameters();
    if let Some(q) = store.config.as_ref().and_then(|c| c.quantization.as_ref()) {
        if !q.supported {
            problems.push(format!(
                "pre-quantized checkpoint ({} {}): {}",
                q.method, q.scheme, q.note
            ));
        }
    }
    let arch = store
        .config
        .as_ref()
        .map(|c| c.architecture.clone())
        .or(store.architecture.clone());
    match arch {
        Some(a) if !crate::formats::config::LLAMA_FAMILY.contains(&a.as_str()) => {
            problems.push(format!(
                "architecture '{a}' is not in the Llama family wgllm runs (llama, mistral, qwen2)"
            ))
        }
        _ if store.config.is_none() => problems.push(
            "no config.json (or GGUF architecture metadata): hyper-parameters unknown".into(),
        ),
        _ => {}
    }
    let loader = LoaderPart {
        readable: true,
        disagreements,
        config_parameters,
        tensor_parameters,
        problems,
    };

    // (2) Memory.
    let limits = &caps.summary.limits;
    let weight_bytes: u64 = store.tensors.iter().map(|t| t.bytes).sum();
    let mem = &caps.summary.memory;
    let device_bytes = mem.usable_bytes();
    let largest = store
        .tensors
        .iter()
        .max_by_key(|t| t.bytes)
        .map(|t| (t.name.clone(), t.bytes));
    let memory = MemoryPart {
        weight_bytes,
        device_bytes,
        device_memory_source: mem.source.clone(),
        fits: device_bytes.map(|d| weight_bytes <= d),
        largest_tensor: largest,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        over_max_buffer: store
            .tensors
            .iter()
            .filter(|t| t.bytes > limits.max_buffer_size)
            .map(|t| split(&t.name, t.bytes, &t.shape, limits.max_buffer_size))
            .collect(),
        split_across_bindings: store
            .tensors
            .iter()
            .filter(|t| t.bytes > limits.max_storage_buffer_binding_size)
            .map(|t| {
                split(
                    &t.name,
                    t.bytes,
                    &t.shape,
                    limits.max_storage_buffer_binding_size,
                )
            })
            .collect(),
    };

    // (3) Kernels, per dtype of the matrices.
    let mut dtypes: Vec<(StorageDType, usize)> = Vec::new();
    for t in store.tensors.iter().filter(|t| t.is_matrix()) {
        match dtypes.iter_mut().find(|(d, _)| *d == t.dtype) {
            Some((_, n)) => *n += 1,
            None => dtypes.push((t.dtype, 1)),
        }
    }
    dtypes.sort();
    let kernels: Vec<KernelPart> = dtypes
        .iter()
        .map(|&(dtype, matrices)| KernelPart {
            dtype,
            matrices,
            gemv: select(caps, Op::Gemv, dtype, None).into(),
            gemm: select(caps, Op::Gemm, dtype, None).into(),
        })
        .collect();

    // The one line, and fixes.
    let mut blockers = Vec::new();
    let mut fixes = Vec::new();
    if !loader.disagreements.is_empty() {
        blockers.push(format!(
            "{} tensors disagree with the config",
            loader.disagreements.len()
        ));
        fixes.push("use the config.json that belongs to these weights".into());
    }
    blockers.extend(loader.problems.iter().cloned());
    let no_kernel: Vec<&KernelPart> = kernels
        .iter()
        .filter(|k| k.gemv.path == "unsupported")
        .collect();
    let fallback: Vec<&KernelPart> = kernels
        .iter()
        .filter(|k| k.gemv.path == "fallback")
        .collect();
    // Dtypes this adapter runs natively, to suggest as conversion targets.
    let native_targets: Vec<StorageDType> = StorageDType::WEIGHT_DTYPES
        .into_iter()
        .filter(|d| matches!(select(caps, Op::Gemv, *d, None), KernelPath::Native { .. }))
        .collect();
    if !no_kernel.is_empty() {
        let names: Vec<String> = no_kernel
            .iter()
            .map(|k| format!("{} ({})", k.dtype, k.gemv.reason))
            .collect();
        blockers.push(format!("no GEMV kernel for {}", names.join(", ")));
        // Suggest, per dtype, the GGUF-storable dtype with a native kernel here whose size is
        // closest (ties: the more precise one).
        let mut by_target: Vec<(StorageDType, Vec<&str>)> = Vec::new();
        for k in &no_kernel {
            let target = native_targets
                .iter()
                .filter(|d| d.ggml_type().is_some())
                .min_by(|a, b| {
                    let da = (a.bits_per_weight() - k.dtype.bits_per_weight()).abs();
                    let db = (b.bits_per_weight() - k.dtype.bits_per_weight()).abs();
                    da.total_cmp(&db)
                        .then(b.bits_per_weight().total_cmp(&a.bits_per_weight()))
                });
            if let Some(&t) = target {
                match by_target.iter_mut().find(|(d, _)| *d == t) {
                    Some((_, v)) => v.push(k.dtype.name()),
                    None => by_target.push((t, vec![k.dtype.name()])),
                }
            }
        }
        for (target, from) in by_target {
            fixes.push(format!(
                "convert the {} weights to {target}, which runs natively here",
                from.join("/")
            ));
        }
    }
    if memory.fits == Some(false) {
        let device = device_bytes.unwrap_or(0);
        blockers.push(format!(
            "the weights need {} but the device has {}",
            gib(weight_bytes),
            gib(device)
        ));
        let params = tensor_parameters as f64;
        for d in [StorageDType::Q8_0, StorageDType::Q4_0] {
            let need = (params * d.bits_per_weight() / 8.0) as u64;
            if need <= device {
                fixes.push(format!("quantize to {d} (about {})", gib(need)));
                break;
            }
        }
        fixes.push("a GPU with more memory".into());
    }
    let unsplittable: Vec<&SplitTensor> = memory
        .split_across_bindings
        .iter()
        .filter(|s| s.bindings.is_none())
        .collect();
    if !unsplittable.is_empty() {
        blockers.push(format!(
            "{} tensors have a single row larger than the {} binding limit",
            unsplittable.len(),
            gib(limits.max_storage_buffer_binding_size)
        ));
    }
    if !memory.split_across_bindings.is_empty() {
        blockers.push(format!(
            "{} tensors exceed max_storage_buffer_binding_size ({}) and must be split across bindings, which the kernels cannot do yet",
            memory.split_across_bindings.len(),
            gib(limits.max_storage_buffer_binding_size)
        ));
        fixes.push("a GPU with a larger storage-buffer binding limit (or the binding-split upload, not implemented yet)".into());
    }
    if fallback.iter().any(|k| k.dtype == StorageDType::F16) && !caps.summary.features.shader_f16 {
        fixes.push("a GPU (or backend) with shader-f16 runs f16 natively".into());
    }

    let (outcome, summary) = if !blockers.is_empty() {
        (
            Outcome::CannotRun,
            format!("cannot run: {}", blockers.join("; ")),
        )
    } else if !fallback.is_empty() {
        let list: Vec<String> = fallback
            .iter()
            .map(|k| format!("{} ({})", k.dtype, k.gemv.reason))
            .collect();
        (
            Outcome::RunsWithFallbacks,
            format!("runs with fallbacks: {}", list.join("; ")),
        )
    } else {
        (Outcome::RunsNatively, "runs natively".to_string())
    };
    let caveats = vec![
        "judged on the decode (GEMV) kernels; GEMM (prefill) and KV-cache attention kernels are not implemented yet, and neither is the forward pass".into(),
        "memory counts the weights only; KV cache and activations come with `wgllm plan`".into(),
    ];
    Verdict {
        loader,
        memory,
        kernels,
        outcome,
        summary,
        fixes,
        caveats,
    }
}
