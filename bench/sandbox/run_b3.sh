#!/bin/sh
# Builds and runs benchmark B3 (optimized), writing bench/results/b3.json.
# Usage: bench/sandbox/run_b3.sh [--n=200]
set -eu
cd "$(dirname "$0")/../.."
OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"
bazel --output_base="$OUTPUT_BASE" build -c opt //bench/sandbox:b3
BIN="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin)/bench/sandbox/b3"
status=0
"$BIN" --out=bench/results/b3.json "$@" || status=$?
bazel --output_base="$OUTPUT_BASE" shutdown
exit $status
