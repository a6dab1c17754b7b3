#!/usr/bin/env bash
# B11: warm rerun of examples/hello (nothing changed), end to end, against
# the cold run of the same pipeline into a fresh store.
#
#   kiln run examples/hello/pipeline.yaml --store S      (cold, once)
#   kiln run examples/hello/pipeline.yaml --store S      (warm, REPS times)
#
# Also times `kiln validate` on the same file (process start + load + checks,
# no engine) as the floor a warm run cannot beat. Writes bench/results/b11.json.
# Environment: REPS (10), BENCH_RESULTS (bench/results). The store lives in a temporary directory, removed
# at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/engine/lib.sh

REPS=${REPS:-10}
RESULTS=${BENCH_RESULTS:-bench/results}
mkdir -p "$RESULTS"
PIPELINE=examples/hello/pipeline.yaml

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-b11.XXXXXX")
cleanup() {
  chmod -R u+w "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
  stop_bazel
}
trap cleanup EXIT

build_kiln "$tmp"

# kiln_run LABEL: one `kiln run` into the store, timed (sets RUN_S).
kiln_run() {
  local start rc=0
  start=$(now_ns)
  "$KILN" run "$PIPELINE" --store "$tmp/store" >"$tmp/$1.out" 2>"$tmp/$1.err" || rc=$?
  RUN_S=$(seconds_since "$start")
  if ((rc != 0)); then
    echo "bench/engine: B11 $1: kiln run exited $rc" >&2
    tail -5 "$tmp/$1.err" >&2
    exit 1
  fi
}

kiln_run cold
cold_s=$RUN_S
cold_summary=$(tail -1 "$tmp/cold.err")
echo "cold: ${cold_s}s ($cold_summary)" >&2
warm=()
for ((i = 0; i < REPS; i++)); do
  kiln_run "warm$i"
  # Nothing changed: no task may execute again.
  if ! tail -1 "$tmp/warm$i.err" | grep -q " 0 succeeded"; then
    echo "bench/engine: B11 warm run $i executed tasks: $(tail -1 "$tmp/warm$i.err")" >&2
    exit 1
  fi
  warm+=("$RUN_S")
done
warm_s=$(printf '%s\n' "${warm[@]}" | median)
warm_summary=$(tail -1 "$tmp/warm$((REPS - 1)).err")

validate=()
for ((i = 0; i < REPS; i++)); do
  start=$(now_ns)
  "$KILN" validate "$PIPELINE" >/dev/null 2>&1
  validate+=("$(seconds_since "$start")")
done
validate_s=$(printf '%s\n' "${validate[@]}" | median)
echo "warm (median of $REPS): ${warm_s}s; kiln validate (median): ${validate_s}s" >&2

python3 bench/engine/write_result.py "$RESULTS/b11.json" id=B11 \
  what="warm rerun of examples/hello (nothing changed), end to end" \
  kiln_s="$warm_s" peer="cold run of the same pipeline (fresh store)" peer_s="$cold_s" \
  target="<= 0.04 s median end to end" target_max=0.04 \
  warm_runs_s="${warm[*]}" validate_s="$validate_s" \
  notes="median of $REPS warm runs after one cold run; ratio = warm/cold; validate_s = median of kiln validate on the same file (process start + load); cold: $cold_summary; warm: $warm_summary"
