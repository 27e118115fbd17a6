//! The memory plan: bytes per tensor class — weights, KV cache, activations, runtime overhead —
//! for a model at given knobs, with the formula behind each figure, and the answers users
//! want from it (largest context and batch that fit, which knob frees the most).
//!
//! Activations are the scratch buffers the engine's forward pass allocates once and reuses
//! across layers (listed in [`activation_buffers`]); the model issue's allocator must record
//! exactly these, so that `generate --memory-report` can check this plan against reality.

use crate::dtype::{KvDType, StorageDType};
use crate::formats::config::ModelConfig;
use crate::formats::TensorInfo;
use serde::Serialize;

/// Bytes of the upload staging buffer (weights go from the mapped file to the GPU through it).
pub const STAGING_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{knob} must be at least 1")]
    Zero { knob: &'static str },
    #[error("the plan overflows 64-bit byte counts ({what}); the knobs are absurd")]
    Overflow { what: &'static str },
    #[error("KV cache dtype q8_0 needs head_dim ({0}) to be a multiple of 32")]
    KvBlocks(u64),
    #[error("{0}")]
    Config(String),
}

/// The knobs of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Knobs {
    /// Tokens per sequence the KV cache holds.
    pub context: u64,
    /// Concurrent sequences.
    pub batch: u64,
    /// Weights requantized to this dtype; `None` = as stored.
    pub weights_dtype: Option<StorageDType>,
    pub kv_dtype: KvDType,
    /// Tokens of one sequence processed per prefill step.
    pub prefill_chunk: u64,
}

impl Knobs {
    pub fn validate(&self) -> Result<(), PlanError> {
        for (knob, v) in [
            ("context", self.context),
            ("batch", self.batch),
            ("prefill-chunk", self.prefill_chunk),
        ] {
            if v == 0 {
                return Err(PlanError::Zero { knob });
            }
        }
        Ok(())
    }
}

/// One line of the breakdown: what, how many bytes, and the formula.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub name: String,
    pub bytes: u64,
    pub formula: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Class {
    pub bytes: u64,
    pub items: Vec<Item>,
}

