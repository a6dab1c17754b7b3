#!/bin/bash
# B8: kiln render vs `kubectl kustomize` on (a) a base + overlay of 20
# resources and (b) a 4,000-resource tree. Median of REPS runs each, the
# two commands in turn (kiln, kubectl, kiln, ...) so both see the same load;
# checks the outputs are identical; writes bench/results/b8.json.
# kiln is the `kiln` command users run (//:kiln, -c opt), or $KILN if set.
# B8_CASES picks the cases (default "small:20 large:4000").
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-7}              # repetitions, small case
REPS_LARGE=${REPS_LARGE:-3}  # repetitions, 4,000 resources (kubectl takes minutes)
OB=${KILN_OUTPUT_BASE:-$HOME/.cache/kiln/ob-render}
if [[ -z ${KILN:-} ]]; then
  bazel --output_base="$OB" build -c opt //:kiln >/dev/null 2>&1
  KILN="$(bazel --output_base="$OB" info -c opt bazel-bin 2>/dev/null)/kiln"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gen() {  # gen DIR N: base with N deployments+services, overlay on top
  local dir=$1 n=$2; mkdir -p "$dir/base" "$dir/overlay"
  { echo "resources:"; for ((i = 0; i < n / 2; i++)); do echo "- r$i.yaml"; done; } >"$dir/base/kustomization.yaml"
  for ((i = 0; i < n / 2; i++)); do cat >"$dir/base/r$i.yaml" <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: app$i, labels: {app: app$i}}
spec:
  replicas: 1
  selector: {matchLabels: {app: app$i}}
  template:
    metadata: {labels: {app: app$i}}
    spec:
      containers:
      - name: c
        image: registry.local/app$i:1.0
        env: [{name: A, value: "1"}]
---
apiVersion: v1
kind: Service
metadata: {name: app$i}
spec:
  selector: {app: app$i}
  ports: [{port: 80, targetPort: 8080}]
Y
  done
  cat >"$dir/overlay/kustomization.yaml" <<Y
resources: [../base]
namespace: prod
namePrefix: prod-
commonLabels: {env: prod}
images: [{name: registry.local/app0, newTag: "2.0"}]
configMapGenerator: [{name: settings, literals: [a=1]}]
Y
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timeit_pair REPS OUT_A OUT_B CMD_A -- CMD_B: runs A and B in turn REPS
# times; writes the median of each (microseconds) to OUT_A and OUT_B. The
# clock is bash's $EPOCHREALTIME: a `date` process per reading would add
# its own start-up (~2 ms here) to every figure, most to the faster side.
timeit_pair() {
  local reps=$1 out_a=$2 out_b=$3 a=() b=() s
  shift 3
  while [[ $1 != -- ]]; do a+=("$1"); shift; done
  shift
  b=("$@")
  : >"$tmp/a.us"; : >"$tmp/b.us"
  for ((r = 0; r < reps; r++)); do
    s=${EPOCHREALTIME/./}
    "${a[@]}" >/dev/null 2>&1
    echo $((${EPOCHREALTIME/./} - s)) >>"$tmp/a.us"
    s=${EPOCHREALTIME/./}
    "${b[@]}" >/dev/null 2>&1
    echo $((${EPOCHREALTIME/./} - s)) >>"$tmp/b.us"
  done
  median <"$tmp/a.us" >"$out_a"
  median <"$tmp/b.us" >"$out_b"
}
json="{\"id\":\"B8\""
for c in ${B8_CASES:-small:20 large:4000}; do
  name=${c%%:*} n=${c##*:}
  gen "$tmp/$name" "$n"
  "$KILN" render "$tmp/$name/overlay" >"$tmp/$name.kiln"
  kubectl kustomize "$tmp/$name/overlay" >"$tmp/$name.kubectl" 2>/dev/null
  reps=$REPS; [ "$name" = large ] && reps=$REPS_LARGE
  same=false; cmp -s "$tmp/$name.kiln" "$tmp/$name.kubectl" && same=true
  timeit_pair "$reps" "$tmp/k" "$tmp/p" "$KILN" render "$tmp/$name/overlay" \
    -- kubectl kustomize "$tmp/$name/overlay"
  k=$(cat "$tmp/k") p=$(cat "$tmp/p")
  ratio=$(awk -v p="$p" -v k="$k" 'BEGIN {printf "%.1f", p / k}')
  echo "B8 $name ($n resources): kiln ${k}us, kubectl kustomize ${p}us, kiln is ${ratio}x faster, identical=$same"
  json+=",\"${name}_resources\":$n,\"${name}_kiln_us\":$k,\"${name}_kubectl_us\":$p,\"${name}_ratio\":$ratio,\"${name}_identical\":$same"
done
json+=",\"target\":\">=10x faster, identical output\"}"
echo "$json" >bench/results/b8.json
echo "wrote bench/results/b8.json"
bazel --output_base="$OB" shutdown >/dev/null 2>&1 || true
