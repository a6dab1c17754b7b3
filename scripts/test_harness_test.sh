#!/bin/bash
# Runs scripts/test against a fake `bazel` (canned query and test output) and
# checks that it cannot pass on what it did not see: a target with no result
# line, a FLAKY/NO STATUS target, an empty query, a missing fuzzer, a fuzzer
# crash that reproduces; a broken layer rule (a planted dependency the fake
# query reports, a planted kind switch); and that a partial run says what it
# skipped.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src="$here/test"
[ -f "$src" ] || src="$TEST_SRCDIR/$TEST_WORKSPACE/scripts/test"
work=${TEST_TMPDIR:-$(mktemp -d)}/harness
rm -rf "$work"
mkdir -p "$work/repo/scripts" "$work/bin" "$work/fuzzbin/tests" "$work/tmp"
cp "$src" "$work/repo/scripts/test"
cp "$(dirname "$src")/check-layers" "$work/repo/scripts/check-layers"
chmod +x "$work/repo/scripts/test" "$work/repo/scripts/check-layers"
echo seed >"$work/repo/seed.txt"

# The fake bazel: answers from files in $FAKE.
cat >"$work/bin/bazel" <<'FAKE'
#!/bin/bash
cmd=$1; shift
case "$cmd" in
  query)
    q="$*"
    if [[ "$q" == *'_fuzzer$'* ]]; then cat "$FAKE/fuzzers"
    elif [[ "$q" == *"labels(data"* ]]; then echo "//:seed.txt"
    elif [[ "$q" == *"attr(testonly, 0,"* ]]; then
      # A layer rule: reports $FAKE/layers only for the rule whose query
      # contains $FAKE/layers_when (none by default).
      if [[ -s "$FAKE/layers_when" && "$q" == *"$(cat "$FAKE/layers_when")"* ]]; then
        cat "$FAKE/layers"
      fi
    else cat "$FAKE/targets"; fi ;;
  test) cat "$FAKE/test_out"; exit "$(cat "$FAKE/test_rc")" ;;
  info) echo "$FAKE_FUZZBIN" ;;
  build|shutdown) exit 0 ;;
  *) exit 2 ;;
esac
FAKE
chmod +x "$work/bin/bazel"
# Fake fuzzers: fuzzer_ok passes; fuzzer_crash writes a reproducer and fails,
# and fails again when the reproducer is replayed.
for n in loader yaml_emit unstash unstash_tar; do
  printf '#!/bin/bash\nexit 0\n' >"$work/fuzzbin/tests/${n}_fuzzer"
