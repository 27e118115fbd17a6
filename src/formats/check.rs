//! Cross-checks between a model's configuration and its tensors: a config that disagrees with
//! the shapes (heads × head_dim ≠ q_proj rows, a missing layer, an extra tensor) means the
//! model cannot run as described, and `inspect` says exactly where.

use super::config::ModelConfig;
use super::TensorInfo;
use serde::Serialize;

/// Tensor names of one naming convention.
struct Names {
    embed: &'static str,
    output: &'static str,
    final_norm: &'static str,
    /// Per-layer names, with `{}` for the layer index: (name, kind).
    layer: [(&'static str, Kind); 9],
}

#[derive(Clone, Copy)]
enum Kind {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    Norm,
}

const HF: Names = Names {
    embed: "model.embed_tokens.weight",
    output: "lm_head.weight",
    final_norm: "model.norm.weight",
    layer: [
        ("model.layers.{}.self_attn.q_proj.weight", Kind::Q),
        ("model.layers.{}.self_attn.k_proj.weight", Kind::K),
        ("model.layers.{}.self_attn.v_proj.weight", Kind::V),
        ("model.layers.{}.self_attn.o_proj.weight", Kind::O),
        ("model.layers.{}.mlp.gate_proj.weight", Kind::Gate),
        ("model.layers.{}.mlp.up_proj.weight", Kind::Up),
        ("model.layers.{}.mlp.down_proj.weight", Kind::Down),
        ("model.layers.{}.input_layernorm.weight", Kind::Norm),
        (
            "model.layers.{}.post_attention_layernorm.weight",
            Kind::Norm,
        ),
    ],
};

const GGUF: Names = Names {
    embed: "token_embd.weight",
    output: "output.weight",
    final_norm: "output_norm.weight",
    layer: [
        ("blk.{}.attn_q.weight", Kind::Q),
        ("blk.{}.attn_k.weight", Kind::K),
        ("blk.{}.attn_v.weight", Kind::V),
        ("blk.{}.attn_output.weight", Kind::O),
        ("blk.{}.ffn_gate.weight", Kind::Gate),
        ("blk.{}.ffn_up.weight", Kind::Up),
        ("blk.{}.ffn_down.weight", Kind::Down),
        ("blk.{}.attn_norm.weight", Kind::Norm),
        ("blk.{}.ffn_norm.weight", Kind::Norm),
    ],
};

/// One way the config and the tensors disagree.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Disagreement {
    pub tensor: String,
    pub problem: String,
}

fn expected_shape(c: &ModelConfig, kind: Kind) -> (Vec<u64>, String) {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let q = c.num_heads * c.head_dim;
    let kv = c.num_kv_heads * c.head_dim;
    match kind {
        Kind::Q => (
            vec![q, h],
            format!(
                "heads × head_dim = {}×{} = {q} rows",
                c.num_heads, c.head_dim
            ),
        ),
        Kind::K | Kind::V => (
            vec![kv, h],
            format!(
                "kv_heads × head_dim = {}×{} = {kv} rows",
                c.num_kv_heads, c.head_dim
            ),
        ),
        Kind::O => (
            vec![h, q],
            format!("hidden_size {h} rows × heads·head_dim {q} columns"),
        ),
        Kind::Gate | Kind::Up => (
            vec![i, h],
            format!("intermediate_size {i} rows × hidden_size {h}"),
        ),
        Kind::Down => (
            vec![h, i],
            format!("hidden_size {h} rows × intermediate_size {i}"),
        ),
        Kind::Norm => (vec![h], format!("hidden_size {h}")),
    }
}

/// Checks a Llama-family config against the tensors. Models of other architectures are not
/// checked tensor by tensor (their names differ), only by parameter count.
pub fn cross_check(c: &ModelConfig, tensors: &[TensorInfo]) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let find = |name: &str| tensors.iter().find(|t| t.name == name);
    let names = if find(GGUF.embed).is_some() || tensors.iter().any(|t| t.name.starts_with("blk."))
    {
        &GGUF
    } else {
        &HF
    };
    let mut check = |name: String, want: Vec<u64>, why: String| match find(&name) {
        None => out.push(Disagreement {
            tensor: name,
            problem: format!("missing (the config implies it: {why})"),
        }),
        Some(t) if t.shape != want => out.push(Disagreement {
            problem: format!(
                "shape {:?}, but the config implies {want:?} ({why})",
                t.shape
            ),
            tensor: name,
        }),
        Some(_) => {}
    };
    if c.llama_family {
        let (v, h) = (c.vocab_size, c.hidden_size);
        check(
            names.embed.into(),
            vec![v, h],
            format!("vocab_size {v} × hidden_size {h}"),
        );
        check(names.final_norm.into(), vec![h], format!("hidden_size {h}"));
        if !c.tie_word_embeddings {
            check(
                names.output.into(),
                vec![v, h],
                format!("untied output head, vocab_size {v} × hidden_size {h}"),
            );
        }
        for layer in 0..c.num_layers.min(4096) {
            for (pattern, kind) in names.layer {
                let (want, why) = expected_shape(c, kind);
                check(pattern.replace("{}", &layer.to_string()), want, why);
            }
        }
        // Layers beyond the config's count.
        let prefix = if std::ptr::eq(names, &GGUF) {
            "blk."
        } else {
            "model.layers."
        };
        let extra = tensors
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix(prefix)?
                    .split('.')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .filter(|&l| l >= c.num_layers)
            .max();
        if let Some(l) = extra {
            out.push(Disagreement {
                tensor: format!("{prefix}{l}.*"),
                problem: format!(
                    "layer {l} exists, but the config has {} layers",
                    c.num_layers
                ),
            });
        }
    }
    out
}
