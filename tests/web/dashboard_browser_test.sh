#!/usr/bin/env bash
# Starts `kiln serve` with the dashboard on loopback and a token file,
# and runs browser/dashboard.js, which submits a real run (a task that
# sleeps, then one that prints slowly) once the browser is up, drives
# headless chromium and holds every assertion. Screenshots go to the test's undeclared outputs.
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
KILN="${RUNFILES}/kiln"
RECORD="${RUNFILES}/tests/web/record_deployment"
SCRIPT="${RUNFILES}/tests/web/browser/dashboard.js"
NODE_DIR="$(dirname "$(readlink -f "${SCRIPT}")")"
if [[ ! -d "${NODE_DIR}/node_modules/puppeteer-core" ]]; then
  echo "missing ${NODE_DIR}/node_modules: run scripts/install-deps" >&2
  exit 1
fi
CHROMIUM="$(command -v chromium || true)"
[[ -n "${CHROMIUM}" ]] || { echo "chromium not installed: run scripts/install-deps" >&2; exit 1; }

WORK="$(mktemp -d "${TEST_TMPDIR}/web.XXXXXX")"
OUT="${TEST_UNDECLARED_OUTPUTS_DIR:-${WORK}/out}"
mkdir -p "${OUT}"
VIEWER="viewer-web-token-$RANDOM$RANDOM$RANDOM"
SUBMITTER="submitter-web-token-$RANDOM$RANDOM$RANDOM"
printf '%s viewer vera\n%s submitter sam\n' "${VIEWER}" "${SUBMITTER}" >"${WORK}/tokens"
printf '%s\n' "${SUBMITTER}" >"${WORK}/submitter.token"
chmod 600 "${WORK}/tokens" "${WORK}/submitter.token"

# The pipeline's directory is the run's `source`, stashed at submit: keep it
# apart from the browser profile, which chromium writes to meanwhile.
mkdir -p "${WORK}/src"
cat >"${WORK}/src/pipeline.yaml" <<'YAML'
name: dashboard-demo
environments:
  - {name: prod, kind: permanent, namespace: demo-prod}
  - name: 'pr-${trigger.branch}'
    kind: preview
    namespace: 'demo-${trigger.branch_slug}'
    ttl: 48h
tasks:
  - name: warm-up
    run: {command: [/bin/sh, -c, "echo warming up; echo warm > warm.txt; sleep 8; echo warm"]}
    outputs: [{artifact: warm, paths: [warm.txt]}]
  - name: slow
    needs: [warm-up]
    run:
      command:
        - /bin/sh
        - -c
        - |
          i=0
          while [ $i -lt 400 ]; do
            i=$((i+1))
            printf '\033[32mtick %s\033[0m <b>not bold</b>\n' "$i"
            sleep 0.2
          done
  - name: after
    needs: [slow]
    run: {command: [/bin/true]}
YAML

"${KILN}" serve --store "${WORK}/store" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --http-listen 127.0.0.1:0 \
  >"${WORK}/serve.out" 2>"${WORK}/serve.err" &
SERVER_PID=$!
cleanup() {
  kill -TERM "${SERVER_PID}" 2>/dev/null || true
  wait "${SERVER_PID}" 2>/dev/null || true
  rm -rf "${WORK}"
}
trap cleanup EXIT

ADDR="" URL=""
for _ in $(seq 1 300); do
  # (the server may not have created its output file yet)
  ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/serve.out" 2>/dev/null || true)"
  URL="$(sed -n 's/^kiln: dashboard on //p' "${WORK}/serve.out" 2>/dev/null || true)"
  [[ -n "${ADDR}" && -n "${URL}" ]] && break
  if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
    echo "kiln serve exited:" >&2
    cat "${WORK}/serve.err" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "${URL}" ]] || { echo "kiln serve did not start the dashboard" >&2; exit 1; }

KILN_URL="${URL}" KILN_BIN="${KILN}" KILN_GRPC="${ADDR}" KILN_RECORD="${RECORD}" \
  KILN_PIPELINE="${WORK}/src/pipeline.yaml" KILN_TOKEN_FILE="${WORK}/submitter.token" \
  KILN_STORE="${WORK}/store" KILN_VIEWER="${VIEWER}" \
  KILN_SUBMITTER="${SUBMITTER}" KILN_CHROMIUM="${CHROMIUM}" \
  KILN_OUT="${OUT}" KILN_PROFILE="${WORK}/profile" \
  timeout 180 node "${SCRIPT}"
