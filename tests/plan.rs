//! `wgllm plan` against hand-computed values for published configurations (assets/configs
//! holds the config.json fields of Meta-Llama-3-8B, Llama-3.2-1B and Qwen2.5-7B), the answers
//! against the plan itself, and bad input.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn wgllm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgllm"))
        .args(args)
        .env_remove("WGLLM_ADAPTER")
        .output()
        .expect("running wgllm")
}

fn json(args: &[&str]) -> Value {
    let out = wgllm(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(name: &str) -> String {
    format!(
        "{}/assets/configs/{name}.config.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn params(report: &Value) -> u64 {
    report["plan"]["weights"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["formula"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

#[test]
fn published_parameter_counts_and_kv_cache_sizes() {
    // Meta-Llama-3-8B: 8,030,261,248 parameters; bf16 matrices, f32 norms (65 × 4096).
    let r = json(&[
        "plan",
        "--config",
        &config("llama-3-8b"),
        "--context",
        "8192",
        "--device-memory",
        "80GiB",
        "--json",
    ]);
    assert_eq!(params(&r), 8_030_261_248);
    assert_eq!(
        r["plan"]["weights"]["bytes"],
        (8_030_261_248u64 - 266_240) * 2 + 266_240 * 4
    );
    // 2 × 32 × 8 × 128 × 8192 × 2 bytes = 1 GiB exactly.
    assert_eq!(r["plan"]["kv_cache"]["bytes"], 1u64 << 30);
    // Llama-3.2-1B (tied embeddings): 1,235,814,400 parameters.
    let r = json(&[
        "plan",
        "--config",
        &config("llama-3.2-1b"),
        "--device-memory",
        "8GiB",
        "--json",
    ]);
    assert_eq!(params(&r), 1_235_814_400);
    // 2 × 16 × 8 × 64 × 4096 × 2 bytes = 128 MiB.
    assert_eq!(r["plan"]["kv_cache"]["bytes"], 128u64 << 20);
    // Qwen2.5-7B (q/k/v biases): 7,615,616,512 parameters.
    let r = json(&[
        "plan",
        "--config",
        &config("qwen2.5-7b"),
        "--kv-dtype",
        "q8_0",
        "--device-memory",
        "24GiB",
        "--json",
    ]);
    assert_eq!(params(&r), 7_615_616_512);
    // q8_0 KV: 2 × 28 × 4 × 128 × 4096 elements × 34/32 bytes.
    assert_eq!(
        r["plan"]["kv_cache"]["bytes"],
        2u64 * 28 * 4 * 128 * 4096 / 32 * 34
    );
}

#[test]
fn requantized_weights_use_bits_per_weight_with_scales() {
    let r = json(&[
        "plan",
        "--config",
        &config("llama-3-8b"),
        "--weights-dtype",
        "q4_0",
        "--device-memory",
        "16GiB",
        "--json",
    ]);
    // q4_0 is 4.5 bits per weight, not 4.
    assert_eq!(
        r["plan"]["weights"]["bytes"],
        (8_030_261_248u64 - 266_240) / 32 * 18 + 266_240 * 4
    );
}

#[test]
fn answers_agree_with_the_plan() {
    let base = [
        "plan",
        "--config",
        &config("llama-3-8b"),
        "--device-memory",
        "18GiB",
        "--json",
    ];
    let r = json(&base);
    let a = &r["answers"];
    let max_ctx = a["max_context"].as_u64().unwrap();
    assert!(max_ctx > 0);
    let total = |ctx: u64| {
        let mut args = base.to_vec();
        let c = ctx.to_string();
        args.extend(["--context", &c]);
        json(&args)["plan"]["total"].as_u64().unwrap()
    };
    let device = 18u64 << 30;
    assert!(
        total(max_ctx) <= device && total(max_ctx + 1) > device,
        "max_context {max_ctx}"
    );
    assert_eq!(a["device_bytes"], device);
    // At 16 GiB bf16 Llama-3-8B does not fit; the first fix frees the most and fits.
    let r = json(&[
        "plan",
        "--config",
        &config("llama-3-8b"),
        "--context",
        "8192",
        "--device-memory",
        "16GiB",
        "--json",
    ]);
    let a = &r["answers"];
    assert_eq!(a["fits"], false);
    let s = a["savings"].as_array().unwrap();
    assert!(
        s[0]["change"]
            .as_str()
            .unwrap()
            .starts_with("quantize weights to q4"),
        "{s:?}"
    );
    assert_eq!(s[0]["fits"], true);
    assert!(s
        .windows(2)
        .all(|w| w[0]["saves_bytes"].as_u64() >= w[1]["saves_bytes"].as_u64()));
    assert!(s.iter().any(|x| x["change"] == "KV cache to q8_0"));
    assert!(s.iter().any(|x| x["change"]
        .as_str()
        .unwrap()
        .starts_with("halve the context")));
}

#[test]
fn a_model_path_plans_its_weights_as_stored() {
    let model = format!(
        "{}/assets/fixtures/tiny-llama.gguf",
        env!("CARGO_MANIFEST_DIR")
    );
    let r = json(&[
        "plan",
        &model,
        "--context",
        "512",
        "--json",
        "--device-memory",
        "1GiB",
    ]);
    let inspect = json(&["inspect", &model, "--json", "--no-gpu"]);
    assert_eq!(r["plan"]["weights"]["bytes"], inspect["tensor_bytes"]);
    // 2 × 2 layers × 2 kv_heads × 64 × 512 × 2 bytes.
    assert_eq!(r["plan"]["kv_cache"]["bytes"], 2 * 2 * 2 * 64 * 512 * 2);
}

#[test]
fn sweep_and_plot() {
    let dir = std::env::temp_dir().join(format!("wgllm-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("memory.svg");
    let r = json(&[
        "plan",
        "--config",
        &config("llama-3-8b"),
        "--device-memory",
        "24GiB",
        "--sweep",
        "--plot",
        svg.to_str().unwrap(),
        "--json",
    ]);
    let cells = r["sweep"].as_array().unwrap();
    assert_eq!(cells.len(), 8 * 7);
    // More context never costs less; a smaller dtype never costs more.
    let at = |d: &str, c: u64| {
        cells
            .iter()
            .find(|x| x["weights_dtype"] == d && x["context"] == c)
            .unwrap()["total_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(at("f16", 131072) > at("f16", 2048));
    assert!(at("q4_k", 8192) < at("q8_0", 8192) && at("q8_0", 8192) < at("f16", 8192));
    assert_eq!(
        cells
            .iter()
            .find(|x| x["weights_dtype"] == "q4_k" && x["context"] == 2048)
            .unwrap()["fits"],
        true
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("q4_k") && text.contains("device memory"));
    let human = String::from_utf8(
        wgllm(&[
            "plan",
            "--config",
            &config("llama-3-8b"),
            "--device-memory",
            "24GiB",
            "--sweep",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        human.contains("Total memory by weights dtype × context")
            && human.contains('✗')
            && human.contains('✓'),
        "{human}"
    );
    assert!(
        human.contains(
            "2 × 32 layers × 8 kv_heads × 128 head_dim × 4096 context × 1 batch × 2 bytes"
        ),
        "{human}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("wgllm-plan-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("config.json");
    std::fs::write(&bad, r#"{"model_type":"llama","hidden_size":4096,"num_attention_heads":32,"vocab_size":1000,"intermediate_size":1}"#).unwrap();
    let out = wgllm(&[
        "plan",
        "--config",
        bad.to_str().unwrap(),
        "--device-memory",
        "8GiB",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'num_hidden_layers'"));
    let c = config("llama-3-8b");
    for (args, code, needle) in [
        (vec!["--context", "0"], 3, "context must be at least 1"),
        (vec!["--batch", "0"], 3, "batch must be at least 1"),
        (vec!["--context", "18446744073709551615"], 3, "overflows"),
        (vec!["--weights-dtype", "q3_z"], 2, "known: f64, f32"),
        (vec!["--kv-dtype", "q4_0"], 2, "known: f32, f16, q8_0"),
        (vec!["--device-memory", "lots"], 2, "not a size"),
    ] {
        let mut all = vec!["plan", "--config", c.as_str()];
        if args[0] != "--device-memory" {
            all.extend(["--device-memory", "8GiB"]);
        }
        all.extend(args.iter().copied());
        let out = wgllm(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    // Neither a model nor --config: a usage error.
    assert_eq!(wgllm(&["plan"]).status.code(), Some(2));
}

/// The truth check, for the class that exists on the device today: `plan`'s weight bytes for a
/// model equal the bytes the engine uploads for it (every tensor, on every adapter); the
/// buffers holding them add only the 4-byte copy alignment. KV cache and activations are
/// checked the same way once the forward pass allocates them.
#[test]
fn planned_weights_equal_what_the_engine_uploads() {
    use wgllm::formats::TensorStore;
    use wgllm::model::weights;
    for model in ["tiny-llama", "tiny-llama-sharded", "tiny-llama.gguf"] {
        let path = format!("{}/assets/fixtures/{model}", env!("CARGO_MANIFEST_DIR"));
        let planned = json(&["plan", &path, "--json", "--device-memory", "1GiB"])["plan"]
            ["weights"]["bytes"]
            .as_u64()
            .unwrap();
        let store = TensorStore::open(std::path::Path::new(&path)).unwrap();
        for gpu in common::all_gpus(wgllm::device::Switches::default()) {
            let w = weights::upload(&gpu, &store, |_| true, &mut |_, _| {}).unwrap();
            assert_eq!(w.bytes, planned, "{model} on {}", common::label(&gpu));
            assert!(
                w.allocated_bytes >= w.bytes && w.allocated_bytes - w.bytes <= 3 * w.buffers as u64
            );
        }
    }
}
