#!/bin/sh
# Builds and runs benchmark B7 (push part, optimized), writing
# bench/results/b7_push.json. Usage: bench/registry/run_b7_push.sh [--mib=200]
set -eu
cd "$(dirname "$0")/../.."
OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"
bazel --output_base="$OUTPUT_BASE" build -c opt //bench/registry:b7_push
BIN="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin)/bench/registry/b7_push"
status=0
"$BIN" --out=bench/results/b7_push.json "$@" || status=$?
bazel --output_base="$OUTPUT_BASE" shutdown
exit $status
