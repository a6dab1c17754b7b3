#!/usr/bin/env bash
# `kiln submit --watch` over a real `kiln serve` (one SubmitAndWatchRun
# call): the run id is the first line, before any event; the run's events
# follow to its end; the exit code is the run's outcome; the same
# idempotency key follows the same run again; a caller whose role may not
# submit is refused with nothing printed on stdout. The server starts one
# run at a time (--max-starts 1): concurrent submits wait their turn and
# all finish; --max-starts 0 is a usage error.
set -euo pipefail

source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/service/serve_lib.sh"
serve_lib_init submit-watch

mkdir -p "${WORK}/good" "${WORK}/bad"
cat >"${WORK}/good/pipeline.yaml" <<'YAML'
name: watched
tasks:
  - name: build
    run: {command: [/bin/sh, -c, "echo building; echo built > marker"]}
    outputs: [{artifact: app, paths: [marker]}]
  - name: check
    needs: [build]
    inputs: [app]
    run: {command: [/bin/sh, -c, "cat marker"]}
YAML
cat >"${WORK}/bad/pipeline.yaml" <<'YAML'
name: failing
tasks:
  - name: broken
    run: {command: [/bin/sh, -c, "echo about to fail; exit 3"]}
YAML

SUB="$(random_token submitter)"
VIEW="$(random_token viewer)"
{
  printf '%s submitter ci\n' "${SUB}"
  printf '%s viewer watcher\n' "${VIEW}"
} >"${WORK}/tokens"
chmod 600 "${WORK}/tokens"
for who in SUB VIEW; do
  printf '%s\n' "${!who}" >"${WORK}/${who}.token"
  chmod 600 "${WORK}/${who}.token"
done

CODE=0
"${KILN}" serve --store "${WORK}/store0" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --max-starts 0 >/dev/null 2>"${WORK}/err" ||
  CODE=$?
[[ ${CODE} -eq 2 ]] || fail "--max-starts 0 exited ${CODE}"
grep -q -- "--max-starts must be" "${WORK}/err" ||
  fail "--max-starts 0 unclear: $(cat "${WORK}/err")"
ok "--max-starts 0 is refused ($(head -c 100 "${WORK}/err"))"

start_serve --store "${WORK}/store" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --max-starts 1 --max-extractions 16

# submit_watch WHO DIR [ARGS...]: stdout to $WORK/out, the exit code to $CODE.
submit_watch() {
  local who="$1" dir="$2"; shift 2
  CODE=0
  NO_COLOR=1 "${KILN}" submit "${WORK}/${dir}/pipeline.yaml" --watch "$@" \
    --server "${ADDR}" --token-file "${WORK}/${who}.token" \
    --store "${WORK}/client-store" >"${WORK}/out" 2>"${WORK}/err" || CODE=$?
}

submit_watch SUB good --idempotency-key same-run
[[ ${CODE} -eq 0 ]] || fail "submit --watch exited ${CODE}: $(cat "${WORK}/err")"
RUN="$(head -1 "${WORK}/out")"
[[ "${RUN}" =~ ^r[0-9]{8}- ]] || fail "first line is not a run id: $(cat "${WORK}/out")"
grep -q "^task build SUCCEEDED attempt 1$" "${WORK}/out" || fail "no build event: $(cat "${WORK}/out")"
[[ "$(sed -n 2p "${WORK}/out")" == "run RUNNING" ]] ||
  fail "the run's first event is not second: $(cat "${WORK}/out")"
grep -q "^build| building$" "${WORK}/out" || fail "no build log line: $(cat "${WORK}/out")"
grep -q "^check| built$" "${WORK}/out" || fail "no check log line: $(cat "${WORK}/out")"
[[ "$(tail -1 "${WORK}/out")" == "run SUCCEEDED" ]] ||
  fail "last line is not the run's end: $(cat "${WORK}/out")"
cp "${WORK}/out" "${WORK}/first.out"
ok "submit --watch: id first, events to the end, exit 0"

