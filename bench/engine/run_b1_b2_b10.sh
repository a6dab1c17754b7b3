#!/usr/bin/env bash
# B1, B2, B10: kiln on a generated DAG of TASKS tasks, against ninja on the
# same graph (bench/engine/gen_dag.py writes both forms).
#
#   B2   cold sandboxed run (fills the cache)    vs `ninja -j2` cold
#   B1   no-op rerun (every task cached), median  vs `ninja` no-op, median
#   B10  peak RSS of the kiln process over those 10,000-task runs
#
# B2 also records, from the same minutes, both sides' CPU, what one
# sandbox costs over a plain spawn (bench/sandbox:b3), and an estimate of
# the ratio that cost alone sets (floor_ratio): about where a kiln with no
# other engine overhead would land, given a fresh sandbox per task. Not a
# bound: a run overlaps one task's teardown with others' work
# (bench/README.md, seventeenth pass).
#
# Writes bench/results/b1.json, b2.json, b10.json. Usage:
#   bench/engine/run_b1_b2_b10.sh
# Environment: TASKS (10000), WIDTH (100), FANIN (3), JOBS (2),
#   B2_TASKS (TASKS; when smaller, B2 gets its own cold run of that size,
#   else the cache fill is the B2 run — see bench/README.md),
#   NOOP_REPS (5), NINJA_REPS (5), B3_N (200), COLD_TIMEOUT (seconds, 3600),
#   BENCH_RESULTS (bench/results: where the JSON files go).
# The first no-op of each tool after its cold run is a warm-up, recorded
# (first_noop_s) but not in the median: kiln's writes the decoded pipeline
# cache there, which later runs read.
# Everything runs in a fresh temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/engine/lib.sh

TASKS=${TASKS:-10000}
WIDTH=${WIDTH:-100}
FANIN=${FANIN:-3}
JOBS=${JOBS:-2}
B2_TASKS=${B2_TASKS:-$TASKS}
NOOP_REPS=${NOOP_REPS:-5}
B3_N=${B3_N:-200}
NINJA_REPS=${NINJA_REPS:-5}
COLD_TIMEOUT=${COLD_TIMEOUT:-3600}
RESULTS=${BENCH_RESULTS:-bench/results}
mkdir -p "$RESULTS"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-engine.XXXXXX")
cleanup() {
  # Sandbox workspaces may hold read-only directories.
  chmod -R u+w "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
  stop_bazel
}
trap cleanup EXIT

build_kiln "$tmp" b3
for tool in ninja /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/install-deps)" >&2; exit 1; }
done

# run_kiln LABEL DAG_DIR STORE: one run of the pipeline, timed, with
# /usr/bin/time -v; sets RUN_S and RUN_RSS_MB and checks the run succeeded.
# Uses `kiln run` when the CLI accepts the file, else dag_run (the same
# engine path with the loader limits raised; see dag_run.cc).
run_kiln() {
  local label=$1 dir=$2 store=$3 start rc=0
  local file="$dir/kiln/pipeline.yaml"
  local cmd
  if [[ $RUNNER == kiln ]]; then
    cmd=("$KILN" run "$file" --store "$store" --jobs "$JOBS" --json)
  else
    cmd=("$DAG_RUN" "$file" --store "$store" --jobs "$JOBS")
  fi
  start=$(now_ns)
  /usr/bin/time -v -o "$tmp/$label.time" timeout "$COLD_TIMEOUT" "${cmd[@]}" \
    >"$tmp/$label.out" 2>"$tmp/$label.err" || rc=$?
  RUN_S=$(seconds_since "$start")
  RUN_RSS_MB=$(max_rss_mb "$tmp/$label.time")
  if ((rc != 0)); then
    echo "bench/engine: $label: exit $rc after ${RUN_S}s" >&2
    tail -5 "$tmp/$label.err" >&2
    return 1
  fi
}

# count_state LABEL STATE: tasks of the run LABEL that ended in STATE.
count_state() {
  if [[ $RUNNER == kiln ]]; then
    python3 - "$tmp/$1.out" "$2" <<'PY'
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
print(sum(1 for s in final.values() if s == sys.argv[2]))
PY
  else
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["states"].get(sys.argv[2], 0))' \
      "$tmp/$1.out" "$2"
  fi
}

# ninja_time DIR [ARGS]: seconds of one ninja invocation in DIR (its CPU
# seconds in $tmp/ninja.time).
ninja_time() {
  local dir=$1 start
  shift
  start=$(now_ns)
  /usr/bin/time -v -o "$tmp/ninja.time" ninja -C "$dir" "$@" >"$tmp/ninja.out" 2>&1
  seconds_since "$start"
}

