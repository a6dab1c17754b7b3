#!/bin/bash
# Runs the real `kiln validate` on every file of the bad corpus with about
# 100 MB of address space and a 5 s wall bound; each must exit 1 with a
# FILE:LINE:COL: first line matching NAME.expect (or exit 0 for "ok").
# Prints each file's time; those over 1 s are reported as slow.
set -u
root="$TEST_SRCDIR/kiln"
kiln="$root/kiln"
fail=0
slow=0

check() {  # FILE EXPECT
  local file="$1" expect="$2" out err rc start end ms first
  out="$TEST_TMPDIR/out" err="$TEST_TMPDIR/err"
  start=$(date +%s%N)
  # 160 MB of address space: the binary and its libraries map about 100 MB
  # before reading anything; an unbounded alias expansion needs gigabytes.
  (ulimit -v 160000; exec timeout 5 "$kiln" validate "$file") >"$out" 2>"$err"
  rc=$?
  end=$(date +%s%N)
  ms=$(((end - start) / 1000000))
  if [ "$ms" -ge 1000 ]; then slow=$((slow + 1)); fi
  if [ "$expect" = ok ]; then
    if [ $rc -ne 0 ] || ! grep -q '^ok: ' "$out"; then
      echo "FAIL $file: want ok, got rc=$rc: $(head -1 "$err")"; fail=1; return
    fi
    echo "ok   ${ms}ms $file"; return
  fi
  first=$(head -1 "$err")
  if [ $rc -ne 1 ]; then
    echo "FAIL $file: want exit 1, got $rc: $first"; fail=1; return
  fi
  if ! [[ "$first" =~ ^[^:]+:[0-9]+:[0-9]+:\  ]]; then
    echo "FAIL $file: first line is not FILE:LINE:COL: message: $first"; fail=1; return
  fi
  # EXPECT is "LINE:COL: substring": exact position, message by substring.
  if [[ "$first" != "$file:${expect%%: *}: "* || "$first" != *"${expect#*: }"* ]]; then
    echo "FAIL $file: got: $first"; echo "     want: $file:$expect"; fail=1; return
  fi
  echo "ok   ${ms}ms $first"
}

count=0
for yaml in "$root"/tests/pipeline/bad/*.yaml; do
  check "$yaml" "$(head -1 "${yaml%.yaml}.expect")"
  count=$((count + 1))
done
[ "$count" -ge 17 ] || { echo "FAIL: only $count corpus files"; fail=1; }

# Too large to commit: generated here. A local file may hold 64 MiB
# (LoadOptions::LocalFile); 65 MiB is refused before it is parsed.
over="$TEST_TMPDIR/oversize.yaml"
head -c $((65 << 20)) /dev/zero | tr '\0' '#' >"$over"
check "$over" "1:1: file of "
rm -f "$over"
# 40,000 tasks (1.4 MB, ~200,000 nodes): over the network's bounds (1 MiB,
# 100,000 nodes), within a local file's; the flags lower them again.
big="$TEST_TMPDIR/big.yaml"
{ echo "name: big"; echo "tasks:"; for i in $(seq 1 40000); do echo "  - {name: t$i, run: {command: [x]}}"; done; } >"$big"
out=$(timeout 60 "$kiln" validate "$big" 2>&1)
[ "$out" = "ok: 40000 tasks" ] || { echo "FAIL: 40,000-task local file: $out"; fail=1; }
out=$(timeout 60 "$kiln" validate --max-pipeline-bytes 1048576 "$big" 2>&1)
case "$out" in "$big:1:1: file of "*) echo "ok   --max-pipeline-bytes: $out";;
  *) echo "FAIL: --max-pipeline-bytes 1048576: $out"; fail=1;; esac
out=$(timeout 60 "$kiln" validate --max-pipeline-nodes 100000 "$big" 2>&1)
case "$out" in "$big:"*"more than 100000 nodes"*) echo "ok   --max-pipeline-nodes: ${out:0:120}";;
  *) echo "FAIL: --max-pipeline-nodes 100000: $out"; fail=1;; esac
"$kiln" validate --max-pipeline-nodes 0 "$big" >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --max-pipeline-nodes 0 should exit 2"; fail=1; }
"$kiln" validate --max-pipeline-bytes $((2 << 30)) "$big" >/dev/null 2>&1
[ $? -eq 2 ] || { echo "FAIL: --max-pipeline-bytes 2 GiB should exit 2"; fail=1; }
huge="$TEST_TMPDIR/huge_scalar.yaml"
{ printf 'name: h\ntasks:\n  - name: a\n    run: {command: ["'; head -c 100000 /dev/zero | tr '\0' x; printf '"]}\n'; } >"$huge"
check "$huge" "4:21: scalar of 100000 bytes exceeds the limit"

check "$root/examples/hello/pipeline.yaml" ok

# Usage errors exit 2; --help exits 0.
"$kiln" validate >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: no FILE should exit 2"; fail=1; }
"$kiln" validate --bogus x >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: unknown flag should exit 2"; fail=1; }
"$kiln" validate --help | grep -q 'usage: kiln validate' || { echo "FAIL: --help"; fail=1; }

echo "files over 1 s: $slow"
exit $fail
