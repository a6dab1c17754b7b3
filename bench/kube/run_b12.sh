#!/bin/sh
# Builds B12 (optimized) and runs it, writing bench/results/b12.json.
# Usage: bench/kube/run_b12.sh [--tasks=200] [--concurrency=8]
set -eu
cd "$(dirname "$0")/../.."
OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"
bazel --output_base="$OUTPUT_BASE" build -c opt //bench/kube:b12
BIN="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin)"
status=0
timeout 600 "$BIN/bench/kube/b12" --out=bench/results/b12.json \
  --load="$(uptime)" "$@" || status=$?
bazel --output_base="$OUTPUT_BASE" shutdown
exit $status
