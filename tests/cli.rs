//! The `wgllm` binary as a user runs it: adapters listed, selection, JSON schema, exit codes.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn wgllm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wgllm"));
    cmd.args(args)
        .env_remove("WGLLM_ADAPTER")
        .env_remove("WGLLM_DISABLE")
        .env_remove("WGLLM_SELFTEST_FAIL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running wgllm")
}

fn json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = wgllm(args, env);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn kernel<'a>(adapter: &'a Value, op: &str, dtype: &str) -> &'a Value {
    adapter["kernels"]
        .as_array()
        .expect("kernels")
        .iter()
        .find(|k| k["op"] == op && k["dtype"] == dtype)
        .unwrap_or_else(|| panic!("no {op} {dtype} entry"))
}

#[test]
fn json_lists_lavapipe_and_gl_with_a_truthful_matrix_and_matches_the_schema() {
    let report = json(&["capabilities", "--all", "--json"], &[]);
    assert_matches_capabilities_schema(&report);

    let adapters = report["adapters"].as_array().unwrap();
    let vk = adapters
        .iter()
        .find(|a| a["backend"] == "vulkan")
        .expect("a Vulkan adapter (lavapipe)");
    let gl = adapters
        .iter()
        .find(|a| a["backend"] == "gl")
        .expect("a GL adapter (llvmpipe)");
    for a in [vk, gl] {
        assert_eq!(a["probed"], true);
        assert_eq!(a["kernels"].as_array().unwrap().len(), 14 * 2 + 3);
    }
    // lavapipe has shader-f16; whether f16 runs natively is what the autotune measured.
    for (op, race) in [("gemv", "f16_gemv"), ("gemm", "f16_gemm")] {
        let r = &vk["tuning"][race];
        let native_wins =
            r["native"]["rate"].as_f64().unwrap() > r["fallback"]["rate"].as_f64().unwrap();
        let k = kernel(vk, op, "f16");
        if native_wins {
            assert_eq!(k["path"], "native", "{k}");
            assert_eq!(k["compute_dtype"], "f16");
        } else {
            assert_eq!(k["path"], "fallback", "{k}");
            assert_eq!(k["compute_dtype"], "f32");
            assert!(
                k["reason"].as_str().unwrap().contains("measured slower"),
                "{k}"
            );
        }
    }
    // Every dtype's GEMV layout was raced, and the kernel uses the layout chosen from it.
    let tuned = vk["geometry"]["gemv_tuned"].as_array().unwrap();
    assert_eq!(tuned.len(), vk["tuning"]["gemv"].as_array().unwrap().len());
    for choice in tuned {
        let k = kernel(vk, "gemv", choice["dtype"].as_str().unwrap());
        // Int-dot kernels compute in i8 (named _dot4, or _pm where they multiply in pairs).
        if (k["compute_dtype"] == "i8") != (choice["int_dot"] == true) {
            continue; // the other variant of an int-dot dtype
        }
        let layout = choice["reduction"].as_str().unwrap();
        assert!(
            k["kernel"]
                .as_str()
                .unwrap()
                .contains(&format!("_{layout}_")),
            "{k} vs {choice}"
        );
    }
    assert_eq!(kernel(gl, "gemv", "f16")["path"], "fallback");
    assert!(kernel(gl, "gemv", "f16")["reason"]
        .as_str()
        .unwrap()
        .contains("lacks shader-f16"));
    assert_eq!(kernel(vk, "gemv", "bf16")["path"], "fallback");
    // Never claims a kernel that is not there.
    let attention = kernel(vk, "attention", "f16");
    assert_eq!(attention["path"], "unsupported");
    assert_eq!(attention["reason"], "not implemented yet");
    let q4k = kernel(vk, "gemm", "q4_k");
    assert_eq!(q4k["path"], "native");
    assert!(q4k["kernel"]
        .as_str()
        .unwrap()
        .starts_with("gemm_q4_k_f32c_f32acc_"));
    assert_eq!(kernel(gl, "gemm", "f16")["path"], "fallback");
    // q4_k decode: f32 decoding or int-dot, whichever the autotune measured faster; the name,
    // the compute dtype and the reason agree.
    let q4k = kernel(vk, "gemv", "q4_k");
    let name = q4k["kernel"].as_str().unwrap();
    if q4k["compute_dtype"] == "i8" {
        // dot4I8Packed, or (on the CPU layout) products two per 32-bit multiply.
        assert!(
            name.starts_with("gemv_q4_k_i8c_f32acc_")
                && (name.ends_with("_dot4") || name.ends_with("_pm")),
            "{q4k}"
        );
        let pairs = q4k["reason"]
            .as_str()
            .unwrap()
            .contains("two int8 products per 32-bit multiply");
        assert_eq!(pairs, name.ends_with("_pm"), "{q4k}");
        assert!(
            q4k["reason"].as_str().unwrap().contains("measured faster"),
            "{q4k}"
        );
    } else {
        assert_eq!(q4k["compute_dtype"], "f32", "{q4k}");
        assert!(
            name.starts_with("gemv_q4_k_f32c_f32acc_") && !name.ends_with("_dot4"),
            "{q4k}"
        );
    }
    assert!(vk["features"]
        .as_array()
        .unwrap()
        .contains(&Value::from("shader-f16")));
    assert!(!gl["features"]
        .as_array()
        .unwrap()
        .contains(&Value::from("shader-f16")));
    // Vulkan memory comes from the heaps; GL says why it is unknown.
    assert!(vk["memory"]["device_local_bytes"].as_u64().unwrap() > 0);
    assert!(gl["memory"]["device_local_bytes"].is_null());
    assert!(gl["memory"]["source"]
        .as_str()
        .unwrap()
        .starts_with("unknown"));
}

