#!/bin/bash
# Renders every tests/render/fixtures/NAME with kiln and compares the output
# byte for byte with NAME/expected.yaml (made by `kubectl kustomize`, see
# regen.sh) and with a live `kubectl kustomize` (kustomize v5.5.0, installed
# by scripts/install-deps; the test fails without it). Every
# tests/render/bad/NAME must fail (exit 1) with the text of
# NAME/expected_error.txt in its message. A fixture without its expected
# file fails, and so does a run with fewer cases than the minimums.
# usage: run_fixtures.sh KILN_BINARY TESTS_RENDER_DIR MIN_FIXTURES MIN_BAD
set -u
kiln=$1
root=$2
min_fixtures=$3
min_bad=$4
tmp=${TEST_TMPDIR:-$(mktemp -d)}
# Bazel runfiles are symlinks, which kustomize's load restrictor refuses:
# work on a dereferenced copy.
mkdir -p "$tmp/cases"
cp -rL "$root/fixtures" "$root/bad" "$tmp/cases/"
root=$tmp/cases
failed=0 passed=0 live=0 nfix=0 nbad=0
kver=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
if [ "$kver" != v5.5.0 ]; then
  echo "FAIL: kubectl with kustomize v5.5.0 is required (found: ${kver:-no kubectl on PATH}); run scripts/install-deps"
  exit 1
fi
for d in "$root"/fixtures/*/; do
  d=${d%/}
  name=$(basename "$d")
  nfix=$((nfix + 1))
  if [ ! -f "$d/expected.yaml" ]; then
    echo "FAIL $name: no expected.yaml (run tests/render/regen.sh)"; failed=$((failed + 1)); continue
  fi
  if ! "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"; then
    echo "FAIL $name: kiln render failed: $(cat "$tmp/err")"; failed=$((failed + 1)); continue
  fi
  if ! cmp -s "$tmp/got.yaml" "$d/expected.yaml"; then
    echo "FAIL $name: differs from expected.yaml"; diff "$d/expected.yaml" "$tmp/got.yaml" | head -20
    failed=$((failed + 1)); continue
  fi
  if ! kubectl kustomize "$d" >"$tmp/live.yaml" 2>"$tmp/kerr"; then
    echo "FAIL $name: kubectl kustomize failed: $(cat "$tmp/kerr")"; failed=$((failed + 1)); continue
  fi
  if ! cmp -s "$tmp/got.yaml" "$tmp/live.yaml"; then
    echo "FAIL $name: differs from live kubectl kustomize"; diff "$tmp/live.yaml" "$tmp/got.yaml" | head -20
    failed=$((failed + 1)); continue
  fi
  live=$((live + 1))
  passed=$((passed + 1))
done
for d in "$root"/bad/*/; do
  d=${d%/}
  name=$(basename "$d")
  nbad=$((nbad + 1))
  if [ ! -f "$d/expected_error.txt" ]; then
    echo "FAIL bad/$name: no expected_error.txt"; failed=$((failed + 1)); continue
  fi
  want=$(cat "$d/expected_error.txt")
  "$kiln" render "$d" >/dev/null 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 1 ] || ! grep -qF -- "$want" "$tmp/err"; then
    echo "FAIL bad/$name: exit $rc, stderr: $(cat "$tmp/err"), wanted: $want"
    failed=$((failed + 1)); continue
  fi
  passed=$((passed + 1))
done
if [ $nfix -lt "$min_fixtures" ] || [ $nbad -lt "$min_bad" ]; then
  echo "FAIL: found $nfix fixtures and $nbad bad cases; expected at least $min_fixtures and $min_bad"
  failed=$((failed + 1))
fi
echo "render fixtures: $passed passed, $failed failed ($live also checked against live kubectl)"
[ $failed -eq 0 ]
