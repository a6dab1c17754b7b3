#!/usr/bin/env bash
# B11: warm rerun of examples/hello (nothing changed), end to end, against
# the cold run of the same pipeline into a fresh store.
#
#   bench/engine/run_b11.sh                  this tree's kiln (built -c opt)
#   bench/engine/run_b11.sh BEFORE [AFTER]   BEFORE against AFTER (default:
#                                            this tree's kiln, built -c opt)
#
# Per binary: `kiln run examples/hello/pipeline.yaml --store S` once into a
# fresh store (cold), then REPS warm runs (every task must be a cache hit),
# and REPS `kiln validate` of the same file (process start + load + checks,
# no engine: the floor a warm run cannot beat). With two binaries the rounds
# are interleaved (round i: BEFORE warm, AFTER warm, BEFORE validate, AFTER
# validate; odd rounds AFTER first), each binary with its own store, so each
# ratio is read against figures taken in the same minute. Wall time is
# process start to exit; cpu is user+sys of the process (/usr/bin/time).
# Also records each binary's shared objects (ldd) and the dynamic loader's
# relocation count (LD_DEBUG=statistics).
#
# The example pushes its image to ${params.registry}: a throwaway local
# registry (scripts/local-registry) is started for the run and stopped at
# the end. Writes bench/results/b11.json.
# Environment: REPS (15), BENCH_RESULTS (bench/results), B11_BUILD (how
# given binaries were built, recorded in the result). The stores live in a
# temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/engine/lib.sh

REPS=${REPS:-15}
RESULTS=${BENCH_RESULTS:-bench/results}
mkdir -p "$RESULTS"
PIPELINE=examples/hello/pipeline.yaml

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-b11.XXXXXX")
built=0
registry_started=0
cleanup() {
  if ((registry_started)); then scripts/local-registry stop "$tmp/registry" || true; fi
  chmod -R u+w "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
  if ((built)); then stop_bazel; fi
}
trap cleanup EXIT