generate() {  # generate DIR N
  python3 bench/engine/gen_dag.py --tasks "$2" --width "$WIDTH" --fanin "$FANIN" "$1"
}

dag="$tmp/dag$TASKS"
generate "$dag" "$TASKS"
RUNNER=kiln
if ! "$KILN" validate "$dag/kiln/pipeline.yaml" >/dev/null 2>"$tmp/validate.err"; then
  RUNNER=dag_run
  echo "bench/engine: kiln run refuses the $TASKS-task file ($(head -c 200 "$tmp/validate.err")); using dag_run" >&2
fi
runner_note="runner: $([[ $RUNNER == kiln ]] && echo 'kiln run --json' || echo 'bench/engine:dag_run (kiln validate refused the file)')"
echo "bench/engine: $TASKS tasks (width $WIDTH, fan-in $FANIN), jobs $JOBS, $runner_note" >&2

# --- cold runs (B2) ---
ninja_cold_s=$(ninja_time "$dag/ninja" -j "$JOBS")
ninja_cold_cpu=$(cpu_s "$tmp/ninja.time")
echo "ninja -j$JOBS cold: ${ninja_cold_s}s, CPU ${ninja_cold_cpu}s" >&2
run_kiln cold "$dag" "$tmp/store"
cold_s=$RUN_S cold_rss=$RUN_RSS_MB cold_cpu=$(cpu_s "$tmp/cold.time")
echo "kiln cold: ${cold_s}s, CPU ${cold_cpu}s, RSS ${cold_rss} MB" >&2
b2_tasks=$TASKS b2_kiln_s=$cold_s b2_ninja_s=$ninja_cold_s
b2_kiln_cpu=$cold_cpu b2_ninja_cpu=$ninja_cold_cpu
if [[ $B2_TASKS != "$TASKS" ]]; then
  small="$tmp/dag$B2_TASKS"
  generate "$small" "$B2_TASKS"
  b2_ninja_s=$(ninja_time "$small/ninja" -j "$JOBS")
  b2_ninja_cpu=$(cpu_s "$tmp/ninja.time")
  run_kiln cold_b2 "$small" "$tmp/store_b2"
  b2_tasks=$B2_TASKS b2_kiln_s=$RUN_S b2_kiln_cpu=$(cpu_s "$tmp/cold_b2.time")
fi

# --- no-op reruns (B1), interleaved, after one warm-up each ---
ninja_first_s=$(ninja_time "$dag/ninja")
run_kiln noop_first "$dag" "$tmp/store"
kiln_first_s=$RUN_S noop_rss=$RUN_RSS_MB
echo "warm-up no-ops: ninja ${ninja_first_s}s, kiln ${kiln_first_s}s" >&2
ninja_noops=() kiln_noops=()
for ((i = 0; i < NOOP_REPS || i < NINJA_REPS; i++)); do
  if ((i < NINJA_REPS)); then
    ninja_noops+=("$(ninja_time "$dag/ninja")")
    grep -q "no work to do" "$tmp/ninja.out" || { echo "ninja rerun did work" >&2; exit 1; }
  fi
  ((i < NOOP_REPS)) || continue
  run_kiln "noop$i" "$dag" "$tmp/store"
  cached=$(count_state "noop$i" TASK_CACHED)
  if [[ $cached != "$TASKS" ]]; then
    echo "bench/engine: no-op rerun $i: only $cached of $TASKS tasks cached" >&2
    exit 1
  fi
  kiln_noops+=("$RUN_S")
  noop_rss=$(awk -v a="$noop_rss" -v b="$RUN_RSS_MB" 'BEGIN{print (b > a) ? b : a}')
  echo "kiln no-op $i: ${RUN_S}s, RSS ${RUN_RSS_MB} MB" >&2
done
ninja_noop_s=$(printf '%s\n' "${ninja_noops[@]}" | median)
kiln_noop_s=$(printf '%s\n' "${kiln_noops[@]}" | median)
echo "ninja no-op (median of $NINJA_REPS): ${ninja_noop_s}s; kiln no-op (median of $NOOP_REPS): ${kiln_noop_s}s" >&2

# --- the sandbox's own cost in these minutes (B2's floor) ---
"$B3" --n="$B3_N" --out="$tmp/b3.json" >"$tmp/b3.out" 2>&1 || {
  tail -5 "$tmp/b3.out" >&2
  echo "bench/engine: b3 failed" >&2
  exit 1
}
read -r sandbox_ms spawn_ms bwrap_ms < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["kiln_ms"], d["spawn_ms"], d["bwrap_ms"])' "$tmp/b3.json")
# ninja's time per edge on one of its JOBS slots, and the ratio a fresh
# sandbox per task sets by itself: (edge + sandbox - spawn) / edge.
read -r ninja_edge_ms floor_ratio < <(awk -v n="$b2_ninja_s" -v t="$b2_tasks" \
  -v j="$JOBS" -v s="$sandbox_ms" -v p="$spawn_ms" \
  'BEGIN{e = n * 1000 * j / t; printf "%.3f %.3f\n", e, (e + s - p) / e}')
