//! Model hyper-parameters for the Llama family (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5), from a
//! Hugging Face `config.json` or from GGUF `llama.*` / `qwen2.*` metadata, and pre-quantized
//! checkpoints recognised from `quantization_config`.
//!
//! Every field the engine's math needs is required and type-checked with an error naming it;
//! the values are later cross-checked against the tensor shapes (`formats::check`).

use super::gguf::{Gguf, Value};
use serde::Serialize;
use serde_json::Value as Json;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("config.json is not valid JSON: {0}")]
    Json(String),
    #[error("config.json is not a JSON object")]
    NotObject,
    #[error("{source_name}: required field '{field}' is missing")]
    Missing {
        source_name: &'static str,
        field: String,
    },
    #[error("{source_name}: field '{field}' should be {expected}, found {found}")]
    WrongType {
        source_name: &'static str,
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("{source_name}: field '{field}' = {value} is out of range ({why})")]
    OutOfRange {
        source_name: &'static str,
        field: String,
        value: String,
        why: &'static str,
    },
}

/// How RoPE frequencies are scaled (`rope_scaling` / `rope_parameters`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RopeScaling {
    /// `llama3`, `linear`, `dynamic`, `yarn`, …
    pub kind: String,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<u64>,
}

/// A pre-quantized checkpoint's scheme, as declared by `quantization_config`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantization {
    /// `bitsandbytes`, `compressed-tensors`, `gptq`, `awq`, `fp8`, …
    pub method: String,
    /// What the weights are stored as, in words (`nf4`, `int8`, `fp8 e4m3`, `int4 g128`).
    pub scheme: String,
    /// Whether wgllm has kernels for this scheme.
    pub supported: bool,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfig {
    /// `model_type` / `general.architecture` (`llama`, `mistral`, `qwen2`).
    pub architecture: String,
    /// Whether the architecture is one of the Llama family the engine targets.
    pub llama_family: bool,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_layers: u64,
    pub num_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    pub vocab_size: u64,
    pub max_position_embeddings: Option<u64>,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub rms_norm_eps: Option<f64>,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    /// `torch_dtype` / `dtype` as declared (what the checkpoint says its weights are).
    pub declared_dtype: Option<String>,
    pub quantization: Option<Quantization>,
    /// `config.json` or `gguf metadata`.
    pub source: &'static str,
}

pub const LLAMA_FAMILY: [&str; 4] = ["llama", "mistral", "qwen2", "qwen2_5"];

const CONFIG_JSON: &str = "config.json";

struct Fields<'a> {
    obj: &'a serde_json::Map<String, Json>,
}

impl Fields<'_> {
    fn get(&self, field: &str) -> Option<&Json> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn u64(&self, field: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| ConfigError::WrongType {
                source_name: CONFIG_JSON,
                field: field.into(),
                expected: "a non-negative integer",
                found: v.to_string(),
            }),
        }
    }

    fn req_u64(&self, field: &str) -> Result<u64, ConfigError> {
        let v = self.u64(field)?.ok_or_else(|| ConfigError::Missing {
            source_name: CONFIG_JSON,
            field: field.into(),
        })?;
        if v == 0 {
            return Err(ConfigError::OutOfRange {
                source_name: CONFIG_JSON,
                field: field.into(),
                value: "0".into(),
                why: "must be positive",
            });
        }
        Ok(v)
    }

    fn f64(&self, field: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| ConfigError::WrongType {
                source_name: CONFIG_JSON,
                field: field.into(),
                expected: "a number",
                found: v.to_string(),
            }),
        }
    }

    fn bool(&self, field: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| ConfigError::WrongType {
                source_name: CONFIG_JSON,
                field: field.into(),
                expected: "true or false",
                found: v.to_string(),
            }),
        }
    }

    fn string(&self, field: &str) -> Result<Option<String>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(ConfigError::WrongType {
                source_name: CONFIG_JSON,
                field: field.into(),
                expected: "a string",
                found: v.to_string(),
            }),
        }
    }

    fn object(&self, field: &str) -> Result<Option<Fields<'_>>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::Object(obj)) => Ok(Some(Fields { obj })),
            Some(v) => Err(ConfigError::WrongType {
                source_name: CONFIG_JSON,
                field: field.into(),
                expected: "an object",
                found: v.to_string(),
            }),
        }
    }
}

