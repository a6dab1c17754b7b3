#!/bin/bash
# Renders the example pipeline's deploy tree (examples/hello/deploy: base and
# every overlay) with kiln; the output must be byte-identical to
# `kubectl kustomize` (kustomize v5.5.0, from scripts/install-deps; the test
# fails without it).
# usage: run_example.sh KILN_BINARY DEPLOY_DIR
set -u
kiln=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
cp -rL "$2" "$tmp/deploy"  # runfiles are symlinks; kustomize refuses those
failed=0 count=0
if ! command -v kubectl >/dev/null 2>&1; then
  echo "FAIL: kubectl is required (run scripts/install-deps)"
  exit 1
fi
for d in "$tmp/deploy/base" "$tmp"/deploy/overlays/*; do
  [ -d "$d" ] || continue
  count=$((count + 1))
  if ! "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"; then
    echo "FAIL ${d#$tmp/}: $(cat "$tmp/err")"; failed=$((failed + 1)); continue
  fi
  if ! kubectl kustomize "$d" >"$tmp/want.yaml" 2>"$tmp/kerr"; then
    echo "FAIL ${d#$tmp/}: kubectl kustomize failed: $(cat "$tmp/kerr")"
    failed=$((failed + 1))
  elif ! cmp -s "$tmp/want.yaml" "$tmp/got.yaml"; then
    echo "FAIL ${d#$tmp/}: differs from kubectl kustomize"
    diff "$tmp/want.yaml" "$tmp/got.yaml" | head -20
    failed=$((failed + 1))
  fi
done
echo "example deploy tree: $count kustomizations, $failed failed"
# base and the three overlays (preview, stage, prod).
[ "$count" -ge 4 ] && [ "$failed" -eq 0 ]
