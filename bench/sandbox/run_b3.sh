#!/bin/sh
# Builds and runs benchmark B3 (optimized), writing bench/results/b3.json.
# BEFORE and AFTER in the same run: the BEFORE tree (git ref BEFORE_REF,
# default main; BEFORE_REF=none skips it) is checked out in a temporary
# worktree, this tree's bench/sandbox/b3.cc is built against its executor
# (with KILN_B3_BASELINE: no option the BEFORE executor lacks), and that
# binary runs as a --serve child timed in the same interleaved rounds.
# Usage: [BEFORE_REF=main] bench/sandbox/run_b3.sh [--n=200]
set -eu
cd "$(dirname "$0")/../.."
OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"
BEFORE_REF="${BEFORE_REF:-main}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-b3.XXXXXX")
cleanup() {
  if [ -d "$tmp/before" ]; then
    (cd "$tmp/before" && bazel --output_base="$OUTPUT_BASE-before" shutdown) || true
    git worktree remove --force "$tmp/before" || true
  fi
  bazel --output_base="$OUTPUT_BASE" shutdown || true
  rm -rf "$tmp"
}
trap cleanup EXIT

before_args=""
if [ "$BEFORE_REF" != none ]; then
  git worktree add --quiet --detach "$tmp/before" "$BEFORE_REF"
  cp bench/sandbox/b3.cc bench/sandbox/BUILD.bazel "$tmp/before/bench/sandbox/"
  (cd "$tmp/before" &&
    bazel --output_base="$OUTPUT_BASE-before" build -c opt \
      '--per_file_copt=bench/sandbox/b3\.cc@-DKILN_B3_BASELINE' \
      //bench/sandbox:b3)
  before_bin="$(cd "$tmp/before" &&
    bazel --output_base="$OUTPUT_BASE-before" info -c opt bazel-bin)/bench/sandbox/b3"
  before_args="--before=$before_bin"
  echo "BEFORE: $BEFORE_REF ($(git rev-parse --short "$BEFORE_REF")), AFTER: $(git rev-parse --short HEAD) + working tree"
fi
bazel --output_base="$OUTPUT_BASE" build -c opt //bench/sandbox:b3
BIN="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin)/bench/sandbox/b3"
status=0
# shellcheck disable=SC2086
"$BIN" --out=bench/results/b3.json $before_args "$@" || status=$?
exit $status
