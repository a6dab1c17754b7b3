#!/bin/sh
# Builds kiln and B9 (optimized) and runs B9, writing bench/results/b9.json.
# Usage: bench/service/run_b9.sh [--clients=200] [--runs=1000] [--blob_mb=256]
set -eu
cd "$(dirname "$0")/../.."
OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"
bazel --output_base="$OUTPUT_BASE" build -c opt //:kiln //bench/service:b9
BIN="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin)"
status=0
timeout 600 "$BIN/bench/service/b9" --kiln="$BIN/kiln" \
  --out=bench/results/b9.json "$@" || status=$?
bazel --output_base="$OUTPUT_BASE" shutdown
exit $status
