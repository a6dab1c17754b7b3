#!/bin/sh
# B4-B6 in one command: builds kiln's storage verbs (-c opt, the binary
# //bench/storage:kiln_storage) unless $KILN names a kiln binary,
# then runs bench/storage/run.py. Extra arguments go to run.py
# (--rounds N, --workdir DIR). BAZEL_STARTUP passes Bazel startup options,
# e.g. BAZEL_STARTUP="--output_base=$HOME/.cache/kiln/ob-bench".
set -eu
cd "$(dirname "$0")/../.."
if [ -z "${KILN:-}" ]; then
  bazel ${BAZEL_STARTUP:-} build -c opt //bench/storage:kiln_storage >/dev/null 2>&1 ||
    { echo "bazel build -c opt //bench/storage:kiln_storage failed" >&2; exit 1; }
  BIN="$(bazel ${BAZEL_STARTUP:-} info -c opt bazel-bin 2>/dev/null)/bench/storage/kiln_storage"
  bazel ${BAZEL_STARTUP:-} shutdown >/dev/null 2>&1 || true
  COPY="$(mktemp -d)"
  trap 'rm -rf "$COPY"' EXIT INT TERM
  cp "$BIN" "$COPY/kiln"
  KILN="$COPY/kiln"
fi
python3 bench/storage/run.py --kiln "$KILN" "$@"
