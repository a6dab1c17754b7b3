#!/usr/bin/env bash
# Getting a task's output out with the real `kiln`: the output digest on
# `kiln run --json`'s task-finished event and in `kiln runs RUN --json`,
# `kiln artifacts RUN [TASK]`, `kiln unstash RUN/TASK/ARTIFACT DIR` in the
# local store and with --server against `kiln serve` (downloaded into
# another store), and the refusals: unknown run/task/artifact, a
# path-traversal name, a non-empty target without --force, a symlink at
# the target (never followed).
set -euo pipefail

source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/service/serve_lib.sh"
serve_lib_init art

# Runs a command that must fail (exit 1) with `pattern` on stderr.
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
name: outs
tasks:
  - name: build
    run:
      command: [/bin/sh, -c, "mkdir -p dist/sub && printf 'app\n' > dist/app && printf 'x%.0s' $(seq 1 1000) > dist/sub/big && ln -s app dist/link"]
    outputs: [{artifact: app, paths: [dist]}]
  - name: check
    needs: [build]
    run: {command: [/bin/true]}
YAML
STORE="${WORK}/store"

# kiln run --json: the task-finished event carries the output digest.
"${KILN}" run "${WORK}/proj/pipeline.yaml" --store "${STORE}" --json \
  >"${WORK}/events" 2>"${WORK}/run.err" || { cat "${WORK}/run.err"; fail "kiln run"; }
DIGEST="$(grep '"TASK_SUCCEEDED"' "${WORK}/events" | grep '"build"' |
  sed -n 's/.*"outputs":{"app":"\(sha256:[0-9a-f]*\)"}.*/\1/p')"
[[ "${DIGEST}" =~ ^sha256:[0-9a-f]{64}$ ]] ||
  fail "no output digest on build's event: $(grep build "${WORK}/events")"
ok "kiln run --json: build -> app ${DIGEST}"
RUN="$("${KILN}" runs --store "${STORE}" --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p' | head -1)"
[[ -n "${RUN}" ]] || fail "no run id"

# kiln runs RUN --json: the tasks with their outputs.
"${KILN}" runs "${RUN}" --store "${STORE}" --json >"${WORK}/run.json"
grep -q "\"app\": \"${DIGEST}\"" "${WORK}/run.json" ||
  fail "kiln runs RUN --json lacks the output: $(cat "${WORK}/run.json")"
ok "kiln runs RUN --json has app ${DIGEST}"

# kiln artifacts RUN [TASK]
"${KILN}" artifacts "${RUN}" --store "${STORE}" --json >"${WORK}/arts.json"
grep -q "\"digest\": \"${DIGEST}\"" "${WORK}/arts.json" || fail "artifacts --json"
grep -q '"files": 2' "${WORK}/arts.json" || fail "files: $(cat "${WORK}/arts.json")"
grep -q '"file_bytes": 1004' "${WORK}/arts.json" || fail "bytes: $(cat "${WORK}/arts.json")"
grep -q '"symlinks": 1' "${WORK}/arts.json" || fail "symlinks"
"${KILN}" artifacts "${RUN}" build --store "${STORE}" >"${WORK}/arts.txt"
grep -q "^build  app .*${DIGEST} .*1004 .*2" "${WORK}/arts.txt" ||
  fail "artifacts table: $(cat "${WORK}/arts.txt")"
ok "kiln artifacts"
[[ "$("${KILN}" artifacts "${RUN}" check --store "${STORE}" --json)" == "[]" ]] ||
  fail "check has no outputs"

# kiln unstash RUN/TASK/ARTIFACT DIR, locally.
"${KILN}" unstash "${RUN}/build/app" "${WORK}/out1" --store "${STORE}"
[[ "$(cat "${WORK}/out1/dist/app")" == "app" ]] || fail "content"
[[ "$(stat -c %s "${WORK}/out1/dist/sub/big")" == 1000 ]] || fail "big"
[[ "$(readlink "${WORK}/out1/dist/link")" == "app" ]] || fail "link"
ok "kiln unstash RUN/build/app"
refused "not an empty directory" \
  "${KILN}" unstash "${RUN}/build/app" "${WORK}/out1" --store "${STORE}"
