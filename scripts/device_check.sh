#!/usr/bin/env bash
# Device check for a lent GPU machine (no Rust toolchain there): runs binaries built here and
# carried in .devbin/ (wgllm, and the gemv/gemm/dequant test binaries), with the Vulkan loader
# from .gl/. Build them first:
#   cargo build --release && cargo test --no-run, then copy target/release/wgllm and the
#   target/debug/deps/{gemv,gemm,dequant}-* binaries into .devbin/ (strip them).
# The test binaries read assets/fixtures through CARGO_MANIFEST_DIR, which is this checkout's
# path here; on the device the tree sits elsewhere, so the fixtures path is linked.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export WGLLM_CACHE_DIR=/tmp/wgllm-cache
mkdir -p /work/main/assets 2>/dev/null && ln -sfn "$PWD/assets/fixtures" /work/main/assets/fixtures
nvidia-smi -L 2>&1 | head -1
B=.devbin
if ! $B/wgllm capabilities --json 2>/dev/null | grep -qi nvidia; then
    echo "no NVIDIA adapter through the default ICD search; pointing the loader at the driver"
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
$B/wgllm capabilities --json --measure > "$OUT/capabilities.json" 2> "$OUT/measure.err"; echo "measure rc=$?"
$B/dequant --test-threads=1 > "$OUT/dequant.txt" 2>&1; echo "dequant tests rc=$?"
$B/gemv --test-threads=1 > "$OUT/gemv.txt" 2>&1; echo "gemv tests rc=$?"
$B/gemm --test-threads=1 > "$OUT/gemm.txt" 2>&1; echo "gemm tests rc=$?"
$B/wgllm bench --dtype f32,f16,bf16 --shape 4096x4096,14336x4096 > "$OUT/bench.txt" 2>/dev/null; echo "bench rc=$?"
$B/wgllm bench --shape 4096x4096 --selected-only --json > "$OUT/bench_all.json" 2>/dev/null
$B/wgllm bench --shape 4096x4096 --selected-only >> "$OUT/bench.txt" 2>/dev/null
$B/wgllm bench --op gemm --shape 4096x4096 --n 512 --selected-only >> "$OUT/bench.txt" 2>/dev/null; echo "gemm bench rc=$?"
$B/wgllm capabilities > "$OUT/capabilities.txt" 2>/dev/null
grep -E "gb_per_s|gflop_per_s" "$OUT/capabilities.json"
grep -hE "^test |test result" "$OUT/dequant.txt" "$OUT/gemv.txt" "$OUT/gemm.txt"
sed -n '/Autotune/,/Driver self-test/p' "$OUT/capabilities.txt"
cat "$OUT/bench.txt"
