#!/bin/sh
# B4-B6 in one command: builds kiln's storage verbs (-c opt, the binary
# //bench/storage:kiln_storage) unless $KILN names a kiln binary,
# then runs bench/storage/run.py. Extra arguments go to run.py
# (--rounds N, --workdir DIR, --tree DIR). BAZEL_STARTUP passes Bazel
# startup options, e.g. BAZEL_STARTUP="--output_base=$HOME/.cache/kiln/ob-bench".
#
# BEFORE and AFTER in the same run: KILN_BEFORE=path/to/kiln runs that binary
# interleaved with the AFTER one; or BEFORE_REF=main (any git ref) builds it
# from a temporary detached worktree of that ref (same disk cache) first.
set -eu
cd "$(dirname "$0")/../.."
COPY="$(mktemp -d)"
BEFORE_TREE=""
cleanup() {
  rm -rf "$COPY"
  if [ -n "$BEFORE_TREE" ]; then
    git worktree remove --force "$BEFORE_TREE" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT INT TERM

build_into() {  # build_into DIR NAME: builds kiln_storage in DIR, copies it
  (cd "$1" &&
    bazel ${BAZEL_STARTUP:-} build -c opt //bench/storage:kiln_storage \
      >/dev/null 2>&1 &&
    cp "$(bazel ${BAZEL_STARTUP:-} info -c opt bazel-bin 2>/dev/null)/bench/storage/kiln_storage" \
      "$COPY/$2" &&
    bazel ${BAZEL_STARTUP:-} shutdown >/dev/null 2>&1) ||
    { echo "bazel build -c opt //bench/storage:kiln_storage failed in $1" >&2
      exit 1; }
}

if [ -z "${KILN:-}" ]; then
  build_into . kiln
  KILN="$COPY/kiln"
fi
if [ -z "${KILN_BEFORE:-}" ] && [ -n "${BEFORE_REF:-}" ]; then
  BEFORE_TREE="$COPY/before-src"
  git worktree add --detach "$BEFORE_TREE" "$BEFORE_REF" >/dev/null
  build_into "$BEFORE_TREE" kiln-before
  KILN_BEFORE="$COPY/kiln-before"
fi
if [ -n "${KILN_BEFORE:-}" ]; then
  python3 bench/storage/run.py --kiln "$KILN" --kiln-before "$KILN_BEFORE" "$@"
else
  python3 bench/storage/run.py --kiln "$KILN" "$@"
fi
