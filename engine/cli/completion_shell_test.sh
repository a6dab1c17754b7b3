#!/usr/bin/env bash
# `kiln completion bash|zsh` loaded into a real bash and a real zsh, asking
# the real binary (kiln __complete) for candidates, in a directory with a
# pipeline.
set -euo pipefail
KILN="$(readlink -f "${TEST_SRCDIR}/${TEST_WORKSPACE}/kiln")"
WORK="$(mktemp -d "${TEST_TMPDIR}/completion.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
cd "${WORK}"
cat >pipeline.yaml <<'YAML'
name: c
params:
  - {name: registry, default: r}
  - {name: region, default: eu}
tasks:
  - {name: build, run: {command: [make]}}
  - {name: bundle, needs: [build], run: {command: [tar]}}
finally:
  - {name: report, run: {command: [echo]}}
YAML
"${KILN}" completion bash >kiln.bash
"${KILN}" completion zsh >kiln.zsh

failures=0
check() {  # check NAME EXPECTED ACTUAL
  if [[ "$2" != "$3" ]]; then
    echo "FAIL $1: expected [$2], got [$3]"
    failures=$((failures + 1))
  else
    echo "ok   $1: [$3]"
  fi
}

# bash: COMP_WORDS/COMP_CWORD as bash sets them, then the function.
in_bash() {  # in_bash CWORD WORD...
  local cword=$1
  shift
  bash -c 'source ./kiln.bash
    COMP_CWORD=$1; shift; COMP_WORDS=("$@")
    _kiln_complete
    if [[ ${#COMPREPLY[@]} -gt 0 ]]; then printf "%s " "${COMPREPLY[@]}"; fi' bash "${cword}" "${KILN}" "$@"
}
check "bash verbs" "run runs " "$(in_bash 1 ru)"
check "bash flags" "--jobs --json " "$(in_bash 2 run --j)"
check "bash event" "pull_request pull_request_closed push " "$(in_bash 3 run --event p)"
check "bash param" "region= registry= " "$(in_bash 3 run --param re)"
check "bash tasks" "build bundle " "$(in_bash 3 logs r-1 b)"
check "bash finally task" "report " "$(in_bash 3 artifacts r-1 re)"
check "bash nothing" "" "$(in_bash 2 run pipe)"
if ! grep -q "^complete -o default -o bashdefault -F _kiln_complete kiln$" kiln.bash; then
  echo "FAIL bash: no complete line"
  failures=$((failures + 1))
fi

# zsh: words/CURRENT as the completion system sets them (1-based), with
# compadd and _files recording what the function offers.
in_zsh() {  # in_zsh CURRENT WORD...
  local current=$1
  shift
  zsh -f -c 'compadd() { local a; for a in "$@"; do
        [[ $a == -- || $a == -S || -z $a ]] || print -rn -- "$a "; done }
      _files() { print -rn -- "<files>" }
      source ./kiln.zsh
      CURRENT=$1; shift; words=("$@")
      _kiln' zsh "${current}" "${KILN}" "$@"
}
check "zsh verbs" "run runs " "$(in_zsh 2 ru)"
check "zsh flags" "--jobs --json " "$(in_zsh 3 run --j)"
check "zsh param" "region= registry= " "$(in_zsh 4 run --param re)"
check "zsh tasks" "build bundle " "$(in_zsh 4 logs r-1 b)"
check "zsh files" "<files>" "$(in_zsh 3 run pipe)"
zsh -n kiln.zsh || { echo "FAIL zsh: syntax"; failures=$((failures + 1)); }

# The helper stays out of `kiln --help`; `completion` is listed.
if "${KILN}" --help | grep -q "__complete"; then
  echo "FAIL: __complete listed in kiln --help"
  failures=$((failures + 1))
fi
"${KILN}" --help | grep -q "completion" || {
  echo "FAIL: completion missing from kiln --help"
  failures=$((failures + 1))
}
# Every verb `kiln --help` lists has `kiln VERB --help`: exit 0, and its
# first line is "usage: kiln VERB ..." (said once).
verbs=$("${KILN}" --help | awk '/^verbs:/ { f = 1; next } f && /^  [a-z]/ { print $1 }')
[[ -n "${verbs}" ]] || { echo "FAIL: no verbs in kiln --help"; failures=$((failures + 1)); }
for verb in ${verbs}; do
  if ! help=$("${KILN}" "${verb}" --help 2>&1); then
    echo "FAIL: kiln ${verb} --help exits non-zero"
    failures=$((failures + 1))
  fi
  first=$(grep -m1 -v '^$' <<<"${help}")
  if [[ "${first}" != "usage: kiln ${verb}"* ]]; then
    echo "FAIL: kiln ${verb} --help begins [${first}]"
    failures=$((failures + 1))
  fi
done
# An unknown shell is a usage error.
if "${KILN}" completion fish >/dev/null 2>&1; then
  echo "FAIL: completion fish succeeded"
  failures=$((failures + 1))
fi
[[ ${failures} -eq 0 ]]