submit_watch SUB good --idempotency-key same-run
[[ ${CODE} -eq 0 ]] || fail "second submit --watch exited ${CODE}"
cmp -s "${WORK}/out" "${WORK}/first.out" ||
  fail "the same key streamed something else: $(diff "${WORK}/first.out" "${WORK}/out")"
ok "the same idempotency key follows the same run again"

submit_watch SUB bad
[[ ${CODE} -eq 1 ]] || fail "a failing run exited ${CODE}: $(cat "${WORK}/out")"
head -1 "${WORK}/out" | grep -Eq '^r[0-9]{8}-' || fail "no run id: $(cat "${WORK}/out")"
grep -q "^task broken FAILED attempt 1 exit 3" "${WORK}/out" ||
  fail "no failure event: $(cat "${WORK}/out")"
ok "a failing run: exit 1 after its events"

submit_watch VIEW good
[[ ${CODE} -ne 0 ]] || fail "a viewer submitted: $(cat "${WORK}/out")"
[[ ! -s "${WORK}/out" ]] || fail "a refused submit printed: $(cat "${WORK}/out")"
grep -qi "permission\|role" "${WORK}/err" || fail "refusal unclear: $(cat "${WORK}/err")"
ok "a viewer is refused before any run starts ($(head -c 120 "${WORK}/err"))"

# On a terminal (script(1) gives the call a pty): a started run draws the
# live progress view and ends with its summary; a refused submit draws no
# progress frame (the view is made at the run's first event), only the
# refusal.
live_submit() {
  local who="$1" out="$2"
  CODE=0
  env -u NO_COLOR TERM=xterm script -qec "'${KILN}' submit '${WORK}/good/pipeline.yaml' --watch \
    --server '${ADDR}' --token-file '${WORK}/${who}.token' \
    --store '${WORK}/client-store-live'" /dev/null >"${out}" 2>&1 </dev/null || CODE=$?
}
live_submit SUB "${WORK}/live.out"
[[ ${CODE} -eq 0 ]] || fail "live submit --watch exited ${CODE}: $(cat -v "${WORK}/live.out")"
grep -q $'\x1b\[' "${WORK}/live.out" ||
  fail "no live view on a terminal: $(cat -v "${WORK}/live.out")"
grep -q "build" "${WORK}/live.out" || fail "live view without the task: $(cat -v "${WORK}/live.out")"
live_submit VIEW "${WORK}/live-refused.out"
[[ ${CODE} -ne 0 ]] || fail "a viewer submitted on a terminal: $(cat -v "${WORK}/live-refused.out")"
grep -qi "permission\|role" "${WORK}/live-refused.out" ||
  fail "live refusal unclear: $(cat -v "${WORK}/live-refused.out")"
if grep -q "done, " "${WORK}/live-refused.out"; then
  fail "a refused submit drew a progress frame: $(cat -v "${WORK}/live-refused.out")"
fi
ok "on a terminal: the live view for a run, none for a refusal"

# Six submits at once through one place: each waits its turn, each run
# ends SUCCEEDED with its own id.
pids=()
for i in 1 2 3 4 5 6; do
  NO_COLOR=1 "${KILN}" submit "${WORK}/good/pipeline.yaml" --watch \
    --idempotency-key "many-${i}" --server "${ADDR}" \
    --token-file "${WORK}/SUB.token" --store "${WORK}/client-store-${i}" \
    >"${WORK}/many-${i}.out" 2>"${WORK}/many-${i}.err" &
  pids+=($!)
done
for i in 1 2 3 4 5 6; do
  wait "${pids[$((i - 1))]}" ||
    fail "concurrent submit ${i} failed: $(cat "${WORK}/many-${i}.err")"
  [[ "$(tail -1 "${WORK}/many-${i}.out")" == "run SUCCEEDED" ]] ||
    fail "concurrent submit ${i}: $(cat "${WORK}/many-${i}.out")"
done
[[ "$(head -qn1 "${WORK}"/many-*.out | sort -u | wc -l)" -eq 6 ]] ||
  fail "concurrent submits shared a run: $(head -qn1 "${WORK}"/many-*.out)"
ok "six submits at once with --max-starts 1: each ran to SUCCEEDED"