impl Class {
    fn new(items: Vec<Item>) -> Result<Self, PlanError> {
        let bytes = items
            .iter()
            .try_fold(0u64, |a, i| a.checked_add(i.bytes))
            .ok_or(PlanError::Overflow {
                what: "a class total",
            })?;
        Ok(Self { bytes, items })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub knobs: Knobs,
    pub weights: Class,
    pub kv_cache: Class,
    /// The larger of the decode and prefill working sets (buffers are allocated once).
    pub activations: Class,
    pub activations_decode: u64,
    pub activations_prefill: u64,
    pub overhead: Class,
    pub total: u64,
    pub largest_tensor: Option<(String, u64)>,
}

/// The tensors of a Llama-family model as the engine would store them, when only the config
/// is known (`plan --config`): every matrix in `dtype`, norms in f32.
pub fn tensors_from_config(c: &ModelConfig, dtype: StorageDType) -> Vec<TensorInfo> {
    let t = |name: String, shape: Vec<u64>| {
        let d = if shape.len() == 1 {
            StorageDType::F32
        } else {
            dtype
        };
        let elements: u64 = shape.iter().product();
        TensorInfo {
            bytes: d.bytes_for(elements).unwrap_or(elements.saturating_mul(4)),
            name,
            dtype: d,
            shape,
            file: 0,
            offset: 0,
        }
    };
    let (h, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let q = c.num_heads * c.head_dim;
    let kv = c.num_kv_heads * c.head_dim;
    let mut out = vec![
        t("token_embd.weight".into(), vec![v, h]),
        t("output_norm.weight".into(), vec![h]),
    ];
    if !c.tie_word_embeddings {
        out.push(t("output.weight".into(), vec![v, h]));
    }
    for l in 0..c.num_layers {
        let p = |s: &str| format!("blk.{l}.{s}");
        out.push(t(p("attn_q.weight"), vec![q, h]));
        out.push(t(p("attn_k.weight"), vec![kv, h]));
        out.push(t(p("attn_v.weight"), vec![kv, h]));
        out.push(t(p("attn_output.weight"), vec![h, q]));
        out.push(t(p("ffn_gate.weight"), vec![i, h]));
        out.push(t(p("ffn_up.weight"), vec![i, h]));
        out.push(t(p("ffn_down.weight"), vec![h, i]));
        out.push(t(p("attn_norm.weight"), vec![h]));
        out.push(t(p("ffn_norm.weight"), vec![h]));
        if c.attention_bias {
            out.push(t(p("attn_q.bias"), vec![q]));
            out.push(t(p("attn_k.bias"), vec![kv]));
            out.push(t(p("attn_v.bias"), vec![kv]));
        }
    }
    out
}

/// The dtype a matrix is stored in when requantized to `target`: the target when its rows are
/// whole blocks of it, else q8_0, else f16 (as llama.cpp's quantizer falls back); vectors and
/// 1-D tensors stay as they are.
pub fn requantized_dtype(t: &TensorInfo, target: StorageDType) -> StorageDType {
    if t.shape.len() < 2 {
        return t.dtype;
    }
    let cols = *t.shape.last().unwrap_or(&1);
    [target, StorageDType::Q8_0, StorageDType::F16]
        .into_iter()
        .find(|d| cols.is_multiple_of(u64::from(d.block().elements)))
        .unwrap_or(StorageDType::F32)
}

fn weights_class(
    tensors: &[TensorInfo],
    target: Option<StorageDType>,
) -> Result<(Class, Option<(String, u64)>), PlanError> {
    let mut per_dtype: Vec<(StorageDType, u64, u64, usize)> = Vec::new(); // dtype, elements, bytes, tensors
    let mut largest: Option<(String, u64)> = None;
    for t in tensors {
        let (dtype, bytes) = match target {
            None => (t.dtype, t.bytes),
            Some(target) => {
                let d = requantized_dtype(t, target);
                let b = d.bytes_for(t.elements()).ok_or(PlanError::Overflow {
                    what: "a tensor's bytes",
                })?;
                (d, b)
            }
        };
        if largest.as_ref().is_none_or(|(_, b)| bytes > *b) {
            largest = Some((t.name.clone(), bytes));
        }
        match per_dtype.iter_mut().find(|e| e.0 == dtype) {
            Some(e) => {
                e.1 += t.elements();
                e.2 += bytes;
                e.3 += 1;
            }
            None => per_dtype.push((dtype, t.elements(), bytes, 1)),
        }
    }
    per_dtype.sort_by_key(|e| std::cmp::Reverse(e.2));
    let items = per_dtype
        .into_iter()
        .map(|(d, elements, bytes, n)| {
            let b = d.block();
            Item {
                name: format!("{d} ({n} tensors)"),
                bytes,
                formula: format!(
                    "{elements} weights × {} bytes per {} = {:.4} bits/weight",
                    b.bytes,
                    if b.elements == 1 {
                        "weight".to_string()
                    } else {
                        format!("block of {}", b.elements)
                    },
                    d.bits_per_weight()
                ),
            }
        })
        .collect();
    Ok((Class::new(items)?, largest))
}

/// KV-cache bytes: 2 (K and V) × layers × kv_heads × head_dim × context × batch × bytes per
/// element (q8_0: 34 bytes per 32 elements along head_dim).
pub fn kv_cache_bytes(
    c: &ModelConfig,
    context: u64,
    batch: u64,
    kv: KvDType,
) -> Result<u64, PlanError> {
    let elements = [2, c.num_layers, c.num_kv_heads, c.head_dim, context, batch]
        .into_iter()
        .try_fold(1u64, |a, b| a.checked_mul(b))
        .ok_or(PlanError::Overflow { what: "KV cache" })?;
    if kv == KvDType::Q8_0 && !c.head_dim.is_multiple_of(32) {
        return Err(PlanError::KvBlocks(c.head_dim));
    }
    kv.storage()
        .bytes_for(elements)
        .ok_or(PlanError::Overflow { what: "KV cache" })
}

fn kv_class(c: &ModelConfig, k: &Knobs) -> Result<Class, PlanError> {
    let bytes = kv_cache_bytes(c, k.context, k.batch, k.kv_dtype)?;
    let per = match k.kv_dtype {
        KvDType::F32 => "4 bytes".to_string(),
        KvDType::F16 => "2 bytes".to_string(),
        KvDType::Q8_0 => "34/32 bytes (q8_0 blocks along head_dim)".to_string(),
    };
    Class::new(vec![Item {
        name: format!("K and V, {}", k.kv_dtype),
        bytes,
        formula: format!(
            "2 × {} layers × {} kv_heads × {} head_dim × {} context × {} batch × {per}",
            c.num_layers, c.num_kv_heads, c.head_dim, k.context, k.batch
        ),
    }])
}

/// The forward pass's scratch buffers for `tokens` tokens in flight attending over `context`
/// positions, producing logits for `logit_rows` tokens: all f32, allocated once.
pub fn activation_buffers(
    c: &ModelConfig,
    tokens: u64,
    context: u64,
    logit_rows: u64,
) -> Result<Vec<Item>, PlanError> {
    let f = |name: &str, dims: &[u64], formula: String| -> Result<Item, PlanError> {
        let elems =
            dims.iter()
                .try_fold(1u64, |a, b| a.checked_mul(*b))
                .ok_or(PlanError::Overflow {
                    what: "activations",
                })?;
        Ok(Item {
            name: name.into(),
            bytes: elems.checked_mul(4).ok_or(PlanError::Overflow {
                what: "activations",
            })?,
            formula: format!("{formula} × 4 bytes"),
        })
    };
    let (h, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
    Ok(vec![
        f(
            "residual stream",
            &[tokens, h],
            format!("{tokens} tokens × {h} hidden"),
        )?,
        f(
            "normed input",
            &[tokens, h],
            format!("{tokens} tokens × {h} hidden"),
        )?,
        f(
            "q, k, v",
            &[tokens, nh + 2 * nkv, hd],
            format!("{tokens} tokens × ({nh} + 2×{nkv}) heads × {hd}"),
        )?,
        f(
            "attention scores",
            &[tokens, nh, context],
            format!("{tokens} tokens × {nh} heads × {context} positions"),
        )?,
        f(
            "attention output",
            &[tokens, nh, hd],
            format!("{tokens} tokens × {nh} heads × {hd}"),
        )?,
        f(
            "MLP gate and up",
            &[2, tokens, i],
            format!("2 × {tokens} tokens × {i} intermediate"),
        )?,
        f(
            "logits",
            &[logit_rows, v],
            format!("{logit_rows} rows × {v} vocab"),
        )?,
    ])
}

/// Builds the plan for `tensors` (as stored, or from [`tensors_from_config`]) and `config`.
pub fn plan(c: &ModelConfig, tensors: &[TensorInfo], k: &Knobs) -> Result<Plan, PlanError> {
    k.validate()?;
    let (weights, largest) = weights_class(tensors, k.weights_dtype)?;
    let kv_cache = kv_class(c, k)?;
    // Decode: one token per sequence, attending over the whole context, logits for each.
    let decode = activation_buffers(c, k.batch, k.context, k.batch)?;
    // Prefill: one chunk of one sequence at a time, logits for its last token only.
    let chunk = k.prefill_chunk.min(k.context);
    let prefill = activation_buffers(c, chunk, k.context, 1)?;
    let decode = Class::new(decode)?;
    let prefill = Class::new(prefill)?;
    let (activations_decode, activations_prefill) = (decode.bytes, prefill.bytes);
    let mut activations = if prefill.bytes >= decode.bytes {
        prefill
    } else {
        decode
    };
    activations.items.iter_mut().for_each(|i| {
        i.name = format!(
            "{} ({})",
            i.name,
            if activations_prefill >= activations_decode {
                "prefill"
            } else {
                "decode"
            }
        )
    });
    let overhead = Class::new(vec![
        Item {
            name: "upload staging".into(),
            bytes: STAGING_BYTES,
            formula: "weights stream from the mapped file through one 64 MiB staging buffer".into(),
        },
        Item {
            name: "logits read-back".into(),
            bytes: k
                .batch
                .checked_mul(c.vocab_size)
                .and_then(|v| v.checked_mul(4))
                .ok_or(PlanError::Overflow { what: "overhead" })?,
            formula: format!("{} batch × {} vocab × 4 bytes", k.batch, c.vocab_size),
        },
    ])?;
    let total = [
        weights.bytes,
        kv_cache.bytes,
        activations.bytes,
        overhead.bytes,
    ]
    .into_iter()
    .try_fold(0u64, |a, b| a.checked_add(b))
    .ok_or(PlanError::Overflow { what: "the total" })?;
    Ok(Plan {
        knobs: k.clone(),
        weights,
        kv_cache,
        activations,
        activations_decode,
        activations_prefill,
        overhead,
        total,
        largest_tensor: largest,
    })
}

/// The largest value in `1..=hi` for which `fits` holds (monotone), or 0.
fn largest_fitting(hi: u64, fits: impl Fn(u64) -> bool) -> u64 {
    if !fits(1) {
        return 0;
    }
    let (mut lo, mut hi) = (1u64, hi);
    if fits(hi) {
        return hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A knob change and what it frees.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Saving {
    pub change: String,
    pub saves_bytes: u64,
    pub new_total: u64,
    pub fits: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answers {
    pub device_bytes: u64,
    pub fits: bool,
    pub headroom_bytes: i128,
    /// Largest context (tokens per sequence) that fits at this batch; 0 when none does.
    pub max_context: u64,
    /// Largest batch that fits at this context; 0 when none does.
    pub max_batch: u64,
    /// Knob changes ranked by bytes freed (always computed; most useful when it does not fit).
    pub savings: Vec<Saving>,
}

/// Upper bound for the context search (2^24 tokens).
pub const MAX_CONTEXT_SEARCH: u64 = 1 << 24;
pub const MAX_BATCH_SEARCH: u64 = 1 << 16;

pub fn answers(c: &ModelConfig, tensors: &[TensorInfo], p: &Plan, device_bytes: u64) -> Answers {
    let total_with = |k: &Knobs| plan(c, tensors, k).map(|p| p.total).unwrap_or(u64::MAX);
    let max_context = largest_fitting(MAX_CONTEXT_SEARCH, |ctx| {
        total_with(&Knobs {
            context: ctx,
            ..p.knobs.clone()
        }) <= device_bytes
    });
    let max_batch = largest_fitting(MAX_BATCH_SEARCH, |b| {
        total_with(&Knobs {
            batch: b,
            ..p.knobs.clone()
        }) <= device_bytes
    });
    let mut candidates: Vec<(String, Knobs)> = Vec::new();
    for d in [StorageDType::Q8_0, StorageDType::Q4K, StorageDType::Q4_0] {
        candidates.push((
            format!("quantize weights to {d}"),
            Knobs {
                weights_dtype: Some(d),
                ..p.knobs.clone()
            },
        ));
    }
    for kv in [KvDType::F16, KvDType::Q8_0] {
        if kv.storage().bits_per_weight() < p.knobs.kv_dtype.storage().bits_per_weight() {
            candidates.push((
                format!("KV cache to {kv}"),
                Knobs {
                    kv_dtype: kv,
                    ..p.knobs.clone()
                },
            ));
        }
    }
    if p.knobs.context > 1 {
        candidates.push((
            format!("halve the context to {}", p.knobs.context / 2),
            Knobs {
                context: p.knobs.context / 2,
                ..p.knobs.clone()
            },
        ));
    }
    if p.knobs.batch > 1 {
        candidates.push((
            format!("halve the batch to {}", p.knobs.batch / 2),
            Knobs {
                batch: p.knobs.batch / 2,
                ..p.knobs.clone()
            },
        ));
    }
    let mut savings: Vec<Saving> = candidates
        .into_iter()
        .filter_map(|(change, k)| {
            let t = total_with(&k);
            (t < p.total).then(|| Saving {
                change,
                saves_bytes: p.total - t,
                new_total: t,
                fits: t <= device_bytes,
            })
        })
        .collect();
    savings.sort_by_key(|s| std::cmp::Reverse(s.saves_bytes));
    Answers {
        device_bytes,
        fits: p.total <= device_bytes,
        headroom_bytes: i128::from(device_bytes) - i128::from(p.total),
        max_context,
        max_batch,
        savings,
    }
}

/// A tensor that exceeds a per-binding or per-buffer limit and the row-range bindings it
/// needs; `None` when one row alone exceeds the limit.
pub fn bindings_needed(bytes: u64, shape: &[u64], limit: u64) -> Option<u64> {
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let row_bytes = bytes.div_ceil(rows);
    (row_bytes <= limit && row_bytes > 0).then(|| rows.div_ceil(limit / row_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::config::from_config_json;

    fn llama3_8b() -> ModelConfig {
        from_config_json(
            r#"{"model_type":"llama","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
            "num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":8192,
            "rope_theta":500000.0,"tie_word_embeddings":false,"torch_dtype":"bfloat16"}"#,
        )
        .unwrap()
    }

    fn knobs(context: u64, kv: KvDType) -> Knobs {
        Knobs {
            context,
            batch: 1,
            weights_dtype: None,
            kv_dtype: kv,
            prefill_chunk: 512,
        }
    }

    #[test]
    fn llama3_8b_weights_and_kv_match_hand_computed_values() {
        let c = llama3_8b();
        let t = tensors_from_config(&c, StorageDType::Bf16);
        let params: u64 = t.iter().map(TensorInfo::elements).sum();
        assert_eq!(params, 8_030_261_248);
        let p = plan(&c, &t, &knobs(8192, KvDType::F16)).unwrap();
        // 8,030,261,248 − norms (65 × 4096 = 266,240 f32) in bf16, norms in f32.
        assert_eq!(p.weights.bytes, (8_030_261_248 - 266_240) * 2 + 266_240 * 4);
        // 2 × 32 × 8 × 128 × 8192 × 2 bytes = 1 GiB.
        assert_eq!(p.kv_cache.bytes, 1 << 30);
        assert_eq!(
            kv_cache_bytes(&c, 8192, 1, KvDType::Q8_0).unwrap(),
            (1u64 << 29) / 32 * 34
        );
        assert_eq!(kv_cache_bytes(&c, 8192, 4, KvDType::F32).unwrap(), 8 << 30);
    }

    #[test]
    fn llama32_1b_tied_and_qwen25_7b_biased_parameter_counts() {
        let c = from_config_json(include_str!(
            "../../assets/configs/llama-3.2-1b.config.json"
        ))
        .unwrap();
        let n: u64 = tensors_from_config(&c, StorageDType::Bf16)
            .iter()
            .map(TensorInfo::elements)
            .sum();
        assert_eq!(n, 1_235_814_400);
        assert_eq!(c.expected_parameters(), Some(n));
        let c =
            from_config_json(include_str!("../../assets/configs/qwen2.5-7b.config.json")).unwrap();
        let n: u64 = tensors_from_config(&c, StorageDType::Bf16)
            .iter()
            .map(TensorInfo::elements)
            .sum();
        assert_eq!(n, 7_615_616_512);
        assert_eq!(c.expected_parameters(), Some(n));
    }

    #[test]
    fn requantizing_uses_block_sizes_and_falls_back_on_odd_rows() {
        let c = llama3_8b();
        let t = tensors_from_config(&c, StorageDType::Bf16);
        let p = plan(
            &c,
            &t,
            &Knobs {
                weights_dtype: Some(StorageDType::Q4_0),
                ..knobs(4096, KvDType::F16)
            },
        )
        .unwrap();
        let matrices = 8_030_261_248u64 - 266_240;
        assert_eq!(p.weights.bytes, matrices / 32 * 18 + 266_240 * 4);
        let odd = TensorInfo {
            name: "x".into(),
            dtype: StorageDType::F16,
            shape: vec![4, 96],
            file: 0,
            offset: 0,
            bytes: 768,
        };
        assert_eq!(
            requantized_dtype(&odd, StorageDType::Q4K),
            StorageDType::Q8_0
        );
    }

    #[test]
    fn answers_are_consistent_with_the_plan() {
        let c = llama3_8b();
        let t = tensors_from_config(&c, StorageDType::Bf16);
        let p = plan(&c, &t, &knobs(8192, KvDType::F16)).unwrap();
        let device = 24u64 << 30;
        let a = answers(&c, &t, &p, device);
        assert!(a.fits);
        let at = |ctx| plan(&c, &t, &knobs(ctx, KvDType::F16)).unwrap().total;
        assert!(
            at(a.max_context) <= device && at(a.max_context + 1) > device,
            "{}",
            a.max_context
        );
        // 16 GiB does not hold bf16 Llama-3-8B; quantizing helps most.
        let a = answers(&c, &t, &p, 16 << 30);
        assert!(!a.fits);
        assert!(a.savings[0].change.contains("q4"), "{:?}", a.savings);
        assert!(a
            .savings
            .windows(2)
            .all(|w| w[0].saves_bytes >= w[1].saves_bytes));
    }

    #[test]
    fn absurd_knobs_are_errors() {
        let c = llama3_8b();
        let t = tensors_from_config(&c, StorageDType::F16);
        assert_eq!(
            plan(&c, &t, &knobs(0, KvDType::F16)),
            Err(PlanError::Zero { knob: "context" })
        );
        assert!(matches!(
            plan(&c, &t, &knobs(u64::MAX / 2, KvDType::F16)),
            Err(PlanError::Overflow { .. })
        ));
    }

    #[test]
    fn bindings_needed_counts_row_ranges() {
        assert_eq!(
            bindings_needed(200 << 20, &[100, 1 << 20], 128 << 20),
            Some(2)
        );
        assert_eq!(bindings_needed(300 << 20, &[1, 300 << 20], 128 << 20), None);
    }
}