#[test]
fn without_all_only_the_selected_adapter_is_probed() {
    let report = json(&["capabilities", "--json"], &[]);
    let selected = report["selected"].as_u64().unwrap() as usize;
    for (i, a) in report["adapters"].as_array().unwrap().iter().enumerate() {
        assert_eq!(a["probed"], i == selected);
        assert_eq!(a["kernels"].is_null(), i != selected);
    }
    // The default pick on this machine: lavapipe Vulkan beats llvmpipe GL.
    assert_eq!(report["adapters"][selected]["backend"], "vulkan");
}

#[test]
fn adapter_selection_by_index_backend_and_name() {
    let by_backend = json(&["--adapter", "gl", "capabilities", "--json"], &[]);
    let gl_index = by_backend["selected"].as_u64().unwrap();
    assert_eq!(by_backend["adapters"][gl_index as usize]["backend"], "gl");
    let by_index = json(
        &["capabilities", "--json", "--adapter", &gl_index.to_string()],
        &[],
    );
    assert_eq!(by_index["selected"], gl_index);
    let by_env = json(&["capabilities", "--json"], &[("WGLLM_ADAPTER", "GL")]);
    assert_eq!(by_env["selected"], gl_index);
    let by_name = json(&["capabilities", "--json", "--adapter", "llvmpipe"], &[]);
    let i = by_name["selected"].as_u64().unwrap() as usize;
    assert!(by_name["adapters"][i]["name"]
        .as_str()
        .unwrap()
        .contains("llvmpipe"));
}

