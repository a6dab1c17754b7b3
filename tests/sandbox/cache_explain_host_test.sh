#!/bin/bash
# `kiln cache explain` says that a host-mode task's tools are not tracked
# (its key covers argv[0]'s binary and /etc/os-release only), on a miss and
# on a hit. Runs a real task in the real sandbox.
set -u
kiln="$TEST_SRCDIR/kiln/kiln"
dir="$TEST_TMPDIR/explain"
mkdir -p "$dir/src"
cat >"$dir/src/p.yaml" <<'YAML'
name: hostmode
tasks:
  - name: t
    run:
      image: host
      command: [sh, -c, "echo hi"]
    timeout: 1m
YAML
fail=0
run_id() {  # the id of a fresh run of the pipeline
  timeout 60 "$kiln" run "$dir/src/p.yaml" --store "$dir/store" >"$dir/run.out" 2>&1 \
    || { echo "FAIL run: $(cat "$dir/run.out")"; exit 1; }
  sed -n 's/^run \(r[0-9a-f-]*\):.*/\1/p' "$dir/run.out" | head -1
}
first=$(run_id)
second=$(run_id)
for id in "$first" "$second"; do
  out=$("$kiln" cache explain "$id" t --store "$dir/store" 2>&1)
  echo "$out"
  if ! grep -q '^host mode: tools not tracked' <<<"$out"; then
    echo "FAIL: no host-mode note for run $id"
    fail=1
  fi
done
grep -q '^hit:' <<<"$("$kiln" cache explain "$second" t --store "$dir/store")" \
  || { echo "FAIL: the second run was not a hit"; fail=1; }
exit $fail
