#!/bin/bash
# Regenerates tests/render/fixtures/*/expected.yaml with the real
# `kubectl kustomize` (kustomize v5.5.0). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/fixtures"
command -v kubectl >/dev/null || { echo "regen.sh: kubectl not on PATH" >&2; exit 1; }
for d in */; do
  d=${d%/}
  [ -e "$d/kustomization.yaml" ] || [ -e "$d/kustomization.yml" ] || [ -e "$d/Kustomization" ] || continue
  if ! kubectl kustomize "$d" > "$d/expected.yaml" 2> "$d/.stderr"; then
    echo "regen.sh: kubectl kustomize $d failed:" >&2; cat "$d/.stderr" >&2
  fi
  rm -f "$d/.stderr"
done