#[test]
fn a_selector_that_matches_nothing_lists_what_exists() {
    let out = wgllm(&["--adapter", "radeon", "capabilities"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("no adapter matches 'radeon'")
            && err.contains("0: ")
            && err.contains("(vulkan)"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    let out = wgllm(&["--adapter", "99", "capabilities"], &[]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn no_adapter_is_a_clear_error() {
    // Only the Metal backend on Linux: wgpu finds nothing.
    let out = wgllm(&["capabilities"], &[("WGPU_BACKEND", "metal")]);
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(
        err.contains("no GPU adapter") && err.contains("apt-get install -y mesa-vulkan-drivers"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn human_output_has_summary_lines_verdict_matrix_and_legend() {
    let out = wgllm(&["capabilities", "--all"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines().filter(|l| l.contains("| f16: ")).count() >= 2,
        "{text}"
    );
    assert!(
        text.contains("Verdict: decode (gemv): native for f32"),
        "{text}"
    );
    assert!(
        text.contains("Kernel paths") && text.contains("gemv (decode)") && text.contains("Legend:")
    );
    assert!(text.contains("Driver self-test:") && text.contains("Driver workarounds:"));
}

#[test]
fn a_forced_driver_failure_is_listed_as_a_workaround() {
    let out = wgllm(
        &["--adapter", "vulkan", "capabilities"],
        &[
            ("WGLLM_SELFTEST_FAIL", "unpack2x16_float_hi"),
            ("WGLLM_DISABLE", "f16"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("unpack2x16float(x).y is wrong on this driver"),
        "{text}"
    );
    assert!(text.contains("f16 disabled by WGLLM_DISABLE"), "{text}");
    assert!(text.contains("WGLLM_DISABLE=f16"), "{text}");
}

#[test]
fn bad_switches_and_unknown_forced_failures_are_input_errors() {
    let out = wgllm(&["capabilities"], &[("WGLLM_DISABLE", "f16,warp")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("unknown switch 'warp'"));
}

#[test]
fn device_lost_exits_cleanly_with_the_device_code() {
    let out = wgllm(&["capabilities", "--simulate-device-lost"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("device was lost"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
}

/// Asserts that a `capabilities --json` report matches assets/capabilities.schema.json.
fn assert_matches_capabilities_schema(report: &Value) {
    let schema: Value = serde_json::from_str(include_str!("../assets/capabilities.schema.json"))
        .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}");
}

#[test]
fn measure_reports_bandwidth_and_fma_throughput() {
    let report = json(
        &["--adapter", "vulkan", "capabilities", "--json", "--measure"],
        &[],
    );
    // The measurements too match the published schema.
    assert_matches_capabilities_schema(&report);
    let a = &report["adapters"][report["selected"].as_u64().unwrap() as usize];
    let m = &a["measurements"];
    assert!(m["stream_read"]["gb_per_s"].as_f64().unwrap() > 0.1, "{m}");
    assert!(m["fma_f32"]["gflop_per_s"].as_f64().unwrap() > 0.1, "{m}");
    // lavapipe has native f16, so its f16 FMA rate is measured too.
    assert!(m["fma_f16"]["gflop_per_s"].as_f64().unwrap() > 0.1, "{m}");
    // An empty dispatch takes some time, and far less than a second.
    for k in ["dependent_seconds", "independent_seconds"] {
        let s = m["dispatch_floor"][k].as_f64().unwrap();
        assert!(s > 0.0 && s < 0.1, "{k}: {m}");
    }
}

fn fixture(rel: &str) -> String {
    format!("{}/assets/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn sparse_safetensors(tag: &str, rows: u64, cols: u64) -> String {
    let dir = std::env::temp_dir().join(format!("wgllm-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("model.safetensors");
    common::sparse_safetensors(&p, "big.weight", "F16", 2, rows, cols);
    p.display().to_string()
}

#[test]
fn inspect_gives_the_three_part_verdict_per_adapter() {
    let vk = json(
        &[
            "--adapter",
            "vulkan",
            "inspect",
            &fixture("tiny-llama"),
            "--json",
        ],
        &[],
    );
    // An f16 model: native unless the autotune measured lavapipe's f16 slower than f32.
    let outcome = &vk["verdict"]["outcome"];
    assert!(
        outcome == "runs_natively"
            || (outcome == "runs_with_fallbacks"
                && vk["verdict"].to_string().contains("measured slower")),
        "{}",
        vk["verdict"]
    );
    assert_eq!(vk["format"], "safetensors");
    assert_eq!(
        vk["verdict"]["loader"]["config_parameters"],
        vk["parameters"]
    );
    assert_eq!(vk["verdict"]["memory"]["fits"], true);
    let gl = json(
        &[
            "--adapter",
            "gl",
            "inspect",
            &fixture("tiny-llama-sharded"),
            "--json",
        ],
        &[],
    );
    assert_eq!(gl["verdict"]["outcome"], "runs_with_fallbacks");
    assert_eq!(gl["files"].as_array().unwrap().len(), 2);
    assert!(gl["verdict"]["summary"].as_str().unwrap().contains("f16"));
    // Memory on GL is unknown, and says so rather than guessing.
    assert!(gl["verdict"]["memory"]["fits"].is_null());

    // A GGUF of q8_0 / q4_0 / q4_1 matrices: every dtype has a decode kernel now.
    let g = json(
        &[
            "--adapter",
            "vulkan",
            "inspect",
            &fixture("tiny-llama.gguf"),
            "--json",
        ],
        &[],
    );
    // Native throughout, except f16 where the autotune measured lavapipe's f16 slower.
    let outcome = &g["verdict"]["outcome"];
    assert!(
        outcome == "runs_natively"
            || (outcome == "runs_with_fallbacks"
                && g["verdict"]["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("runs with fallbacks: f16 (")
                && g["verdict"]["summary"]
                    .as_str()
                    .unwrap()
                    .contains("measured slower")
                && !g["verdict"]["summary"].as_str().unwrap().contains("; q")),
        "{}",
        g["verdict"]["summary"]
    );
    let dtypes: Vec<&str> = g["verdict"]["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["dtype"].as_str().unwrap())
        .collect();
    assert_eq!(dtypes, ["f16", "q8_0", "q4_0", "q4_1"]);
    // A file with dtypes that have no kernel: cannot run, with a conversion suggested.
    let out = wgllm(
        &["--adapter", "vulkan", "inspect", &fixture("all-types.gguf")],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Verdict on llvmpipe"), "{text}");
    assert!(
        text.contains("cannot run: architecture 'fixture' is not in the Llama family"),
        "{text}"
    );
    assert!(
        text.contains("no GEMV kernel for f64 (not implemented yet)"),
        "{text}"
    );
    assert!(
        text.contains("weights to q4_0, which runs natively here"),
        "{text}"
    );
    let text = stdout(&wgllm(
        &[
            "--adapter",
            "vulkan",
            "inspect",
            &fixture("tiny-llama.gguf"),
        ],
        &[],
    ));
    assert!(
        text.contains("parameter count matches the config"),
        "{text}"
    );
}

#[test]
fn inspect_lists_tensors_collapsing_identical_layers() {
    let out = wgllm(
        &["inspect", &fixture("tiny-llama"), "--tensors", "--no-gpu"],
        &[],
    );
    let text = stdout(&out);
    assert!(
        text.contains("layer 0") && text.contains("… layer 1 identical to layer 0"),
        "{text}"
    );
    let down = text
        .lines()
        .find(|l| l.contains("model.layers.0.mlp.down_proj.weight"))
        .expect("down_proj listed");
    assert!(
        down.contains(" f16 ") && down.contains("[64, 128]") && down.contains("16.0 KiB"),
        "{down}"
    );
    let all = stdout(&wgllm(
        &[
            "inspect",
            &fixture("tiny-llama"),
            "--tensors",
            "--all-layers",
            "--no-gpu",
        ],
        &[],
    ));
    assert!(all.contains("model.layers.1.mlp.down_proj.weight"), "{all}");
}

#[test]
fn inspect_reports_binding_splits_and_buffer_limits_on_sparse_files() {
    // 200 MiB of f16: over lavapipe's 128 MiB binding limit, under its 2 GiB buffer limit.
    let p = sparse_safetensors("split", 100, 1 << 20);
    let r = json(&["--adapter", "vulkan", "inspect", &p, "--json"], &[]);
    let m = &r["verdict"]["memory"];
    let split = &m["split_across_bindings"][0];
    assert_eq!(split["name"], "big.weight");
    assert_eq!(split["bindings"], 2, "{m}");
    assert!(m["over_max_buffer"].as_array().unwrap().is_empty());
    assert_eq!(r["verdict"]["outcome"], "cannot_run");
    assert!(r["verdict"]["summary"]
        .as_str()
        .unwrap()
        .contains("split across bindings"));
    // 20 GiB of f16 in one tensor: over max_buffer_size too.
    let p = sparse_safetensors("huge", 10_240, 1 << 20);
    let r = json(&["--adapter", "vulkan", "inspect", &p, "--json"], &[]);
    assert_eq!(
        r["verdict"]["memory"]["over_max_buffer"][0]["name"],
        "big.weight"
    );
    assert_eq!(r["verdict"]["memory"]["fits"], false);
}

#[test]
fn inspect_bad_input_is_a_clear_error_with_the_input_exit_code() {
    let dir = std::env::temp_dir().join(format!("wgllm-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.gguf");
    std::fs::write(&p, b"GGUF\x09\x00\x00\x00").unwrap();
    let out = wgllm(&["inspect", p.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("bad.gguf") && err.contains("GGUF version 9"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    let out = wgllm(&["inspect", "/nonexistent/model.gguf"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("/nonexistent/model.gguf"));
}

#[test]
fn dump_writes_little_endian_f32_equal_on_gpu_and_cpu() {
    let dir = std::env::temp_dir().join(format!("wgllm-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gpu_out, cpu_out) = (dir.join("gpu.f32"), dir.join("cpu.f32"));
    let model = fixture("tiny-llama.gguf");
    for adapter in ["vulkan", "gl"] {
        let r = json(
            &[
                "--adapter",
                adapter,
                "dump",
                &model,
                "blk.1.ffn_gate.weight",
                "--out",
                gpu_out.to_str().unwrap(),
                "--json",
            ],
            &[],
        );
        assert_eq!(r["dequantized_by"], "dequantize_q4_0");
        assert_eq!(r["stats"]["count"], 512 * 256);
        assert_eq!(r["stats"]["nan"], 0);
        let c = json(
            &[
                "dump",
                &model,
                "blk.1.ffn_gate.weight",
                "--out",
                cpu_out.to_str().unwrap(),
                "--cpu",
                "--json",
            ],
            &[],
        );
        assert_eq!(c["dequantized_by"], "cpu-reference");
        let (g, c) = (
            std::fs::read(&gpu_out).unwrap(),
            std::fs::read(&cpu_out).unwrap(),
        );
        assert_eq!(g.len(), 512 * 256 * 4);
        assert!(g == c, "{adapter}: GPU and CPU dumps differ");
    }
    let out = wgllm(&["dump", &model, "no.such.tensor"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no tensor 'no.such.tensor'"));
    let out = wgllm(
        &["dump", &fixture("all-types.gguf"), "iq2_xxs", "--cpu"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("cannot dequantize"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_model_times_a_pass_over_every_matrix_of_the_file() {
    for (model, op) in [("tiny-llama", "gemv"), ("tiny-llama.gguf", "gemm")] {
        let path = fixture(model);
        let report = json(
            &[
                "--adapter",
                "vulkan",
                "bench",
                "--model",
                &path,
                "--op",
                op,
                "--n",
                "4",
                "--json",
            ],
            &[],
        );
        let m = &report["model"];
        // The same matrices `inspect` lists: every 2-D tensor of a dtype with a kernel.
        let inspected = json(&["inspect", &path, "--tensors", "--json"], &[]);
        let matrices: Vec<&Value> = inspected["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["shape"].as_array().unwrap().len() == 2)
            .collect();
        assert!(!matrices.is_empty());
        let bytes: u64 = matrices.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
        assert_eq!(
            m["matrices"].as_u64().unwrap() as usize,
            matrices.len(),
            "{m}"
        );
        assert_eq!(m["weight_bytes"].as_u64().unwrap(), bytes, "{m}");
        let by_dtype: u64 = m["by_dtype"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(by_dtype, bytes);
        // Each dtype names the kernels its matrices ran, as that op over that dtype.
        for d in m["by_dtype"].as_array().unwrap() {
            let prefix = format!("{op}_{}_", d["dtype"].as_str().unwrap());
            for kernel in d["kernel"].as_str().unwrap().split(", ") {
                assert!(kernel.starts_with(&prefix), "{d}");
            }
        }
        assert_eq!(m["op"], op);
        assert_eq!(m["n"], if op == "gemv" { 1 } else { 4 });
        let seconds = m["seconds"].as_f64().unwrap();
        assert!(seconds > 0.0);
        let bound = m["tokens_per_s_bound"].as_f64().unwrap();
        assert!(
            (bound * seconds - m["n"].as_f64().unwrap()).abs() < 1e-6,
            "{m}"
        );
        let ratio = if op == "gemv" {
            &m["ratio_to_stream_read"]
        } else {
            &m["ratio_to_fma_peak"]
        };
        assert!(ratio.as_f64().unwrap() > 0.0, "{m}");
    }
}

#[test]
fn bench_model_too_big_for_the_device_is_a_clear_device_error() {
    // lavapipe reports 2 GiB of device-local memory; this sparse file holds 3 GiB of f16.
    let path = sparse_safetensors("toobig", 49_152, 32_768);
    let out = wgllm(&["--adapter", "vulkan", "bench", "--model", &path], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the weights need 3221225472 bytes (3.00 GiB)"),
        "{err}"
    );
    assert!(err.contains("wgllm plan"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn bench_can_time_repetitions_with_independent_outputs() {
    let r = json(
        &[
            "--adapter",
            "vulkan",
            "bench",
            "--dtype",
            "q8_0",
            "--shape",
            "64x256",
            "--selected-only",
            "--independent-outputs",
            "--json",
        ],
        &[],
    );
    assert_eq!(r["independent_outputs"], true, "{r}");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{r}");
    assert!(rows[0]["seconds"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn bench_measures_f16_accumulation_where_f16_is_usable() {
    let r = json(
        &[
            "--adapter",
            "vulkan",
            "bench",
            "--dtype",
            "f16",
            "--shape",
            "64x256",
            "--accum",
            "f16",
            "--json",
        ],
        &[],
    );
    let rows = r["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let k = row["kernel"].as_str().unwrap();
        assert!(k.contains("_f16acc_") && !k.contains("subgroup"), "{k}");
        // Each ratio divides by the limit timed next to its kernel, carried with the row.
        let limit = row["limit"].as_f64().unwrap();
        let ratio = row["ratio_to_stream_read"].as_f64().unwrap();
        let gbs = row["weight_gb_per_s"].as_f64().unwrap();
        assert!(limit > 0.0, "{row}");
        assert!(
            (ratio - gbs / limit).abs() <= 1e-9 * ratio.max(1.0),
            "{row}"
        );
        // Kernels are timed by GPU timestamps (lavapipe has them inside encoders); the host's
        // clock around the same submissions can only add to that time.
        let (gpu_s, wall_s) = (
            row["seconds"].as_f64().unwrap(),
            row["wall_seconds"].as_f64().unwrap(),
        );
        assert!(gpu_s > 0.0 && gpu_s <= wall_s * 1.01, "{row}");
    }
    assert_eq!(r["clock"], "gpu-timestamps", "{r}");
    // The dispatch floor is measured once per run, and a row's time includes it.
    let floor = r["dispatch_floor"]["dependent_seconds"].as_f64().unwrap();
    assert!(floor > 0.0, "{r}");
    let fastest = rows
        .iter()
        .map(|row| row["seconds"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(
        floor < 10.0 * fastest,
        "floor {floor} s, fastest row {fastest} s"
    );
    let out = wgllm(&["--adapter", "gl", "bench", "--accum", "f16"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("lacks shader-f16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_autotune_runs_once_per_adapter_then_comes_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("wgllm-tune-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.display().to_string();
    let env = [("WGLLM_CACHE_DIR", cache.as_str())];
    // dump selects no matmul kernel: on a fresh cache it dequantizes without measuring.
    let dump = wgllm(
        &[
            "--adapter",
            "vulkan",
            "dump",
            &fixture("tiny-llama.gguf"),
            "blk.1.ffn_gate.weight",
        ],
        &env,
    );
    assert!(dump.status.success(), "{}", stderr(&dump));
    assert!(
        !stderr(&dump).contains("measuring kernel layouts"),
        "{}",
        stderr(&dump)
    );
    let first = wgllm(&["--adapter", "vulkan", "capabilities", "--json"], &env);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("measuring kernel layouts"),
        "{}",
        stderr(&first)
    );
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    let second = wgllm(&["--adapter", "vulkan", "capabilities", "--json"], &env);
    assert!(!stderr(&second).contains("measuring kernel layouts"));
    let second: Value = serde_json::from_slice(&second.stdout).unwrap();
    let probed = |v: &Value| {
        v["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["probed"] == true)
            .unwrap()
            .clone()
    };
    let tuning = |v: &Value| probed(v)["tuning"].clone();
    let (a, b) = (tuning(&first), tuning(&second));
    assert_eq!(a["cached"], false);
    assert_eq!(b["cached"], true);
    // The cached answer is the measured one.
    assert_eq!(a["gemv"], b["gemv"]);
    // A run with a path switched off measures without it, under its own key: the next run
    // without the switch still reads its own measurements (those of `first`), int-dot races
    // included. (Keyed by adapter alone, WGLLM_DISABLE=dot4 once made every later run lose
    // the int-dot kernels until the next re-tune.)
    let no_dot4 = wgllm(
        &["--adapter", "vulkan", "capabilities", "--json"],
        &[("WGLLM_DISABLE", "dot4"), env[0]],
    );
    assert!(no_dot4.status.success(), "{}", stderr(&no_dot4));
    assert!(
        stderr(&no_dot4).contains("measuring kernel layouts"),
        "{}",
        stderr(&no_dot4)
    );
    let third = wgllm(&["--adapter", "vulkan", "capabilities", "--json"], &env);
    assert!(!stderr(&third).contains("measuring kernel layouts"));
    let third: Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(tuning(&third), tuning(&second));
    for dtype in ["q8_0", "q4_k"] {
        assert_eq!(
            kernel(&probed(&third), "gemv", dtype)["kernel"],
            kernel(&probed(&first), "gemv", dtype)["kernel"]
        );
    }
    // WGLLM_TUNE=off keeps the heuristics and reports no measurements.
    let off = json(
        &["--adapter", "vulkan", "capabilities", "--json"],
        &[("WGLLM_TUNE", "off"), env[0]],
    );
    assert!(tuning(&off).is_null());
    let _ = std::fs::remove_dir_all(&dir);
}
