#!/usr/bin/env bash
# Device check for a lent GPU machine (no Rust toolchain there): runs binaries built here and
# carried in .devbin/ (wgllm, and the gemv test binary), with the Vulkan loader from .gl/.
#   capabilities (text + JSON with --measure), every GEMV variant against the reference, and
#   the GEMV benchmark (all variants, then the fallbacks with f16 and subgroups disabled).
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export WGLLM_CACHE_DIR=/tmp/wgllm-cache
nvidia-smi -L 2>&1 | head -2
B=.devbin
if ! $B/wgllm capabilities --json 2>/dev/null | grep -qi nvidia; then
    echo "no NVIDIA adapter through the default ICD search; pointing the loader at the driver"
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
$B/wgllm capabilities --all > "$OUT/capabilities.txt" 2>&1; echo "capabilities rc=$?"
$B/wgllm capabilities --json --measure > "$OUT/capabilities.json" 2> "$OUT/measure.err"; echo "measure rc=$?"
WGLLM_DISABLE=f16,subgroup $B/wgllm capabilities --json --measure > "$OUT/capabilities_disabled.json" 2>/dev/null
$B/gemv --test-threads=1 > "$OUT/gemv.txt" 2>&1; echo "gemv tests rc=$?"
$B/wgllm bench > "$OUT/bench.txt" 2>/dev/null; echo "bench rc=$?"
WGLLM_DISABLE=f16,subgroup $B/wgllm bench --selected-only > "$OUT/bench_disabled.txt" 2>/dev/null
head -c 6000 "$OUT/capabilities.txt"
grep -E "gb_per_s|gflop_per_s" "$OUT/capabilities.json"
grep -E "^test |test result" "$OUT/gemv.txt"
cat "$OUT/bench.txt" "$OUT/bench_disabled.txt"
