#!/usr/bin/env bash
# Device check for a lent GPU machine (no Rust toolchain there): runs binaries built here and
# carried in .devbin/ (wgllm, and the gemv/gemm/dequant test binaries), with the Vulkan loader
# from .gl/. Build them first:
#   cargo build --release && cargo test --no-run, then copy target/release/wgllm and the
#   target/debug/deps/{gemv,gemm,dequant}-* binaries into .devbin/ (strip them).
# Every step has its own time limit, so one hang cannot eat the lease; everything lands in
# $OUT/results.tgz (the device tool returns at most 8 files; bench results are JSON: render
# them here with `jq`), packed after each step, so a run cut short still returns what it did.
# The tests run with WGLLM_TUNE=off: they open the adapter under several WGLLM_DISABLE sets,
# and on a GPU each set's autotune takes minutes (the GEMM race at 4096x4096 x 512).
# The test binaries read assets/fixtures through CARGO_MANIFEST_DIR, which is this checkout's
# path here; on the device the tree sits elsewhere, so the fixtures path is linked.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
OUT=/tmp/results; rm -rf "$OUT"; mkdir -p "$OUT"
export WGLLM_CACHE_DIR=/tmp/wgllm-cache
mkdir -p /work/main/assets 2>/dev/null && ln -sfn "$PWD/assets/fixtures" /work/main/assets/fixtures
nvidia-smi -L 2>&1 | head -1
B=.devbin
T="timeout ${STEP_S:-150}"
if ! $B/wgllm capabilities --json 2>/dev/null | grep -qi nvidia; then
    echo "no NVIDIA adapter through the default ICD search; pointing the loader at the driver"
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
exec 3>&1  # step reports go to the real stdout even when the step's output is redirected
step() {
    local name=$1 s=$SECONDS; shift; "$@"; echo "$name: rc=$? in $((SECONDS - s)) s" >&3
    tar czf "$FINAL/results.tgz" -C "$OUT" .
}
step measure $T $B/wgllm capabilities --json --measure > "$OUT/capabilities.json" 2> "$OUT/log.txt"
$B/wgllm capabilities > "$OUT/capabilities.txt" 2>>"$OUT/log.txt"
# GEMM=0 skips the GEMM tests and benchmark (when only GEMV changed); GEMM_TESTS=0 the tests.
for t in dequant gemv $([ "${GEMM:-1}" = 0 ] || [ "${GEMM_TESTS:-1}" = 0 ] || echo gemm); do
    WGLLM_TUNE=off step "$t tests" $T $B/$t --test-threads=4 >> "$OUT/tests.txt" 2>&1
done
step "gemv bench" $T $B/wgllm bench --json > "$OUT/bench_gemv.json" 2>>"$OUT/log.txt"
[ "${GEMM:-1}" = 0 ] || step "gemm bench" $T $B/wgllm bench --op gemm --shape 4096x4096 --n 512 --json > "$OUT/bench_gemm.json" 2>>"$OUT/log.txt"
# Prefill of a few tokens: GEMM at n = 2 and 32 (the tiles compute 64- or 128-wide in n
# whatever n is; compare with n GEMVs from bench_gemv.json).
[ "${GEMM:-1}" = 0 ] || for n in 2 32; do
    step "gemm bench n=$n" $T $B/wgllm bench --op gemm --dtype f32,f16,q8_0,q4_0,q4_k --shape 4096x4096 --n $n --json > "$OUT/bench_gemm_n$n.json" 2>>"$OUT/log.txt"
done
# The fixed cost per dispatch: the selected f32 and q4_0 GEMVs over growing row counts.
step "floor bench" $T $B/wgllm bench --dtype f32,q4_0 --shape 256x4096,1024x4096,4096x4096,14336x4096 --selected-only --json > "$OUT/bench_floor.json" 2>>"$OUT/log.txt"
# Every layout at a GQA model's K/V projection (1024 rows: Llama-3-8B), where the race's
# 4096- and 14336-row shapes say little: whether few rows want another layout.
step "gemv bench 1024 rows" $T $B/wgllm bench --dtype f32,f16,q8_0,q4_0,q4_k,q6_k --shape 1024x4096 --json > "$OUT/bench_gemv_1024.json" 2>>"$OUT/log.txt"
grep -E "gb_per_s|gflop_per_s|dependent_seconds|independent_seconds" "$OUT/capabilities.json"
grep -hE "^test .*FAILED|panicked|test result" "$OUT/tests.txt"
sed -n '/Autotune/,/Driver self-test/p' "$OUT/capabilities.txt"
tail -5 "$OUT/log.txt"