echo "one sandbox ${sandbox_ms} ms, plain spawn ${spawn_ms} ms, ninja ${ninja_edge_ms} ms per edge per slot: floor ${floor_ratio}x" >&2
phases=""
if [[ $RUNNER == dag_run ]]; then
  phases="; phases of the last no-op: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("load %.2fs, engine open %.2fs, run %.2fs" % (d["load_s"], d["engine_s"], d["run_s"]))' "$tmp/noop$((NOOP_REPS - 1)).out")"
fi

graph="tasks in layers of $WIDTH, each needing $FANIN of the layer above; task = /bin/sh -c 'echo N > out' with the file as output artifact (ninja: the same command, inputs = the files of the needed tasks)"
python3 bench/engine/write_result.py "$RESULTS/b1.json" id=B1 \
  what="no-op rerun of a $TASKS-task DAG (every task cached)" \
  kiln_s="$kiln_noop_s" peer="ninja no-op on the same graph" peer_s="$ninja_noop_s" \
  target="<= 2x ninja" target_ratio=2 tasks="$TASKS" \
  kiln_runs_s="${kiln_noops[*]}" peer_runs_s="${ninja_noops[*]}" \
  first_noop_s="$kiln_first_s" peer_first_noop_s="$ninja_first_s" \
  notes="median of $NOOP_REPS kiln / $NINJA_REPS ninja runs, interleaved, each after one warm-up no-op (first_noop_s); $graph; $runner_note$phases"
python3 bench/engine/write_result.py "$RESULTS/b2.json" id=B2 \
  what="cold sandboxed run of a $b2_tasks-task DAG (jobs $JOBS)" \
  kiln_s="$b2_kiln_s" peer="ninja -j$JOBS cold, unsandboxed sh -c" peer_s="$b2_ninja_s" \
  target="<= 1.5x ninja at 10,000 tasks (issue 16; stretch 1.0x)" target_ratio=1.5 tasks="$b2_tasks" \
  stretch_met="$(awk -v k="$b2_kiln_s" -v n="$b2_ninja_s" 'BEGIN{print (k <= n) ? "true" : "false"}')" \
  fill_tasks="$TASKS" fill_kiln_s="$cold_s" fill_peer_s="$ninja_cold_s" \
  fill_ratio="$(awk -v k="$cold_s" -v n="$ninja_cold_s" 'BEGIN{printf "%.3f", k/n}')" \
  kiln_cpu_s="$b2_kiln_cpu" peer_cpu_s="$b2_ninja_cpu" \
  sandbox_ms="$sandbox_ms" spawn_ms="$spawn_ms" bwrap_ms="$bwrap_ms" \
  ninja_edge_ms="$ninja_edge_ms" floor_ratio="$floor_ratio" \
  notes="one run each (cold store / empty build dir); kiln_cpu_s / peer_cpu_s: user + system seconds of each process tree (/usr/bin/time -v; kernel threads not counted); fill_*: the $TASKS-task cold run that fills B1's cache, and ninja -j$JOBS cold on that graph; sandbox_ms / spawn_ms / bwrap_ms: bench/sandbox:b3 medians of $B3_N (/bin/true) in the same minutes; ninja_edge_ms: ninja's time per edge per slot (peer_s x jobs / tasks); floor_ratio: (ninja_edge_ms + sandbox_ms - spawn_ms) / ninja_edge_ms, an estimate (not a bound) of the ratio a fresh sandbox per task sets with no other engine cost; $graph; $runner_note"
python3 bench/engine/write_result.py "$RESULTS/b10.json" id=B10 \
  what="peak RSS of the kiln process for a $TASKS-task run" \
  kiln_s= kiln_value="$(awk -v a="$cold_rss" -v b="$noop_rss" 'BEGIN{print (b > a) ? b : a}')" \
  unit=MB peer= peer_s= target="<= 100 MB at 10,000 tasks (issue 16; BENCHMARKS.md: <= 200 MB)" target_max=100 \
  cold_rss_mb="$cold_rss" noop_rss_mb="$noop_rss" tasks="$TASKS" \
  notes="/usr/bin/time -v Maximum resident set size of the cold run and the no-op reruns (the larger); $runner_note"
