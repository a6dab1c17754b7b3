#!/bin/bash
# Parity corpus: every tests/render/parity/NAME must render byte for byte
# like a live `kubectl kustomize NAME` (the reference output is produced by
# kubectl here, never stored), and every tests/render/parity_bad/NAME must
# be refused by both kubectl and kiln (kiln: exit 1, a message naming a
# file; when NAME/expected_error.txt exists, its text in the message).
# Every tests/render/parity_unsupported/NAME uses a kustomize feature kiln
# does not implement: kubectl accepts it, kiln must refuse it clearly
# (exit 1, "not supported", no output) instead of rendering it differently.
# kubectl is required: without it this test fails, it does not skip.
# usage: run_parity.sh KILN_BINARY TESTS_RENDER_DIR MIN_GOOD MIN_BAD
set -u
kiln=$1
root=$2
min_good=$3
min_bad=$4
kubectl=$(command -v kubectl 2>/dev/null)
if [ -z "$kubectl" ]; then
  for d in /usr/local/bin /usr/bin /bin /snap/bin; do
    if [ -x "$d/kubectl" ]; then kubectl=$d/kubectl; break; fi
  done
fi
if [ -z "$kubectl" ]; then
  echo "FAIL: kubectl not found (needed as the reference renderer)"
  exit 1
fi
tmp=${TEST_TMPDIR:-$(mktemp -d)}
# Bazel runfiles are symlinks, which kustomize's load restrictor refuses:
# work on a dereferenced copy.
mkdir -p "$tmp/cases"
cp -rL "$root/parity" "$root/parity_bad" "$root/parity_unsupported" "$tmp/cases/"
root=$tmp/cases
good=0 bad=0 unsupported=0 failed=0
for d in "$root"/parity/*/; do
  d=${d%/}
  name=$(basename "$d")
  if ! "$kubectl" kustomize "$d" >"$tmp/want.yaml" 2>"$tmp/kerr"; then
    echo "FAIL parity/$name: kubectl kustomize refused it: $(head -c 400 "$tmp/kerr")"
    failed=$((failed + 1)); continue
  fi
  if ! "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"; then
    echo "FAIL parity/$name: kiln render failed: $(cat "$tmp/err")"
    failed=$((failed + 1)); continue
  fi
  if ! cmp -s "$tmp/want.yaml" "$tmp/got.yaml"; then
    echo "FAIL parity/$name: differs from kubectl kustomize"
    diff "$tmp/want.yaml" "$tmp/got.yaml" | head -30
    failed=$((failed + 1)); continue
  fi
  good=$((good + 1))
done
for d in "$root"/parity_bad/*/; do
  d=${d%/}
  name=$(basename "$d")
  if "$kubectl" kustomize "$d" >/dev/null 2>&1; then
    echo "FAIL parity_bad/$name: kubectl kustomize accepts it (not a refusal case)"
    failed=$((failed + 1)); continue
  fi
  "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 1 ] || [ -s "$tmp/got.yaml" ]; then
    echo "FAIL parity_bad/$name: kiln exit $rc (wanted 1, no output): $(head -c 400 "$tmp/err")"
    failed=$((failed + 1)); continue
  fi
  if ! grep -q "$name" "$tmp/err"; then
    echo "FAIL parity_bad/$name: message names no file of the case: $(cat "$tmp/err")"
    failed=$((failed + 1)); continue
  fi
  if [ -f "$d/expected_error.txt" ] && ! grep -qF -- "$(cat "$d/expected_error.txt")" "$tmp/err"; then
    echo "FAIL parity_bad/$name: wanted '$(cat "$d/expected_error.txt")' in: $(cat "$tmp/err")"
    failed=$((failed + 1)); continue
  fi
  bad=$((bad + 1))
done
for d in "$root"/parity_unsupported/*/; do
  d=${d%/}
  name=$(basename "$d")
  if ! "$kubectl" kustomize "$d" >/dev/null 2>&1; then
    echo "FAIL parity_unsupported/$name: kubectl kustomize refuses it too"
    failed=$((failed + 1)); continue
  fi
  "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 1 ] || [ -s "$tmp/got.yaml" ] || ! grep -q "not supported" "$tmp/err"; then
    echo "FAIL parity_unsupported/$name: kiln exit $rc, wanted a clear refusal: $(head -c 400 "$tmp/err")"
    failed=$((failed + 1)); continue
  fi
  unsupported=$((unsupported + 1))
done
echo "parity: $unsupported unsupported features refused by kiln"
echo "parity: $good identical to kubectl kustomize, $bad refused like kubectl, $failed failed"
if [ "$good" -lt "$min_good" ] || [ "$bad" -lt "$min_bad" ]; then
  echo "FAIL: fewer cases than required ($min_good identical, $min_bad refused)"
  exit 1
fi
[ $failed -eq 0 ]
