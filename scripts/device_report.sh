#!/usr/bin/env bash
# Renders what scripts/device_check.sh brought back (results.tgz, or a folder it was unpacked
# into) as the tables README's GPU sections use, so a session with little time left after its
# device run can read the run at once. Needs jq (a developer tool here, not a dependency).
#   bash scripts/device_report.sh /work/.device/N/results.tgz
set -euo pipefail
src=${1:?usage: device_report.sh RESULTS.tgz|DIR}
if [ -f "$src" ]; then
    dir=$(mktemp -d)
    tar xzf "$src" -C "$dir"
else
    dir=$src
fi
has() { [ -s "$dir/$1" ]; }

echo "## Limits"
if has capabilities.json; then
    jq -r '.adapters[] | select(.measurements != null) | .measurements |
        "streaming read \(.stream_read.gb_per_s | floor) GB/s, f32 FMA \(.fma_f32.gflop_per_s | floor) GFLOP/s" +
        (if .dispatch_floor then
            ", empty dispatch \(.dispatch_floor.dependent_seconds * 1e7 | floor / 10) µs after a barrier, " +
            "\(.dispatch_floor.independent_seconds * 1e7 | floor / 10) µs without"
         else " (no dispatch floor: a build before session 11)" end)' "$dir/capabilities.json"
fi

echo
echo "## Tests"
has tests.txt && grep -hE "^test .*FAILED|test result" "$dir/tests.txt" || echo "(no tests.txt)"

if has bench_gemv.json; then
    echo
    echo "## GEMV, selected kernels (GPU time, host time, share of the streaming-read limit)"
    echo
    echo "| dtype | kernel | shape | time | host-timed | of limit |"
    echo "|---|---|---|---|---|---|"
    jq -r '.rows[] | select(.selected) |
        "| \(.dtype) | \(.kernel) | \(.rows)×\(.cols) | \(.seconds * 1e7 | floor / 10) µs | " +
        "\(.wall_seconds * 1e6 | floor) µs | \(.ratio_to_stream_read * 100 | floor)% |"' "$dir/bench_gemv.json"
    echo
    echo "## GEMV, the fastest three kernels per dtype and shape"
    jq -r '.rows | group_by(.dtype, .rows)[] | sort_by(.seconds)[:3][] |
        "\(.dtype) \(.rows)×\(.cols) \(.kernel)\(if .selected then " *" else "" end) \(.seconds * 1e7 | floor / 10) µs \(.ratio_to_stream_read * 100 | floor)%"' \
        "$dir/bench_gemv.json"
fi

for f in bench_gemv_1024.json bench_floor.json; do
    has "$f" || continue
    echo
    echo "## $f (fastest three per dtype and shape; * = selected)"
    jq -r '.rows | group_by(.dtype, .rows)[] | sort_by(.seconds)[:3][] |
        "\(.dtype) \(.rows)×\(.cols) \(.kernel)\(if .selected then " *" else "" end) \(.seconds * 1e7 | floor / 10) µs \(.ratio_to_stream_read * 100 | floor)%"' \
        "$dir/$f"
done

for f in bench_gemm.json bench_gemm_n2.json bench_gemm_n32.json; do
    has "$f" || continue
    echo
    echo "## $f: per dtype the selected kernel and the fastest of any precision (f16 sums included)"
    jq -r '.rows | group_by(.dtype)[] |
        (map(select(.selected))[0]) as $s | (sort_by(.seconds)[0]) as $b |
        "\($b.dtype) n=\($b.n): " +
        (if $s == null then "no row marked selected" else
            "selected \($s.kernel) \($s.seconds * 1e6 | floor) µs \($s.gflop_per_s | floor) GFLOP/s" end) +
        (if $s == null or $b.kernel != $s.kernel then
            "; fastest \($b.kernel) \($b.seconds * 1e6 | floor) µs \($b.gflop_per_s | floor) GFLOP/s"
         else " (the fastest)" end)' "$dir/$f"
done

if has capabilities.txt; then
    echo
    echo "## Autotune"
    sed -n '/Autotune/,/Driver self-test/p' "$dir/capabilities.txt"
fi
