#!/bin/bash
# The hello example works as its pipeline expects: `make build` and
# `make test` in a writable copy, the binary greets, and every overlay
# renders with `kubectl kustomize` (installed by scripts/install-deps; the
# test fails without it).
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
if ! command -v kubectl >/dev/null; then
  echo "FAIL: kubectl is required (run scripts/install-deps)" >&2
  exit 1
fi
for overlay in preview stage prod; do
  kubectl kustomize "deploy/overlays/$overlay" >"$TEST_TMPDIR/$overlay.yaml"
  grep -q "namespace: hello-$overlay" "$TEST_TMPDIR/$overlay.yaml"
  grep -q "environment: $overlay" "$TEST_TMPDIR/$overlay.yaml"
done
grep -q "replicas: 3" "$TEST_TMPDIR/prod.yaml"
echo "hello example ok"
