#!/bin/bash
# `kiln graph` on the hello example: text order and skip reasons per
# trigger; the dot output is a valid Graphviz graph (checked with `dot` when
# installed); usage errors exit 2.
set -u
root="$TEST_SRCDIR/kiln"
kiln="$root/kiln"
example="$root/examples/hello/pipeline.yaml"
fail=0
expect() {  # DESCRIPTION FILE PATTERN
  grep -qE -- "$3" "$2" || { echo "FAIL $1: no line matching /$3/ in:"; cat "$2"; fail=1; }
}
out="$TEST_TMPDIR/out"

"$kiln" graph "$example" --branch feature/x --message "shipit: try" >"$out" || fail=1
expect "preview runs" "$out" '^deploy-preview \[deploy\] <- manifests-preview$'
expect "stage skipped" "$out" "^deploy-stage .*\(skipped: branch 'feature/x' does not match main\)"
expect "order" "$out" '^build \[run\]$'
[ "$(head -1 "$out")" = "build [run]" ] || { echo "FAIL: build is not first"; fail=1; }
expect "finally" "$out" '^  summary \[run\]$'

"$kiln" graph "$example" --branch main >"$out" || fail=1
expect "preview skipped on main" "$out" "^deploy-preview .*skipped: none holds: event push is not pull_request; branch 'main' does not match !main"
expect "prod runs on main" "$out" '^deploy-prod \[deploy\] <- deploy-stage, manifests-prod$'

"$kiln" graph "$example" --event pull_request --branch main >"$out" || fail=1
expect "preview on PR" "$out" '^deploy-preview \[deploy\] <- manifests-preview$'

"$kiln" graph "$example" --format dot --branch main >"$out" || fail=1
expect "digraph" "$out" '^digraph "hello" \{'
expect "edge" "$out" '^  "image" -> "manifests-stage";'
expect "skipped style" "$out" 'style=dashed, color=grey'
if command -v dot >/dev/null; then
  dot -Tsvg "$out" >"$TEST_TMPDIR/g.svg" || { echo "FAIL: dot rejected the graph"; fail=1; }
  grep -q '<svg' "$TEST_TMPDIR/g.svg" || { echo "FAIL: no svg"; fail=1; }
else
  echo "dot not installed; skipped the Graphviz check"
fi

"$kiln" graph "$example" --param registy=x >/dev/null 2>"$out"; rc=$?
[ $rc -eq 1 ] || { echo "FAIL: unknown param should exit 1, got $rc"; fail=1; }
expect "unknown param" "$out" "unknown param registy \(did you mean 'registry'\?\)"
"$kiln" graph "$example" --format svg >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: bad format should exit 2"; fail=1; }
"$kiln" graph "$example" --event merge >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: bad event should exit 2"; fail=1; }
"$kiln" graph >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: no FILE should exit 2"; fail=1; }
"$kiln" graph --help | grep -q 'usage: kiln graph' || { echo "FAIL: --help"; fail=1; }
"$kiln" graph "$root/tests/pipeline/bad/cycle_in_needs.yaml" >/dev/null 2>"$out"; rc=$?
[ $rc -eq 1 ] || { echo "FAIL: invalid pipeline should exit 1"; fail=1; }
expect "diagnostic" "$out" 'cycle_in_needs.yaml:4:23: cycle: a -> c -> b -> a'
exit $fail