fn rope_scaling(f: &Fields) -> Result<Option<RopeScaling>, ConfigError> {
    let Some(r) = f.object("rope_scaling")?.or(f.object("rope_parameters")?) else {
        return Ok(None);
    };
    let kind = r
        .string("rope_type")?
        .or(r.string("type")?)
        .unwrap_or_else(|| "default".into());
    if kind == "default" {
        return Ok(None);
    }
    Ok(Some(RopeScaling {
        kind,
        factor: r.f64("factor")?,
        low_freq_factor: r.f64("low_freq_factor")?,
        high_freq_factor: r.f64("high_freq_factor")?,
        original_max_position_embeddings: r.u64("original_max_position_embeddings")?,
    }))
}

fn quantization(f: &Fields) -> Result<Option<Quantization>, ConfigError> {
    let Some(q) = f.object("quantization_config")? else {
        return Ok(None);
    };
    let method = q
        .string("quant_method")?
        .unwrap_or_else(|| "unknown".into());
    let (scheme, supported, note) = match method.as_str() {
        "bitsandbytes" => {
            if q.bool("load_in_4bit")?.unwrap_or(false) {
                let t = q
                    .string("bnb_4bit_quant_type")?
                    .unwrap_or_else(|| "fp4".into());
                let dq = q.bool("bnb_4bit_use_double_quant")?.unwrap_or(false);
                (
                    format!("{t}{}", if dq { " (double-quantized absmax)" } else { "" }),
                    false,
                    "bitsandbytes 4-bit checkpoints store packed uint8 weights plus absmax tensors; wgllm does not read that layout yet".to_string(),
                )
            } else {
                (
                    "int8 (LLM.int8)".into(),
                    false,
                    "LLM.int8 checkpoints are not supported yet".into(),
                )
            }
        }
        "compressed-tensors" | "fp8" => {
            let groups = q.object("config_groups")?;
            let desc = match groups.as_ref().and_then(|g| g.obj.values().next()) {
                Some(Json::Object(group)) => {
                    let w = group.get("weights");
                    let bits = w.and_then(|w| w.get("num_bits")).and_then(Json::as_u64);
                    let ty = w
                        .and_then(|w| w.get("type"))
                        .and_then(Json::as_str)
                        .unwrap_or("?");
                    format!("{ty} {}-bit", bits.map_or("?".into(), |b| b.to_string()))
                }
                _ => q.string("fmt")?.unwrap_or_else(|| "fp8".into()),
            };
            (
                desc,
                false,
                "fp8 weights with per-tensor or per-channel scale tensors; the f8 storage dtypes have no kernels yet".into(),
            )
        }
        "gptq" | "awq" => {
            let bits = q.u64("bits")?.or(q.u64("w_bit")?);
            let group = q.u64("group_size")?.or(q.u64("q_group_size")?);
            (
                format!(
                    "int{} g{}",
                    bits.map_or("?".into(), |b| b.to_string()),
                    group.map_or("?".into(), |g| g.to_string())
                ),
                false,
                format!("{method} packs int weights into int32 columns with separate scales/zeros; not supported yet"),
            )
        }
        other => (
            other.to_string(),
            false,
            "unknown quantization method".into(),
        ),
    };
    Ok(Some(Quantization {
        method,
        scheme,
        supported,
        note,
    }))
}

