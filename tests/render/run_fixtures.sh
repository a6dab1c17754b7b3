#!/bin/bash
# Renders every tests/render/fixtures/NAME with kiln and compares the output
# byte for byte with NAME/expected.yaml (made by `kubectl kustomize`, see
# regen.sh); when kubectl is on PATH, also with a live `kubectl kustomize`.
# Every tests/render/bad/NAME must fail (exit 1) with the text of
# NAME/expected_error.txt in its message.
# usage: run_fixtures.sh KILN_BINARY TESTS_RENDER_DIR
set -u
kiln=$1
root=$2
tmp=${TEST_TMPDIR:-$(mktemp -d)}
# Bazel runfiles are symlinks, which kustomize's load restrictor refuses:
# work on a dereferenced copy.
mkdir -p "$tmp/cases"
cp -rL "$root/fixtures" "$root/bad" "$tmp/cases/"
root=$tmp/cases
failed=0 passed=0 live=0
have_kubectl=0
command -v kubectl >/dev/null 2>&1 && have_kubectl=1
for d in "$root"/fixtures/*/; do
  d=${d%/}
  name=$(basename "$d")
  [ -f "$d/expected.yaml" ] || continue
  if ! "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"; then
    echo "FAIL $name: kiln render failed: $(cat "$tmp/err")"; failed=$((failed + 1)); continue
  fi
  if ! cmp -s "$tmp/got.yaml" "$d/expected.yaml"; then
    echo "FAIL $name: differs from expected.yaml"; diff "$d/expected.yaml" "$tmp/got.yaml" | head -20
    failed=$((failed + 1)); continue
  fi
  if [ $have_kubectl = 1 ]; then
    kubectl kustomize "$d" >"$tmp/live.yaml" 2>/dev/null
    if ! cmp -s "$tmp/got.yaml" "$tmp/live.yaml"; then
      echo "FAIL $name: differs from live kubectl kustomize"; diff "$tmp/live.yaml" "$tmp/got.yaml" | head -20
      failed=$((failed + 1)); continue
    fi
    live=$((live + 1))
  fi
  passed=$((passed + 1))
done
for d in "$root"/bad/*/; do
  d=${d%/}
  name=$(basename "$d")
  want=$(cat "$d/expected_error.txt")
  "$kiln" render "$d" >/dev/null 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 1 ] || ! grep -qF -- "$want" "$tmp/err"; then
    echo "FAIL bad/$name: exit $rc, stderr: $(cat "$tmp/err"), wanted: $want"
    failed=$((failed + 1)); continue
  fi
  passed=$((passed + 1))
done
echo "render fixtures: $passed passed, $failed failed ($live also checked against live kubectl)"
[ $failed -eq 0 ]