sides=()
if (($# >= 1)); then
  BEFORE=$(realpath "$1")
  sides+=(before)
fi
if (($# >= 2)); then
  AFTER=$(realpath "$2")
  build=${B11_BUILD:-"given binaries"}
else
  built=1
  build_kiln "$tmp"
  AFTER=$KILN
  build="-c opt"
fi
sides+=(after)
bin_of() { if [[ $1 == before ]]; then echo "$BEFORE"; else echo "$AFTER"; fi; }

REGISTRY=$(scripts/local-registry start "$tmp/registry")
registry_started=1

# timed SIDE KIND LABEL CMD...: runs CMD; appends "wall cpu" (seconds) to
# $tmp/SIDE.KIND; stdout/stderr go to $tmp/SIDE.LABEL.{out,err}.
timed() {
  local side=$1 kind=$2 label=$3 start rc=0 wall
  shift 3
  start=$(now_ns)
  /usr/bin/time -f '%U %S' -o "$tmp/time" "$@" >"$tmp/$side.$label.out" \
    2>"$tmp/$side.$label.err" || rc=$?
  wall=$(seconds_since "$start")
  if ((rc != 0)); then
    echo "bench/engine: B11 $side $label: $* exited $rc" >&2
    tail -5 "$tmp/$side.$label.err" >&2
    exit 1
  fi
  awk -v w="$wall" '{printf "%s %.3f\n", w, $1 + $2}' "$tmp/time" >>"$tmp/$side.$kind"
}

kiln_run() {  # SIDE KIND LABEL
  timed "$1" "$2" "$3" "$(bin_of "$1")" run "$PIPELINE" --store "$tmp/store_$1" \
    --param "registry=$REGISTRY"
}

for side in "${sides[@]}"; do
  kiln_run "$side" cold cold
  echo "$side cold: $(cut -d' ' -f1 "$tmp/$side.cold")s ($(tail -1 "$tmp/$side.cold.err"))" >&2
  bin=$(bin_of "$side")
  ldd "$bin" | awk '{print $1}' >"$tmp/$side.ldd"
  LD_DEBUG=statistics "$bin" validate "$PIPELINE" 2>&1 >/dev/null |
    awk '/ number of relocations:/ {r=$NF} / number of relative relocations:/ {rr=$NF}
         END {print r + 0, rr + 0}' >"$tmp/$side.relocs"
done

for ((i = 0; i < REPS; i++)); do
  order=("${sides[@]}")
  if ((i % 2 == 1 && ${#sides[@]} == 2)); then order=(after before); fi
  for side in "${order[@]}"; do
    kiln_run "$side" warm "warm$i"
    # Nothing changed: no task may execute again.
    if ! tail -1 "$tmp/$side.warm$i.err" | grep -q " 0 succeeded, [0-9]* cached, [0-9]* skipped, 0 failed"; then
      echo "bench/engine: B11 $side warm run $i executed tasks: $(tail -1 "$tmp/$side.warm$i.err")" >&2
      exit 1
    fi
  done
  for side in "${order[@]}"; do
    timed "$side" validate "validate$i" "$(bin_of "$side")" validate "$PIPELINE"
  done
done

python3 - "$tmp" "$RESULTS/b11.json" "$REPS" "$build" "${sides[@]}" <<'PY'
import datetime, json, statistics, sys

tmp, out, reps, build, sides = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
med = statistics.median


def rows(side, kind):
    return [tuple(float(x) for x in l.split()) for l in open(f"{tmp}/{side}.{kind}")]


def last_line(path):
    lines = [l.strip() for l in open(path) if l.strip()]
    return lines[-1] if lines else ""


per = {}
for side in sides:
    warm, val, cold = rows(side, "warm"), rows(side, "validate"), rows(side, "cold")[0]
    loaded = [l.strip() for l in open(f"{tmp}/{side}.ldd") if l.strip()]
    relocs, relative = (int(x) for x in open(f"{tmp}/{side}.relocs").read().split())
    p = {
        "cold_s": cold[0], "cold_cpu_s": cold[1],
        "warm_runs_s": [w for w, _ in warm], "warm_cpu_s": [c for _, c in warm],
        "warm_s": round(med(w for w, _ in warm), 4),
        "warm_cpu_median_s": round(med(c for _, c in warm), 4),
        "validate_runs_s": [w for w, _ in val], "validate_cpu_s": [c for _, c in val],
        "validate_s": round(med(w for w, _ in val), 4),
        "validate_cpu_median_s": round(med(c for _, c in val), 4),
        "shared_objects": len(loaded),
        "symbol_relocations": relocs, "relative_relocations": relative,
        "cold_summary": last_line(f"{tmp}/{side}.cold.err"),
        "warm_summary": last_line(f"{tmp}/{side}.warm{reps - 1}.err"),
    }
    p["warm_over_cold"] = round(p["warm_s"] / p["cold_s"], 3)
    p["warm_over_validate_paired_median"] = round(
        med(w[0] / v[0] for w, v in zip(warm, val)), 3)
    per[side] = p

a = per["after"]
r = {
    "id": "B11",
    "what": "warm rerun of examples/hello (nothing changed), end to end",
    "kiln_s": a["warm_s"],
    "peer": "cold run of the same pipeline (fresh store), same binary",
    "peer_s": a["cold_s"],
    "ratio": a["warm_over_cold"],
    "target": "<= 0.04 s median end to end",
    "met": a["warm_s"] <= 0.04,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "notes": (f"median of {reps} warm runs after one cold run per binary"
              + (", BEFORE and AFTER interleaved round by round, each with its own store"
                 if len(sides) == 2 else "")
              + "; ratio = warm/cold of AFTER; validate = kiln validate on the same file "
                "(process start + load + checks); cpu = user+sys; the example's image is "
                "pushed to a throwaway local registry"),
    "build": build,
    "reps": reps,
    "validate_s": a["validate_s"],
}
if "before" in per:
    b = per["before"]
    r["after_over_before_warm_wall_paired_median"] = round(
        med(y / x for x, y in zip(b["warm_runs_s"], a["warm_runs_s"])), 3)
    r["after_over_before_warm_cpu_paired_median"] = round(
        med(y / max(x, 1e-3) for x, y in zip(b["warm_cpu_s"], a["warm_cpu_s"])), 3)
    r["after_over_before_validate_wall_paired_median"] = round(
        med(y / x for x, y in zip(b["validate_runs_s"], a["validate_runs_s"])), 3)
    r["after_over_before_validate_cpu_paired_median"] = round(
        med(y / max(x, 1e-3) for x, y in zip(b["validate_cpu_s"], a["validate_cpu_s"])), 3)
for side, p in per.items():
    r[side] = p
with open(out, "w") as f:
    json.dump(r, f, indent=1)
    f.write("\n")
print(json.dumps({k: v for k, v in r.items() if not isinstance(v, (list, dict))}, indent=1))
for side, p in per.items():
    print(side, json.dumps({k: v for k, v in p.items() if not isinstance(v, list)}))
PY
