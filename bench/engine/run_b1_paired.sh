#!/usr/bin/env bash
# B1 before/after: the no-op rerun of the gen_dag.py graph through two kiln
# binaries and ninja, interleaved (ninja, A, B, ninja, A, B, ...) on the same
# input, so each ratio is read against figures taken in the same minute.
#
#   bench/engine/run_b1_paired.sh KILN_A KILN_B [OUT.json]
#
# KILN_A is "before", KILN_B "after" (both `kiln` binaries; they must share
# the store's schema and the cache key). The cache is filled once by a cold
# run of KILN_A; the filled store is then copied, one copy per binary, so
# each binary's store grows by the same runs. Every no-op must report every
# task TASK_CACHED. Prints wall and cpu (user+sys) medians and the ratios to
# ninja; writes OUT.json (default bench/results/b1_paired.json).
# Environment: TASKS (2000), WIDTH (100), FANIN (3), JOBS (2), REPS (5), ID
#   (the result id, default B1-paired),
#   KEEP_DAG (a directory holding a filled dag + store from an earlier call,
#   reused if present: DAG/kiln, DAG/ninja, DAG/store), FILL_B (1: B's
#   store is filled by a cold run of B itself, kept as DAG/store_b — for a
#   B whose store format an A cannot read, or whose cache entries record
#   more than A's).
set -euo pipefail
cd "$(dirname "$0")/../.."
KILN_A=$(realpath "$1")
KILN_B=$(realpath "$2")
OUT=${3:-bench/results/b1_paired.json}
TASKS=${TASKS:-2000}
WIDTH=${WIDTH:-100}
FANIN=${FANIN:-3}
JOBS=${JOBS:-2}
REPS=${REPS:-5}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-b1-paired.XXXXXX")
cleanup() {
  chmod -R u+w "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# cold_fill LABEL KILN STORE: fills STORE with a cold run of the dag by KILN.
cold_fill() {
  echo "b1_paired: cold fill of $TASKS tasks with $1 ..." >&2
  "$2" run "$dag/kiln/pipeline.yaml" --store "$3" --jobs "$JOBS" --json \
    >"$tmp/cold_$1.out" 2>"$tmp/cold_$1.err" || {
    tail -5 "$tmp/cold_$1.err" >&2
    exit 1
  }
}

dag=${KEEP_DAG:-$tmp/dag}
if [[ ! -d $dag/store ]]; then
  mkdir -p "$dag"
  python3 bench/engine/gen_dag.py --tasks "$TASKS" --width "$WIDTH" \
    --fanin "$FANIN" "$dag"
  ninja -C "$dag/ninja" -j "$JOBS" >/dev/null
  cold_fill A "$KILN_A" "$dag/store"
fi
cp -a "$dag/store" "$tmp/store_a"
if [[ ${FILL_B:-0} == 1 ]]; then
  [[ -d $dag/store_b ]] || cold_fill B "$KILN_B" "$dag/store_b"
  cp -a "$dag/store_b" "$tmp/store_b"
else
  cp -a "$dag/store" "$tmp/store_b"
fi

# timed LABEL CMD...: runs CMD, appends "wall cpu" to $tmp/LABEL.times.
timed() {
  local label=$1
  shift
  /usr/bin/time -f '%e %U %S' -o "$tmp/t" "$@" >"$tmp/$label.out" \
    2>"$tmp/$label.err" || {
    echo "b1_paired: $label failed" >&2
    tail -5 "$tmp/$label.err" >&2
    exit 1
  }
  # %e has 2 decimals only: take the wall clock ourselves too.
  awk '{printf "%s %.3f\n", $1, $2 + $3}' "$tmp/t" >>"$tmp/$label.times"
}

cached_count() {
  python3 - "$1" <<'PY'
import json, sys
final = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    t = e.get("task_state") or e.get("taskState")
    if t:
        final[t.get("task")] = t.get("state")
print(sum(1 for s in final.values() if s == "TASK_CACHED"))
PY
}

# One untimed no-op per binary first: a binary the fill did not run has
# no decode-cache entry of its own yet (the key names the build).
for side in a b; do
  bin=$KILN_A
  [[ $side == b ]] && bin=$KILN_B
  "$bin" run "$dag/kiln/pipeline.yaml" --store "$tmp/store_$side" \
    --jobs "$JOBS" --json >/dev/null 2>&1 || {
    echo "b1_paired: warm-up of $side failed" >&2
    exit 1
  }
done

ns() { date +%s%N; }
for ((i = 0; i < REPS; i++)); do
  s=$(ns)
  timed ninja ninja -C "$dag/ninja"
  grep -q "no work to do" "$tmp/ninja.out" || { echo "ninja did work" >&2; exit 1; }
  echo $((($(ns) - s) / 1000)) >>"$tmp/ninja.us"
  for side in a b; do
    bin=$KILN_A
    [[ $side == b ]] && bin=$KILN_B
    s=$(ns)
    timed "$side" "$bin" run "$dag/kiln/pipeline.yaml" --store "$tmp/store_$side" \
      --jobs "$JOBS" --json
    echo $((($(ns) - s) / 1000)) >>"$tmp/$side.us"
    n=$(cached_count "$tmp/$side.out")
    [[ $n == "$TASKS" ]] || { echo "b1_paired: $side: $n of $TASKS cached" >&2; exit 1; }
  done
  echo "b1_paired: rep $i: ninja $(tail -1 "$tmp/ninja.us") us, A $(tail -1 "$tmp/a.us") us, B $(tail -1 "$tmp/b.us") us" >&2
done

python3 - "$tmp" "$OUT" "$TASKS" "$REPS" <<'PY'
import datetime, json, os, statistics, sys
tmp, out, tasks, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def wall(label):
    return [int(l) / 1e6 for l in open(f"{tmp}/{label}.us")]
def cpu(label):
    return [float(l.split()[1]) for l in open(f"{tmp}/{label}.times")]
med = statistics.median
r = {"id": os.environ.get("ID", "B1-paired"), "tasks": tasks, "reps": reps,
     "what": f"no-op rerun of a {tasks}-task DAG through kiln run --json, before (A) and after (B), interleaved with ninja's no-op",
     "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}
for label in ("ninja", "a", "b"):
    r[f"{label}_wall_s"] = wall(label)
    r[f"{label}_cpu_s"] = cpu(label)
    r[f"{label}_wall_median_s"] = round(med(wall(label)), 4)
    r[f"{label}_cpu_median_s"] = round(med(cpu(label)), 4)
n = r["ninja_wall_median_s"]
for label in ("a", "b"):
    r[f"{label}_ratio_wall"] = round(r[f"{label}_wall_median_s"] / n, 2)
    pairs = [x / y for x, y in zip(wall(label), wall("ninja"))]
    r[f"{label}_ratio_wall_paired_median"] = round(med(pairs), 2)
r["b_over_a_wall_paired_median"] = round(med([b / a for a, b in zip(wall("a"), wall("b"))]), 3)
r["b_over_a_cpu_paired_median"] = round(med([b / max(a, 1e-3) for a, b in zip(cpu("a"), cpu("b"))]), 3)
json.dump(r, open(out, "w"), indent=1)
print(json.dumps({k: v for k, v in r.items() if not isinstance(v, list)}, indent=1))
PY
