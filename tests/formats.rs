//! The readers against files written by the reference writers (`safetensors`, `gguf` from
//! PyPI; see assets/fixtures/make_fixtures.py), and against what the reference readers see in
//! them (assets/fixtures/expected.json).

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use wgllm::dtype::StorageDType;
use wgllm::formats::{Format, TensorStore};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/fixtures")
        .join(rel)
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

/// Our dtype name for a reference dtype string (safetensors upper-case, gguf lower-case).
fn dtype_of(s: &str) -> StorageDType {
    StorageDType::from_safetensors(s).unwrap_or_else(|| s.parse().unwrap())
}

#[test]
fn every_fixture_reads_exactly_as_the_reference_readers_see_it() {
    let expected = expected();
    assert!(expected.len() >= 7);
    for (rel, tensors) in &expected {
        let path = fixture(rel);
        // Shards are opened one by one here (the sharded store is tested below).
        let store = TensorStore::open(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut ours: Vec<_> = store.tensors.iter().collect();
        ours.sort_by_key(|t| t.offset);
        let want = tensors.as_array().unwrap();
        assert_eq!(ours.len(), want.len(), "{rel}: tensor count");
        for (t, w) in ours.iter().zip(want) {
            let ctx = format!("{rel}: {}", t.name);
            assert_eq!(t.name, w["name"].as_str().unwrap(), "{ctx}");
            assert_eq!(t.dtype, dtype_of(w["dtype"].as_str().unwrap()), "{ctx}");
            let shape: Vec<u64> = w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(t.shape, shape, "{ctx}");
            assert_eq!(t.offset, w["offset"].as_u64().unwrap(), "{ctx}");
            assert_eq!(t.bytes, w["bytes"].as_u64().unwrap(), "{ctx}");
            // Data is reachable and exactly that long.
            assert_eq!(store.data(t).unwrap().len() as u64, t.bytes, "{ctx}");
        }
    }
}

#[test]
fn all_ggml_types_are_recognised_with_their_block_sizes() {
    let store = TensorStore::open(&fixture("all-types.gguf")).unwrap();
    assert_eq!(store.format, Format::Gguf);
    assert_eq!(store.tensors.len(), wgllm::dtype::GGML_TYPES.len());
    for t in &store.tensors {
        assert_eq!(t.name, t.dtype.name(), "tensor named after its type");
        assert_eq!(Some(t.bytes), t.dtype.bytes_for(512));
    }
}

#[test]
fn sharded_checkpoint_equals_the_single_file() {
    let single = TensorStore::open(&fixture("tiny-llama")).unwrap();
    let sharded = TensorStore::open(&fixture("tiny-llama-sharded")).unwrap();
    assert_eq!(single.format, Format::Safetensors);
    assert_eq!(sharded.format, Format::SafetensorsSharded);
    assert_eq!(sharded.files.len(), 2);
    let key = |s: &TensorStore| {
        let mut v: Vec<_> = s
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dtype, t.shape.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&single), key(&sharded));
    // Opening the index file directly is the same as opening the directory.
    let by_index =
        TensorStore::open(&fixture("tiny-llama-sharded/model.safetensors.index.json")).unwrap();
    assert_eq!(key(&by_index), key(&sharded));
}

#[test]
fn parameter_counts_agree_with_the_configs() {
    for rel in ["tiny-llama", "tiny-llama-sharded", "tiny-llama.gguf"] {
        let store = TensorStore::open(&fixture(rel)).unwrap();
        let config = store
            .config
            .as_ref()
            .unwrap_or_else(|| panic!("{rel}: no config"));
        assert!(config.llama_family, "{rel}");
        assert_eq!(
            config.expected_parameters(),
            Some(store.parameters()),
            "{rel}"
        );
        let d = wgllm::formats::check::cross_check(config, &store.tensors);
        assert!(d.is_empty(), "{rel}: {d:?}");
    }
    let g = TensorStore::open(&fixture("tiny-llama.gguf")).unwrap();
    let c = g.config.unwrap();
    assert_eq!(
        (
            c.hidden_size,
            c.num_heads,
            c.num_kv_heads,
            c.head_dim,
            c.vocab_size
        ),
        (256, 4, 2, 64, 256)
    );
    assert_eq!(c.rope_theta, 500_000.0);
    assert_eq!(c.source, "gguf metadata");
}

