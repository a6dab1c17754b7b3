#!/bin/bash
# `kiln run` in a git work tree: the trigger comes from HEAD (flags win), a
# dirty tree is marked, --rev runs a committed revision's exact tree (not
# the work tree), and the errors are clear. Repositories are made with the
# git command line, apart from kiln's libgit2 reader.
set -u
kiln="$TEST_SRCDIR/kiln/kiln"
fail=0
expect() {  # DESCRIPTION FILE PATTERN
  grep -qE -- "$3" "$2" || { echo "FAIL $1: no line matching /$3/ in:"; cat "$2"; fail=1; }
}
export HOME="$TEST_TMPDIR" GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Ada GIT_AUTHOR_EMAIL=ada@example.org
export GIT_COMMITTER_NAME=Ada GIT_COMMITTER_EMAIL=ada@example.org
export GIT_AUTHOR_DATE="1700000000 +0000" GIT_COMMITTER_DATE="1700000000 +0000"
repo="$TEST_TMPDIR/repo"
store="$TEST_TMPDIR/store"
out="$TEST_TMPDIR/out"
mkdir -p "$repo/ci"
cd "$repo"
git init -q -b main
cat >ci/pipeline.yaml <<'YAML'
name: gitdemo
tasks:
  - name: show
    run:
      image: host
      command: [sh, -c, 'echo "rev=${trigger.revision} branch=${trigger.branch} time=${trigger.commit_time} author=${trigger.author}"; cat version.txt; ls']
    inputs: [source]
YAML
echo one >ci/version.txt
git add -A && git commit -q -m "first commit"
first=$(git rev-parse HEAD)
echo two >ci/version.txt
git commit -q -am "shipit: second"
second=$(git rev-parse HEAD)

"$kiln" run ci/pipeline.yaml --store "$store" >"$out" 2>&1 || { echo "FAIL: clean run"; cat "$out"; fail=1; }
expect "revision from HEAD" "$out" "rev=$second branch=main time=1700000000 author=Ada <ada@example.org>"
expect "start line names the commit" "$out" "kiln: run .* \(main@${second:0:12}\)"
expect "work tree content" "$out" '^show \| two$'

echo "not committed" >ci/scratch.txt
"$kiln" run ci/pipeline.yaml --store "$store" >"$out" 2>&1 || { echo "FAIL: dirty run"; cat "$out"; fail=1; }
expect "dirty is marked" "$out" "\(main@${second:0:12} \(uncommitted changes\)\)"
expect "the dirty file is in the source" "$out" 'scratch.txt'

"$kiln" run ci/pipeline.yaml --store "$store" --branch feature/x --revision abc >"$out" 2>&1 || fail=1
expect "flags win" "$out" "rev=abc branch=feature/x"

"$kiln" run ci/pipeline.yaml --store "$store" --rev HEAD~1 >"$out" 2>&1 || { echo "FAIL: --rev run"; cat "$out"; fail=1; }
expect "--rev revision" "$out" "rev=$first branch= "
expect "--rev runs the committed tree" "$out" '^show \| one$'
expect "--rev start line" "$out" "\(HEAD~1@${first:0:12} \(committed tree\)\)"
if grep -q scratch.txt "$out"; then echo "FAIL: --rev saw an uncommitted file"; fail=1; fi
ls "${TMPDIR:-/tmp}" | grep -q '^kiln-rev-' && { echo "FAIL: the --rev export was left behind"; fail=1; }

"$kiln" run ci/pipeline.yaml --store "$store" --no-git >"$out" 2>&1 || fail=1
expect "--no-git leaves the trigger empty" "$out" "rev= branch= time=0 author=$"

"$kiln" run ci/pipeline.yaml --store "$store" --rev no-such-thing >"$out" 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: unknown --rev should exit 2, got $rc"; fail=1; }
expect "unknown revision" "$out" "revision 'no-such-thing'"

git rm -q ci/pipeline.yaml && git commit -q -m "drop the pipeline" && git checkout -q HEAD~1 -- ci/pipeline.yaml
"$kiln" run ci/pipeline.yaml --store "$store" --rev HEAD >"$out" 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: a pipeline missing from --rev should exit 2, got $rc"; fail=1; }
expect "missing pipeline" "$out" "'ci/pipeline.yaml' is not a file in that commit"

mkdir -p "$TEST_TMPDIR/plain" && cp ci/pipeline.yaml "$TEST_TMPDIR/plain/"
"$kiln" run "$TEST_TMPDIR/plain/pipeline.yaml" --store "$store" --rev HEAD >"$out" 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --rev outside git should exit 2, got $rc"; fail=1; }
expect "outside git" "$out" "is not inside a git work tree"

"$kiln" graph ci/pipeline.yaml --rev HEAD~2 >"$out" 2>&1 || { echo "FAIL: graph --rev"; cat "$out"; fail=1; }
expect "graph --rev" "$out" '^show \[run\]$'

# git is asked on a thread while the file loads and the store opens; its
# error still stops the run before any task, with exit 2.
repo3="$TEST_TMPDIR/unborn"
mkdir -p "$repo3" && cd "$repo3" && git init -q -b main
printf 'name: unborn\ntasks:\n  - name: t\n    run: {image: host, command: [touch, %s]}\n' \
  "$TEST_TMPDIR/unborn-ran" >pipeline.yaml
"$kiln" run pipeline.yaml --store "$store" >"$out" 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: a repository without commits should exit 2, got $rc"; fail=1; }
expect "no commits yet" "$out" "has no commits yet \(--no-git runs without git\)"
[ -e "$TEST_TMPDIR/unborn-ran" ] && { echo "FAIL: a task ran although git failed"; fail=1; }
# A broken pipeline there: its error is reported, not lost behind git's.
printf 'name: unborn\ntasks: 3\n' >pipeline.yaml
"$kiln" run pipeline.yaml --store "$store" >"$out" 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: a broken pipeline should exit 2, got $rc"; fail=1; }
expect "the pipeline error" "$out" "pipeline.yaml:2:"

# The changelog: a new branch's commits since the merge base with main, then
# only the commits since the last successful run on that branch.
repo2="$TEST_TMPDIR/repo2"
mkdir -p "$repo2" && cd "$repo2" && git init -q -b main
cat >pipeline.yaml <<'YAML'
name: changelog
tasks:
  - name: gated
    when: {changelog: '^shipit'}
    run: {image: host, command: [echo, gated ran]}
YAML
git add -A && git commit -q -m base
git checkout -q -b feature
git commit -q --allow-empty -m "shipit: first on the branch"
git commit -q --allow-empty -m "more work"
"$kiln" run pipeline.yaml --store "$store" >"$out" 2>&1 || { echo "FAIL: changelog run 1"; cat "$out"; fail=1; }
expect "changelog since the merge base" "$out" '^gated \| gated ran$'
git commit -q --allow-empty -m "later, no shipit"
"$kiln" run pipeline.yaml --store "$store" >"$out" 2>&1 || { echo "FAIL: changelog run 2"; cat "$out"; fail=1; }
expect "changelog since the last successful run" "$out" "gated: skipped \(no changelog entry \(1 commit\) matches"
exit $fail
