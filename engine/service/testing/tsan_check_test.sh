#!/bin/bash
# Proves the TSan pass can fail where a server library runs kiln code:
# racy_service (gRPC) and racy_http (cpp-httplib) run a deliberately racy
# handler on the library's threads, with kiln's suppressions linked in, and
# ThreadSanitizer must report the race in the planted function (RACY_FN,
# default RacyIncrement); the same server with a locked handler must run
# clean.
# Runs only under --config=tsan (tag tsan-only); elsewhere it fails, so it
# cannot pass without checking anything.
# usage: tsan_check_test.sh RACY_BINARY [RACY_FN]
set -u
bin=$1
racy_fn=${2:-RacyIncrement}
if [ -z "${TEST_TMPDIR:-}" ]; then  # outside bazel test: a directory of our own
  TEST_TMPDIR=$(mktemp -d)
  own_tmp=1
fi
# racy_service's socket directory: short (a unix socket path holds at most
# 107 bytes), and removed here (TSan ends racy_service at its race).
KILN_RACE_DIR=$(mktemp -d /tmp/kiln-race.XXXXXX)
export KILN_RACE_DIR
trap 'rm -rf "$KILN_RACE_DIR"; if [ -n "${own_tmp:-}" ]; then rm -rf "$TEST_TMPDIR"; fi' EXIT
out=$TEST_TMPDIR
export TSAN_OPTIONS="halt_on_error=1:exitcode=66"

"$bin" --locked >"$out/locked.out" 2>"$out/locked.err"
rc=$?
if ! grep -qx 'tsan=1' "$out/locked.out"; then
  echo "FAIL: $bin is not built with ThreadSanitizer; run with --config=tsan"
  exit 1
fi
if [ $rc -ne 0 ] || grep -q 'ThreadSanitizer' "$out/locked.err"; then
  echo "FAIL: the locked handler did not run clean (exit $rc):"
  head -60 "$out/locked.err"
  exit 1
fi
echo "locked handler: clean ($(tail -1 "$out/locked.out"))"

"$bin" >"$out/racy.out" 2>"$out/racy.err"
rc=$?
if [ $rc -ne 66 ] || ! grep -q 'WARNING: ThreadSanitizer: data race' "$out/racy.err" ||
    ! grep -q "$racy_fn" "$out/racy.err"; then
  echo "FAIL: the planted race in $racy_fn was not reported (exit $rc):"
  head -60 "$out/racy.err"
  exit 1
fi
echo "racy handler: race reported, as it must be"