echo stale >"${WORK}/out1/stale"
"${KILN}" unstash "${RUN}/build/app" "${WORK}/out1" --store "${STORE}" --force
[[ ! -e "${WORK}/out1/stale" ]] || fail "--force kept old content"
ok "--force replaces"
# A symlink at DIR is never followed.
mkdir "${WORK}/victim"; echo keep >"${WORK}/victim/keep"
ln -s "${WORK}/victim" "${WORK}/trap"
refused "not an empty directory" \
  "${KILN}" unstash "${RUN}/build/app" "${WORK}/trap" --store "${STORE}"
"${KILN}" unstash "${RUN}/build/app" "${WORK}/trap" --store "${STORE}" --force
[[ ! -L "${WORK}/trap" && -f "${WORK}/trap/dist/app" ]] || fail "link replaced"
[[ "$(ls "${WORK}/victim")" == "keep" ]] || fail "wrote through the symlink"
ok "a symlink at DIR is replaced, not followed"
# The digest form still works.
"${KILN}" unstash "${DIGEST}" "${WORK}/out2" --store "${STORE}"
cmp "${WORK}/out1/dist/sub/big" "${WORK}/out2/dist/sub/big"

refused "no task \"nope\"" "${KILN}" unstash "${RUN}/nope/app" "${WORK}/x" --store "${STORE}"
refused "no output artifact \"nope\"" "${KILN}" unstash "${RUN}/build/nope" "${WORK}/x" --store "${STORE}"
refused "no output artifact \"../../etc\"" "${KILN}" unstash "${RUN}/build/../../etc" "${WORK}/x" --store "${STORE}"
refused "not found\|unknown run\|no run" "${KILN}" unstash "no-such-run/build/app" "${WORK}/x" --store "${STORE}"
refused "expected RUN/TASK/ARTIFACT" "${KILN}" unstash "${RUN}/build" "${WORK}/x" --store "${STORE}"
refused "no task" "${KILN}" artifacts "${RUN}" ghost --store "${STORE}"
[[ ! -e "${WORK}/x" ]] || fail "a refused unstash left ${WORK}/x"

# The same against `kiln serve`, from a client with its own store.
TOKEN="$(random_token art-token)"
printf '%s viewer cli\n' "${TOKEN}" >"${WORK}/tokens"
chmod 600 "${WORK}/tokens"
printf '%s\n' "${TOKEN}" >"${WORK}/client-token"
chmod 600 "${WORK}/client-token"
start_serve --store "${STORE}" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens"
CLIENT=(--server "${ADDR}" --token-file "${WORK}/client-token" --store "${WORK}/client-store")

"${KILN}" artifacts "${RUN}" "${CLIENT[@]}" --json >"${WORK}/rarts.json"
grep -q "\"digest\": \"${DIGEST}\"" "${WORK}/rarts.json" || fail "remote artifacts"
"${KILN}" runs "${RUN}" "${CLIENT[@]}" --json | grep -q "\"app\": \"${DIGEST}\"" ||
  fail "remote runs RUN --json"
"${KILN}" unstash "${RUN}/build/app" "${WORK}/rout" "${CLIENT[@]}"
diff -r "${WORK}/out1" "${WORK}/rout" || fail "remote unstash differs"
ok "kiln unstash --server"
# The download landed in the client's own store.
"${KILN}" unstash "${DIGEST}" "${WORK}/rout2" --store "${WORK}/client-store"
refused "not an empty directory" "${KILN}" unstash "${RUN}/build/app" "${WORK}/rout" "${CLIENT[@]}"
refused "no output artifact" "${KILN}" unstash "${RUN}/build/..%2f..%2fetc" "${WORK}/y" "${CLIENT[@]}"
refused "no output artifact \"../../etc/passwd\"" "${KILN}" unstash "${RUN}/build/../../etc/passwd" "${WORK}/y" "${CLIENT[@]}"
refused "no task" "${KILN}" unstash "${RUN}/ghost/app" "${WORK}/y" "${CLIENT[@]}"
refused "not found\|unknown run\|no run" "${KILN}" unstash "nope/build/app" "${WORK}/y" "${CLIENT[@]}"
printf 'wrong\n' >"${WORK}/bad-token"; chmod 600 "${WORK}/bad-token"
refused "" "${KILN}" unstash "${RUN}/build/app" "${WORK}/y" --server "${ADDR}" \
  --token-file "${WORK}/bad-token" --store "${WORK}/client-store"
[[ ! -e "${WORK}/y" ]] || fail "a refused unstash left ${WORK}/y"
echo "artifacts_cli_test: all checks passed"
