#!/bin/bash
# Renders the example pipeline's deploy tree (examples/hello/deploy: base and
# every overlay) with kiln; when kubectl is on PATH, the output must be
# byte-identical to `kubectl kustomize`.
# usage: run_example.sh KILN_BINARY DEPLOY_DIR
set -u
kiln=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
cp -rL "$2" "$tmp/deploy"  # runfiles are symlinks; kustomize refuses those
failed=0 count=0
for d in "$tmp/deploy/base" "$tmp"/deploy/overlays/*; do
  [ -d "$d" ] || continue
  count=$((count + 1))
  if ! "$kiln" render "$d" >"$tmp/got.yaml" 2>"$tmp/err"; then
    echo "FAIL ${d#$tmp/}: $(cat "$tmp/err")"; failed=$((failed + 1)); continue
  fi
  if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize "$d" >"$tmp/want.yaml" 2>/dev/null
    if ! cmp -s "$tmp/want.yaml" "$tmp/got.yaml"; then
      echo "FAIL ${d#$tmp/}: differs from kubectl kustomize"
      diff "$tmp/want.yaml" "$tmp/got.yaml" | head -20
      failed=$((failed + 1))
    fi
  fi
done
echo "example deploy tree: $count kustomizations, $failed failed"
[ "$count" -gt 0 ] && [ "$failed" -eq 0 ]