/// Parses a Hugging Face `config.json`.
pub fn from_config_json(text: &str) -> Result<ModelConfig, ConfigError> {
    let json: Json = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
    let obj = json.as_object().ok_or(ConfigError::NotObject)?;
    // Multimodal configs nest the language model under text_config.
    let top = Fields { obj };
    let f = match top.object("text_config")? {
        Some(text) => text,
        None => Fields { obj },
    };

    let architecture = f
        .string("model_type")?
        .ok_or_else(|| ConfigError::Missing {
            source_name: CONFIG_JSON,
            field: "model_type".into(),
        })?;
    let hidden_size = f.req_u64("hidden_size")?;
    let num_heads = f.req_u64("num_attention_heads")?;
    let num_kv_heads = f.u64("num_key_value_heads")?.unwrap_or(num_heads);
    if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(ConfigError::OutOfRange {
            source_name: CONFIG_JSON,
            field: "num_key_value_heads".into(),
            value: num_kv_heads.to_string(),
            why: "must be positive and divide num_attention_heads",
        });
    }
    let head_dim = match f.u64("head_dim")? {
        Some(d) => d,
        None => {
            if hidden_size % num_heads != 0 {
                return Err(ConfigError::OutOfRange {
                    source_name: CONFIG_JSON,
                    field: "hidden_size".into(),
                    value: hidden_size.to_string(),
                    why: "is not a multiple of num_attention_heads and head_dim is not given",
                });
            }
            hidden_size / num_heads
        }
    };
    let rope_theta = match f.f64("rope_theta")? {
        Some(t) => t,
        None => match f.object("rope_parameters")? {
            Some(r) => r.f64("rope_theta")?.unwrap_or(10_000.0),
            None => 10_000.0,
        },
    };
    Ok(ModelConfig {
        llama_family: LLAMA_FAMILY.contains(&architecture.as_str()),
        architecture,
        hidden_size,
        intermediate_size: f.req_u64("intermediate_size")?,
        num_layers: f.req_u64("num_hidden_layers")?,
        num_heads,
        num_kv_heads,
        head_dim,
        vocab_size: f.req_u64("vocab_size")?,
        max_position_embeddings: f.u64("max_position_embeddings")?,
        rope_theta,
        rope_scaling: rope_scaling(&f)?,
        rms_norm_eps: f.f64("rms_norm_eps")?,
        tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(false),
        attention_bias: f.bool("attention_bias")?.unwrap_or(false),
        declared_dtype: f.string("torch_dtype")?.or(f.string("dtype")?),
        quantization: quantization(&Fields { obj })?,
        source: CONFIG_JSON,
    })
}

const GGUF_META: &str = "gguf metadata";

fn gguf_u64(g: &Gguf, key: &str) -> Result<Option<u64>, ConfigError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| ConfigError::WrongType {
            source_name: GGUF_META,
            field: key.into(),
            expected: "an unsigned integer",
            found: v.type_name().into(),
        }),
    }
}

fn gguf_req(g: &Gguf, key: &str) -> Result<u64, ConfigError> {
    match gguf_u64(g, key)? {
        Some(0) => Err(ConfigError::OutOfRange {
            source_name: GGUF_META,
            field: key.into(),
            value: "0".into(),
            why: "must be positive",
        }),
        Some(v) => Ok(v),
        None => Err(ConfigError::Missing {
            source_name: GGUF_META,
            field: key.into(),
        }),
    }
}

fn gguf_f64(g: &Gguf, key: &str) -> Result<Option<f64>, ConfigError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ConfigError::WrongType {
            source_name: GGUF_META,
            field: key.into(),
            expected: "a number",
            found: v.type_name().into(),
        }),
    }
}

/// Errors in the hyper-parameters of an architecture outside the Llama family do not stop
/// the file from being inspected (its fields may simply be named differently): they become
/// "no config", and the architecture's name is still reported.
pub fn lenient(
    architecture: Option<&str>,
    parsed: Result<Option<ModelConfig>, ConfigError>,
) -> Result<Option<ModelConfig>, ConfigError> {
    match parsed {
        Err(_) if architecture.is_some_and(|a| !LLAMA_FAMILY.contains(&a)) => Ok(None),
        other => other,
    }
}

