#!/usr/bin/env bash
# Starts `kiln serve` with the dashboard on loopback and a token file
# (an approver, a viewer, a submitter) and runs browser/approval.js: a
# submitted run appears in the live runs list, waits at its gated task,
# and finishes once the approver clicks Approve.
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
KILN="${RUNFILES}/kiln"
SCRIPT="${RUNFILES}/tests/web/browser/approval.js"
NODE_DIR="$(dirname "$(readlink -f "${SCRIPT}")")"
if [[ ! -d "${NODE_DIR}/node_modules/puppeteer-core" ]]; then
  echo "missing ${NODE_DIR}/node_modules: run scripts/install-deps" >&2
  exit 1
fi
CHROMIUM="$(command -v chromium || true)"
[[ -n "${CHROMIUM}" ]] || { echo "chromium not installed: run scripts/install-deps" >&2; exit 1; }

WORK="$(mktemp -d "${TEST_TMPDIR}/approval-web.XXXXXX")"
OUT="${TEST_UNDECLARED_OUTPUTS_DIR:-${WORK}/out}"
mkdir -p "${OUT}"
APPROVER="approver-web-token-$RANDOM$RANDOM$RANDOM"
VIEWER="viewer-web-token-$RANDOM$RANDOM$RANDOM"
SUBMITTER="submitter-web-token-$RANDOM$RANDOM$RANDOM"
printf '%s approver ann\n%s viewer vera\n%s submitter sam\n' \
  "${APPROVER}" "${VIEWER}" "${SUBMITTER}" >"${WORK}/tokens"
printf '%s\n' "${SUBMITTER}" >"${WORK}/submitter.token"
chmod 600 "${WORK}/tokens" "${WORK}/submitter.token"

mkdir -p "${WORK}/src"
cat >"${WORK}/src/pipeline.yaml" <<'YAML'
name: gated-demo
tasks:
  - name: build
    run: {command: [/bin/sh, -c, "echo built"]}
  - name: deploy
    needs: [build]
    approval: {message: "ship it?"}
    run: {command: [/bin/sh, -c, "echo deployed"]}
  - name: done
    needs: [deploy]
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

KILN_URL="${URL}" KILN_BIN="${KILN}" KILN_GRPC="${ADDR}" \
  KILN_PIPELINE="${WORK}/src/pipeline.yaml" KILN_TOKEN_FILE="${WORK}/submitter.token" \
  KILN_STORE="${WORK}/client-store" KILN_APPROVER="${APPROVER}" KILN_VIEWER="${VIEWER}" KILN_CHROMIUM="${CHROMIUM}" \
  KILN_OUT="${OUT}" KILN_PROFILE="${WORK}/profile" \
  timeout 150 node "${SCRIPT}"
