#!/bin/bash
# The hello example works as its pipeline expects: `make build` and
# `make test` in a writable copy, the binary greets, and every overlay
# renders with `kubectl kustomize` (when kubectl is installed).
set -eu
src="$TEST_SRCDIR/kiln/examples/hello"
work="$TEST_TMPDIR/hello"
mkdir -p "$work"
cp -rL "$src"/. "$work"/
chmod -R u+w "$work"
cd "$work"
make build test
[ "$(./out/hello kiln)" = "Hello, kiln!" ]
[ "$(GREETING_NAME=pod ./out/hello)" = "Hello, pod!" ]
if command -v kubectl >/dev/null; then
  for overlay in preview stage prod; do
    kubectl kustomize "deploy/overlays/$overlay" >"$TEST_TMPDIR/$overlay.yaml"
    grep -q "namespace: hello-$overlay" "$TEST_TMPDIR/$overlay.yaml"
    grep -q "environment: $overlay" "$TEST_TMPDIR/$overlay.yaml"
  done
  grep -q "replicas: 3" "$TEST_TMPDIR/prod.yaml"
else
  echo "kubectl not installed; skipped rendering"
fi
echo "hello example ok"