/// The architecture a config.json declares (`model_type`, or `text_config.model_type`).
pub fn architecture_of_json(text: &str) -> Option<String> {
    let json: Json = serde_json::from_str(text).ok()?;
    let t = json
        .get("text_config")
        .and_then(|t| t.get("model_type"))
        .or(json.get("model_type"))?;
    t.as_str().map(str::to_owned)
}

/// Reads `{arch}.*` metadata of a GGUF file. `None` when the file names no architecture.
pub fn from_gguf(g: &Gguf) -> Result<Option<ModelConfig>, ConfigError> {
    let Some(arch) = g.get("general.architecture") else {
        return Ok(None);
    };
    let arch = arch.as_str().ok_or_else(|| ConfigError::WrongType {
        source_name: GGUF_META,
        field: "general.architecture".into(),
        expected: "a string",
        found: arch.type_name().into(),
    })?;
    let key = |k: &str| format!("{arch}.{k}");
    let hidden_size = gguf_req(g, &key("embedding_length"))?;
    let num_heads = gguf_req(g, &key("attention.head_count"))?;
    let num_kv_heads = gguf_u64(g, &key("attention.head_count_kv"))?.unwrap_or(num_heads);
    if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(ConfigError::OutOfRange {
            source_name: GGUF_META,
            field: key("attention.head_count_kv"),
            value: num_kv_heads.to_string(),
            why: "must be positive and divide attention.head_count",
        });
    }
    let head_dim = match gguf_u64(g, &key("attention.key_length"))? {
        Some(d) => d,
        None => hidden_size / num_heads,
    };
    let vocab_size = match gguf_u64(g, &key("vocab_size"))? {
        Some(v) => v,
        None => match g.get("tokenizer.ggml.tokens") {
            Some(Value::Array(tokens)) => tokens.len() as u64,
            _ => 0,
        },
    };
    let has_output = g.tensors.iter().any(|t| t.name == "output.weight");
    let rope_scaling = match g.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        Some(kind) if kind != "none" => Some(RopeScaling {
            kind: kind.to_string(),
            factor: gguf_f64(g, &key("rope.scaling.factor"))?,
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: gguf_u64(
                g,
                &key("rope.scaling.original_context_length"),
            )?,
        }),
        _ => None,
    };
    Ok(Some(ModelConfig {
        architecture: arch.to_string(),
        llama_family: LLAMA_FAMILY.contains(&arch),
        hidden_size,
        intermediate_size: gguf_req(g, &key("feed_forward_length"))?,
        num_layers: gguf_req(g, &key("block_count"))?,
        num_heads,
        num_kv_heads,
        head_dim,
        vocab_size,
        max_position_embeddings: gguf_u64(g, &key("context_length"))?,
        rope_theta: gguf_f64(g, &key("rope.freq_base"))?.unwrap_or(10_000.0),
        rope_scaling,
        rms_norm_eps: gguf_f64(g, &key("attention.layer_norm_rms_epsilon"))?,
        tie_word_embeddings: !has_output,
        attention_bias: g.tensors.iter().any(|t| t.name.ends_with("attn_q.bias")),
        declared_dtype: None,
        quantization: None,
        source: GGUF_META,
    }))
}

