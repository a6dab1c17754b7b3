#!/usr/bin/env bash
# An approval gate over a real `kiln serve`: a submitted run waits at its
# gated task; `kiln serve` is killed with SIGKILL while it waits and
# started again on the same store; the task is still waiting; a viewer, a
# submitter and an approver the task does not list are refused; the listed
# approver approves with `kiln approve` and the run succeeds.
set -euo pipefail

source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/service/serve_lib.sh"
serve_lib_init approval

# Runs a command that must fail with `pattern` on stderr.
refused() {
  local pattern="$1"; shift
  local code=0
  "$@" >"${WORK}/out" 2>"${WORK}/err" || code=$?
  [[ ${code} -ne 0 ]] || fail "accepted: $*"
  grep -q -- "${pattern}" "${WORK}/err" ||
    fail "$*: expected '${pattern}', got: $(cat "${WORK}/err")"
  ok "refused ($(head -c 160 "${WORK}/err"))"
}

mkdir -p "${WORK}/proj"
cat >"${WORK}/proj/pipeline.yaml" <<'YAML'
name: gated
tasks:
  - name: build
    run: {command: [/bin/sh, -c, "echo built > marker"]}
    outputs: [{artifact: app, paths: [marker]}]
  - name: deploy
    needs: [build]
    approval:
      message: ship it?
      approvers: [alice]
    inputs: [app]
    run: {command: [/bin/sh, -c, "cat marker"]}
YAML
STORE="${WORK}/store"
SUB="$(random_token submitter)"; VIEW="$(random_token viewer)"
ALICE="$(random_token alice)"; BOB="$(random_token bob)"
{
  printf '%s submitter ci\n' "${SUB}"
  printf '%s viewer watcher\n' "${VIEW}"
  printf '%s approver alice\n' "${ALICE}"
  printf '%s approver bob\n' "${BOB}"
} >"${WORK}/tokens"
chmod 600 "${WORK}/tokens"
for who in SUB VIEW ALICE BOB; do
  printf '%s\n' "${!who}" >"${WORK}/${who}.token"
  chmod 600 "${WORK}/${who}.token"
done

start_server() {
  start_serve --store "${STORE}" --listen 127.0.0.1:0 \
    --token-file "${WORK}/tokens"
}
as() {  # as WHO VERB ARGS...
  local who="$1" verb="$2"; shift 2
  "${KILN}" "${verb}" "$@" --server "${ADDR}" \
    --token-file "${WORK}/${who}.token" --store "${WORK}/client-store"
}
# Polls until task TASK of RUN is in STATE (kiln runs RUN --json).
await_task() {
  local run="$1" task="$2" state="$3"
  for _ in $(seq 1 300); do
    if as VIEW runs "${run}" --json >"${WORK}/run.json" 2>/dev/null &&
      /usr/bin/python3 - "${WORK}/run.json" "${task}" "${state}" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
tasks = {t["name"]: t for t in run.get("task_list", [])}
sys.exit(0 if tasks.get(sys.argv[2], {}).get("state") == sys.argv[3] else 1)
PY
    then
      return 0
    fi
    sleep 0.1
  done
  fail "${task} never became ${state}: $(cat "${WORK}/run.json")"
}

# A local `kiln run` has nobody to ask: refused before anything runs
# (positioned at the gate), unless the gate is approved with --approve.
refused "pipeline.yaml:9:7: task deploy waits for approval" \
  "${KILN}" run "${WORK}/proj/pipeline.yaml" --store "${WORK}/local-store"
[[ ! -e "${WORK}/proj/marker" ]] || fail "a refused run ran something"
refused "no task nope with an approval gate" \
  "${KILN}" run "${WORK}/proj/pipeline.yaml" --store "${WORK}/local-store" \
  --approve deploy --approve nope
"${KILN}" run "${WORK}/proj/pipeline.yaml" --store "${WORK}/local-store" \
  --approve deploy >"${WORK}/local.out" 2>&1 ||
  fail "kiln run --approve deploy: $(cat "${WORK}/local.out")"
"${KILN}" runs --store "${WORK}/local-store" --json >"${WORK}/local.json"
grep -q '"state": "succeeded"' "${WORK}/local.json" ||
  fail "local run: $(cat "${WORK}/local.json")"
ok "kiln run: refused without --approve, runs with it"

start_server
RUN="$(as SUB submit "${WORK}/proj/pipeline.yaml")"
[[ -n "${RUN}" ]] || fail "no run id"
await_task "${RUN}" deploy waiting_for_approval
await_task "${RUN}" build succeeded
ok "deploy waits for approval"

# SIGKILL while it waits, then a new server on the same store.
kill -KILL "${SERVER_PID}"
wait "${SERVER_PID}" 2>/dev/null || true
SERVER_PID=""
start_server
grep -q "resumed 1 unfinished run" "${WORK}/serve.err" ||
  fail "the run was not resumed: $(cat "${WORK}/serve.err")"
await_task "${RUN}" deploy waiting_for_approval
grep -q '"message": "ship it?"' "${WORK}/run.json" ||
  fail "approval message lost: $(cat "${WORK}/run.json")"
ok "after kill -9 and restart deploy still waits"

refused "needs role approver or admin" as VIEW approve "${RUN}" deploy
refused "needs role approver or admin" as SUB approve "${RUN}" deploy
refused "may not decide task deploy" as BOB approve "${RUN}" deploy
await_task "${RUN}" deploy waiting_for_approval
ok "no decision from a viewer, a submitter or an unlisted approver"

as ALICE approve "${RUN}" deploy --comment "go" >"${WORK}/approve.out" ||
  fail "alice's approval refused"
grep -q "approved deploy of ${RUN} (by alice)" "${WORK}/approve.out" ||
  fail "approve output: $(cat "${WORK}/approve.out")"
refused "not waiting for approval" as ALICE approve "${RUN}" deploy --reject
await_task "${RUN}" deploy succeeded
as VIEW runs "${RUN}" --json >"${WORK}/final.json"
grep -q '"state": "succeeded"' "${WORK}/final.json" ||
  fail "run did not succeed: $(cat "${WORK}/final.json")"
grep -q '"principal": "alice"' "${WORK}/final.json" ||
  fail "decision not recorded: $(cat "${WORK}/final.json")"
ok "approved by alice after the restart: the run succeeded"
echo "approval_restart_test: all checks passed"
