#!/bin/sh
# Builds and runs the image-mode sandbox start benchmark (optimized),
# writing bench/results/image_start.json. Needs root and crun.
# Usage: bench/sandbox/run_image_start.sh [--n=100]
set -eu
cd "$(dirname "$0")/../.."
OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"
bazel --output_base="$OUTPUT_BASE" build -c opt //bench/sandbox:image_start
BIN="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin)/bench/sandbox/image_start"
status=0
# crun refuses hosts with cgroups in hybrid mode: hide the host's cgroup
# mounts from both sides (neither uses cgroups here).
unshare -m --propagation private sh -c \
  'mount -t tmpfs kiln-bench /sys/fs/cgroup && exec "$0" "$@"' \
  "$BIN" --out=bench/results/image_start.json "$@" || status=$?
bazel --output_base="$OUTPUT_BASE" shutdown
exit $status
