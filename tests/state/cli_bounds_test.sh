#!/bin/bash
# Numeric CLI flags are bounded (a clear usage error, exit 2, no crash), and
# `kiln runs` on a store path that is a file or does not exist is an error
# (exit 1), not an empty history.
set -u
kiln="$TEST_SRCDIR/kiln/kiln"
tmp="$TEST_TMPDIR/cli_bounds"
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0

# expect RC SUBSTRING -- ARGS...
expect() {
  local want_rc="$1" want="$2" rc out
  shift 3
  out=$(timeout 20 "$kiln" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want_rc" ] || [[ "$out" != *"$want"* ]]; then
    echo "FAIL kiln $*: rc=$rc (want $want_rc)"
    echo "$out" | head -3
    echo "     want: $want"
    fail=1
  else
    echo "ok   kiln $*"
  fi
}

cat >"$tmp/p.yaml" <<'YAML'
name: bounds
tasks:
  - name: a
    run: {command: ["true"]}
YAML

expect 2 "--jobs must be a whole number from 1 to 256" -- \
  run --store "$tmp/store" --jobs 1000000 "$tmp/p.yaml"
expect 2 "--jobs must be a whole number from 1 to 256" -- \
  run --store "$tmp/store" --jobs 0 "$tmp/p.yaml"
expect 2 "--jobs must be a whole number" -- \
  run --store "$tmp/store" --jobs 99999999999999999999 "$tmp/p.yaml"
expect 2 "--limit must be a whole number from 1 to 100000" -- \
  runs --store "$tmp" --limit 2147483648
expect 2 "--keep-days must be a whole number from 0 to 36500" -- \
  cache gc --store "$tmp/store" --keep-days 99999999
expect 2 "--max-size must be a size" -- \
  cache gc --store "$tmp/store" --max-size 99999999999T

touch "$tmp/a-file"
expect 1 "is not a directory" -- runs --store "$tmp/a-file"
expect 1 "No such file or directory" -- runs --store "$tmp/nowhere"
expect 1 "is not a directory" -- logs RUN --store "$tmp/a-file"
# An existing, empty store directory has no runs: not an error.
mkdir -p "$tmp/empty"
expect 0 "no runs recorded" -- runs --store "$tmp/empty"

exit $fail