impl ModelConfig {
    /// Parameters the config implies for a Llama-family decoder: embeddings, per layer
    /// (q, k, v, o projections with optional biases, gate/up/down MLP, two RMS norms), the
    /// final norm, and the output head unless tied.
    pub fn expected_parameters(&self) -> Option<u64> {
        let h = self.hidden_size;
        let q = self.num_heads.checked_mul(self.head_dim)?;
        let kv = self.num_kv_heads.checked_mul(self.head_dim)?;
        let attn = h
            .checked_mul(q)?
            .checked_mul(2)?
            .checked_add(h.checked_mul(kv)?.checked_mul(2)?)?;
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let mlp = h.checked_mul(self.intermediate_size)?.checked_mul(3)?;
        let layer = attn
            .checked_add(bias)?
            .checked_add(mlp)?
            .checked_add(2 * h)?;
        let embed = self.vocab_size.checked_mul(h)?;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        layer
            .checked_mul(self.num_layers)?
            .checked_add(embed)?
            .checked_add(h)?
            .checked_add(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// meta-llama/Meta-Llama-3-8B's config.json (the fields that matter).
    pub const LLAMA3_8B: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "max_position_embeddings": 8192, "rope_theta": 500000.0, "rms_norm_eps": 1e-05,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "attention_bias": false
    }"#;

    #[test]
    fn llama3_8b_has_its_published_parameter_count() {
        let c = from_config_json(LLAMA3_8B).unwrap();
        assert_eq!(c.head_dim, 128);
        assert_eq!(c.expected_parameters(), Some(8_030_261_248));
        assert!(c.llama_family && c.rope_scaling.is_none());
    }

    #[test]
    fn llama31_rope_scaling_and_new_rope_parameters_spelling() {
        let old = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
            "num_attention_heads":4,"vocab_size":100,"rope_theta":500000.0,
            "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let new = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
            "num_attention_heads":4,"vocab_size":100,
            "rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":8.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#;
        let (a, b) = (
            from_config_json(old).unwrap(),
            from_config_json(new).unwrap(),
        );
        assert_eq!(a.rope_theta, 500_000.0);
        assert_eq!(a.rope_theta, b.rope_theta);
        assert_eq!(a.rope_scaling, b.rope_scaling);
        assert_eq!(a.rope_scaling.unwrap().factor, Some(8.0));
    }

    #[test]
    fn qwen2_bias_tying_and_explicit_head_dim() {
        let q = r#"{"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,
            "num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,"tie_word_embeddings":true,
            "rope_theta":1000000.0,"head_dim":64}"#;
        let c = from_config_json(q).unwrap();
        assert!(c.tie_word_embeddings && c.llama_family);
        assert_eq!((c.head_dim, c.num_kv_heads), (64, 2));
    }

    #[test]
    fn quantization_configs_are_recognised() {
        let base = r#""model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100"#;
        let cases = [
            (
                r#"{"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"nf4"}"#,
                "bitsandbytes",
                "nf4",
            ),
            (
                r#"{"quant_method":"bitsandbytes","load_in_8bit":true}"#,
                "bitsandbytes",
                "int8 (LLM.int8)",
            ),
            (
                r#"{"quant_method":"gptq","bits":4,"group_size":128}"#,
                "gptq",
                "int4 g128",
            ),
            (
                r#"{"quant_method":"awq","bits":4,"group_size":128}"#,
                "awq",
                "int4 g128",
            ),
            (
                r#"{"quant_method":"compressed-tensors","config_groups":{"group_0":{"weights":{"num_bits":8,"type":"float"}}}}"#,
                "compressed-tensors",
                "float 8-bit",
            ),
        ];
        for (q, method, scheme) in cases {
            let c = from_config_json(&format!("{{{base},\"quantization_config\":{q}}}")).unwrap();
            let got = c.quantization.unwrap();
            assert_eq!((got.method.as_str(), got.scheme.as_str()), (method, scheme));
            assert!(!got.supported);
        }
    }

    #[test]
    fn missing_and_mistyped_fields_name_the_field() {
        let e = from_config_json(r#"{"model_type":"llama","hidden_size":64}"#).unwrap_err();
        assert!(e.to_string().contains("'num_attention_heads'"), "{e}");
        let e = from_config_json(
            r#"{"model_type":"llama","hidden_size":"64","num_attention_heads":4,"intermediate_size":1,"num_hidden_layers":1,"vocab_size":1}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("'hidden_size'") && e.to_string().contains("integer"),
            "{e}"
        );
        let e = from_config_json(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":3,"intermediate_size":1,"num_hidden_layers":1,"vocab_size":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("num_key_value_heads"), "{e}");
        assert!(matches!(
            from_config_json("[1]"),
            Err(ConfigError::NotObject)
        ));
        assert!(matches!(from_config_json("{"), Err(ConfigError::Json(_))));
    }
}