done
cat >"$work/fuzzbin/tests/crash_fuzzer" <<'FZ'
#!/bin/bash
for a in "$@"; do
  case "$a" in -artifact_prefix=*) p=${a#-artifact_prefix=} ;; -runs=*) exit 1 ;; esac
done
echo boom >"${p}crash-1"
echo "==1==ERROR: AddressSanitizer: heap-buffer-overflow"
exit 1
FZ
# infra_fuzzer: the first run dies at exit without an input (as LeakSanitizer
# under ptrace did), the rerun passes.
cat >"$work/fuzzbin/tests/infra_fuzzer" <<'FZ'
#!/bin/bash
if [ ! -f "$FAKE/infra_ran" ]; then
  touch "$FAKE/infra_ran"
  echo "==1==LeakSanitizer has encountered a fatal error."
  exit 1
fi
exit 0
FZ
chmod +x "$work/fuzzbin/tests/"*

export FAKE="$work/fake" FAKE_FUZZBIN="$work/fuzzbin" TMPDIR="$work/tmp"
export PATH="$work/bin:$PATH" KILN_TEST_NO_INSTALL=1 FUZZ_SECONDS=1
mkdir -p "$FAKE"
failures=0

# run NAME WANT_RC WANT_REGEX [ENV...]: runs scripts/test, checks its exit
# code and that its output matches.
run() {
  local name=$1 want_rc=$2 want=$3
  shift 3
  env "$@" "$work/repo/scripts/test" >"$work/$name.out" 2>&1
  local rc=$?
  if [ "$rc" -ne "$want_rc" ] || ! grep -qE -- "$want" "$work/$name.out"; then
    echo "FAIL $name: exit $rc (want $want_rc), output lacks /$want/:"
    sed 's/^/    /' "$work/$name.out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

printf '//a:one_test\n//a:two_test\n' >"$FAKE/targets"
echo 0 >"$FAKE/test_rc"
printf '%s\n' '//a:one_test     PASSED in 0.1s' '//a:two_test     PASSED in 0.2s' \
  >"$FAKE/test_out"
run all_pass 0 '^2 passed, 0 failed$' KILN_TEST_PASSES=unit
grep -q 'NOT RUN: layers asan tsan fuzz' "$work/all_pass.out" ||
  { echo "FAIL all_pass: skipped passes not named"; failures=$((failures + 1)); }

# The summary format changed (no line for a target): a failure, not 0/0.
printf '%s\n' '//a:one_test     PASSED in 0.1s' 'Executed 2 out of 2 tests' \
  >"$FAKE/test_out"
run missing_line 1 '^1 passed, 1 failed$' KILN_TEST_PASSES=unit

printf '%s\n' '//a:one_test     FLAKY, failed in 1 out of 2 in 0.1s' \
  '//a:two_test     NO STATUS' >"$FAKE/test_out"
echo 3 >"$FAKE/test_rc"
run flaky_no_status 1 '^0 passed, 2 failed$' KILN_TEST_PASSES=unit

: >"$FAKE/targets"
run empty_query 1 'unit: query' KILN_TEST_PASSES=unit

run quick 1 'NOT RUN: asan tsan fuzz' KILN_TEST_QUICK=1

# A known fuzzer removed from the build.
printf '%s\n' //tests:loader_fuzzer //tests:yaml_emit_fuzzer //tests:unstash_fuzzer \
  >"$FAKE/fuzzers"
run fuzzer_missing 1 'fuzz: unstash_tar_fuzzer missing' KILN_TEST_PASSES=fuzz

printf '%s\n' //tests:loader_fuzzer //tests:yaml_emit_fuzzer //tests:unstash_fuzzer \
  //tests:unstash_tar_fuzzer >"$FAKE/fuzzers"
run fuzz_all 0 '^4 passed, 0 failed$' KILN_TEST_PASSES=fuzz

# A sanitizer failure without an input: rerun once, pass, and say so.
printf '%s\n' //tests:loader_fuzzer //tests:yaml_emit_fuzzer //tests:unstash_fuzzer \
  //tests:unstash_tar_fuzzer //tests:infra_fuzzer >"$FAKE/fuzzers"
run fuzz_infra 0 'note: fuzz: //tests:infra_fuzzer: first run failed' KILN_TEST_PASSES=fuzz

# A finding: the reproducer is kept, in a directory the summary names.
printf '%s\n' //tests:loader_fuzzer //tests:yaml_emit_fuzzer //tests:unstash_fuzzer \
  //tests:unstash_tar_fuzzer //tests:crash_fuzzer >"$FAKE/fuzzers"
run fuzz_finding 1 'FINDING' KILN_TEST_PASSES=fuzz
kept=$(sed -n 's/^logs and reproducers kept in //p' "$work/fuzz_finding.out")
if [ -z "$kept" ] || ! ls "$kept"/crash_fuzzer-crash-1 >/dev/null 2>&1; then
  echo "FAIL fuzz_finding: reproducer not kept (dir: '${kept}')"
  failures=$((failures + 1))
fi

# Layers: five rules pass on an empty answer; the allowed kind lookups (the
# registry, a switch on another oneof) do not count as a kind switch.
mkdir -p "$work/repo/engine/pipeline" "$work/repo/engine/kinds"
printf 'const KindSpec* FindKind(v1::Task::KindCase k);\nreturn FindKind(task.kind_case());\n' \
  >"$work/repo/engine/pipeline/kind_spec.h"
printf 'switch (c.kind_case()) {\n  case v1::Condition::kAll:\n' \
  >"$work/repo/engine/pipeline/condition.cc"
printf 'case v1::Task::kRun:\n' >"$work/repo/engine/kinds/registry.cc"
run layers_ok 0 '^8 passed, 0 failed$' KILN_TEST_PASSES=layers
# A planted production edge from an executor into the engine.
echo "kind('cc_library|cc_binary', //executors/...)" >"$FAKE/layers_when"
echo "//engine/store:run_store" >"$FAKE/layers"
run layers_edge 1 'layers: executors: BROKEN' KILN_TEST_PASSES=layers
grep -qE '^7 passed, 1 failed$' "$work/layers_edge.out" ||
  { echo "FAIL layers_edge: not counted as one failed rule"; failures=$((failures + 1)); }
# A front end depending on a store directly (not through the facade).
echo "//engine/service/...)), 1)" >"$FAKE/layers_when"
echo "//engine/cas:artifact_store" >"$FAKE/layers"
run layers_front_end 1 'layers: front_ends: BROKEN' KILN_TEST_PASSES=layers
grep -qE '^7 passed, 1 failed$' "$work/layers_front_end.out" ||
  { echo "FAIL layers_front_end: not counted as one failed rule"; failures=$((failures + 1)); }
grep -q '//engine/cas:artifact_store' "$work/layers_front_end.out" ||
  { echo "FAIL layers_front_end: the edge is not named"; failures=$((failures + 1)); }
# The Kubernetes client depending on the engine.
echo "kind('cc_library|cc_binary', //kube/...)" >"$FAKE/layers_when"
echo "//engine/cas:digest" >"$FAKE/layers"
run layers_kube 1 'layers: kube: BROKEN' KILN_TEST_PASSES=layers
grep -qE '^7 passed, 1 failed$' "$work/layers_kube.out" ||
  { echo "FAIL layers_kube: not counted as one failed rule"; failures=$((failures + 1)); }
: >"$FAKE/layers_when"
# A planted switch on the task kind outside engine/kinds/.
printf 'switch (task.kind_case()) {\n' >"$work/repo/engine/pipeline/plan.cc"
run layers_switch 1 'engine/pipeline/plan.cc:1:' KILN_TEST_PASSES=layers
rm "$work/repo/engine/pipeline/plan.cc"

echo "harness checks: $failures failed"
[ "$failures" -eq 0 ]