#[test]
fn gguf_metadata_of_every_value_type_is_read() {
    let store = TensorStore::open(&fixture("tiny-llama.gguf")).unwrap();
    let wgllm::formats::Metadata::Gguf(kv) = &store.metadata else {
        panic!("not gguf metadata")
    };
    let get = |k: &str| {
        &kv.iter()
            .find(|(key, _)| key == k)
            .unwrap_or_else(|| panic!("{k}"))
            .1
    };
    use wgllm::formats::gguf::Value;
    assert_eq!(get("general.architecture"), &Value::String("llama".into()));
    assert_eq!(get("fixture.flag"), &Value::Bool(true));
    assert_eq!(get("fixture.i8"), &Value::I8(-3));
    assert_eq!(get("fixture.u16"), &Value::U16(65535));
    assert_eq!(get("fixture.i64"), &Value::I64(-(1 << 40)));
    assert_eq!(get("fixture.f64"), &Value::F64(2.5));
    let Value::Array(tokens) = get("tokenizer.ggml.tokens") else {
        panic!()
    };
    assert_eq!(tokens.len(), 256);
    assert_eq!(tokens[7], Value::String("t7".into()));
    let Value::Array(scores) = get("tokenizer.ggml.scores") else {
        panic!()
    };
    assert_eq!(scores[3], Value::F32(-3.0));
}

#[test]
fn a_config_that_disagrees_with_the_shapes_is_reported_per_tensor() {
    let dir = tempdir("disagree");
    let src = fixture("tiny-llama");
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(src.join("config.json")).unwrap();
    // 4 heads × 16 = 64 rows; claim 8 heads of 16 = 128 rows.
    let cfg = cfg.replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 8");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let store = TensorStore::open(&dir).unwrap();
    let d = wgllm::formats::check::cross_check(store.config.as_ref().unwrap(), &store.tensors);
    let q = d
        .iter()
        .find(|d| d.tensor == "model.layers.0.self_attn.q_proj.weight")
        .expect("q_proj flagged");
    assert!(
        q.problem.contains("heads × head_dim = 8×16 = 128"),
        "{}",
        q.problem
    );
    assert!(store.config.as_ref().unwrap().expected_parameters() != Some(store.parameters()));
}

#[test]
fn a_missing_config_field_names_the_field_and_the_file() {
    let dir = tempdir("missing-field");
    std::fs::copy(
        fixture("tiny-llama/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type":"llama","hidden_size":64}"#,
    )
    .unwrap();
    let e = TensorStore::open(&dir).err().unwrap().to_string();
    assert!(
        e.contains("config.json") && e.contains("num_attention_heads"),
        "{e}"
    );
}

#[test]
fn a_file_shrunk_after_opening_is_an_error_not_a_crash() {
    let dir = tempdir("shrink");
    let p = dir.join("m.safetensors");
    std::fs::copy(fixture("tiny-llama/model.safetensors"), &p).unwrap();
    let store = TensorStore::open(&p).unwrap();
    let last = store
        .tensors
        .iter()
        .max_by_key(|t| t.offset)
        .unwrap()
        .clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(last.offset)
        .unwrap();
    let e = store.data(&last).unwrap_err().to_string();
    assert!(e.contains("shrank"), "{e}");
}

/// A 20 GiB (sparse) file: opening reads only the header pages.
#[test]
fn inspecting_a_huge_sparse_file_reads_only_the_header() {
    let dir = tempdir("sparse");
    let p = dir.join("huge.safetensors");
    let (rows, cols) = (81_920u64, 65_536u64); // f32: 20 GiB
    let bytes = rows * cols * 4;
    let header_len = common::sparse_safetensors(&p, "huge", "F32", 4, rows, cols);
    let start = std::time::Instant::now();
    let store = TensorStore::open(&p).unwrap();
    let took = start.elapsed();
    assert_eq!(store.tensors[0].bytes, bytes);
    assert_eq!(store.file_bytes(), header_len + bytes);
    // Milliseconds in practice; a whole-file read would take many seconds.
    assert!(took.as_millis() < 500, "opening took {took:?}");
}

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgllm-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
