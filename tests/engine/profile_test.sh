#!/bin/bash
# `kiln run --profile FILE` writes a Chrome trace-event JSON that parses,
# holds a track per task with properly nested spans of non-negative length:
# on a cold run each task's attempt with its queueing, key, cache lookup,
# input staging, sandbox start, command, output stashing and recording; on
# the same run again a whole-run replay (nothing scheduled); on a warm
# rerun each task a cache hit found without a worker. Runs real
# tasks in the real sandbox.
set -u
kiln="$TEST_SRCDIR/kiln/kiln"
check="$TEST_SRCDIR/kiln/tests/engine/check_profile.py"
dir="$TEST_TMPDIR/profile"
rm -rf "$dir" && mkdir -p "$dir/src"
cat >"$dir/src/p.yaml" <<'YAML'
name: profiled
tasks:
  - name: make
    run: {command: [sh, -c, "mkdir -p out && echo made > out/a.txt"]}
    outputs: [{artifact: made, paths: [out]}]
  - name: use
    needs: [make]
    inputs: [{artifact: made, path: in}]
    run: {command: [sh, -c, "cat in/out/a.txt > b.txt"]}
    outputs: [{artifact: used, paths: [b.txt]}]
  - name: side
    needs: [make]
    run: {command: ["true"]}
YAML
fail=0
run() {  # run NAME: a run with --profile $dir/NAME.json; must succeed
  if ! timeout 120 "$kiln" run "$dir/src/p.yaml" --store "$dir/store" \
      --profile "$dir/$1.json" >"$dir/$1.out" 2>&1; then
    echo "FAIL: run $1: $(cat "$dir/$1.out")"
    exit 1
  fi
  grep -q "profile written to $dir/$1.json" "$dir/$1.out" \
    || { echo "FAIL: run $1 did not report the profile"; fail=1; }
}
run cold
python3 "$check" "$dir/cold.json" cold make use side || fail=1
# The staging and stashing spans are there where the task has inputs and
# outputs.
python3 - "$dir/cold.json" <<'PY' || fail=1
import json, sys
t = json.load(open(sys.argv[1]))
names = {e["tid"]: e["args"]["name"] for e in t["traceEvents"]
         if e.get("name") == "thread_name"}
got = {}
for e in t["traceEvents"]:
    if e.get("ph") == "X":
        got.setdefault(names[e["tid"]], set()).add(e["name"])
assert "stage inputs" in got["task use"], got["task use"]
assert "stash outputs" in got["task make"], got["task make"]
assert "stash outputs" in got["task use"], got["task use"]
assert "stage inputs" not in got["task side"], got["task side"]
print("staging and stashing spans present")
PY
# The same run again is a whole-run replay: nothing scheduled.
run replay
python3 "$check" "$dir/replay.json" replay make use side || fail=1
# Another source tree (no task reads it): not a replay, every task a hit
# found without a worker.
echo more > "$dir/src/more.txt"
run warm
python3 "$check" "$dir/warm.json" warm make use side || fail=1

# A profile path that cannot be written is a usage error before anything
# runs.
timeout 120 "$kiln" run "$dir/src/p.yaml" --store "$dir/store" \
  --profile "$dir/no/such/dir/p.json" >"$dir/bad.out" 2>&1
rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "is not a directory" "$dir/bad.out"; then
  echo "FAIL: unwritable --profile: rc=$rc $(cat "$dir/bad.out")"
  fail=1
fi
exit $fail
