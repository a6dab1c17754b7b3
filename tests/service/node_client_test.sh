#!/usr/bin/env bash
# Starts `kiln serve` on loopback TCP with a token file and runs the Node.js
# client (node/client.js), which drives the service from the .proto files
# alone and holds every assertion.
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
KILN="${RUNFILES}/kiln"
CLIENT="${RUNFILES}/tests/service/node/client.js"
PROTO_DIR="${RUNFILES}/proto"

# node resolves modules next to the real client.js (in the source tree).
NODE_DIR="$(dirname "$(readlink -f "${CLIENT}")")"
if [[ ! -d "${NODE_DIR}/node_modules/@grpc/grpc-js" ]]; then
  echo "missing ${NODE_DIR}/node_modules: run scripts/install-deps" >&2
  exit 1
fi

WORK="$(mktemp -d "${TEST_TMPDIR}/node.XXXXXX")"
TOKEN="node-test-token-$RANDOM$RANDOM$RANDOM"
printf '%s submitter node-test\n' "${TOKEN}" > "${WORK}/tokens"
chmod 600 "${WORK}/tokens"

"${KILN}" serve --store "${WORK}/store" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" >"${WORK}/serve.out" 2>"${WORK}/serve.err" &
SERVER_PID=$!
cleanup() {
  kill -TERM "${SERVER_PID}" 2>/dev/null || true
  wait "${SERVER_PID}" 2>/dev/null || true
  rm -rf "${WORK}"
}
trap cleanup EXIT

ADDR=""
for _ in $(seq 1 300); do
  if ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/serve.out")" &&
    [[ -n "${ADDR}" ]]; then
    break
  fi
  if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
    echo "kiln serve exited:" >&2
    cat "${WORK}/serve.err" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "${ADDR}" ]] || { echo "kiln serve did not start" >&2; exit 1; }

KILN_ADDR="${ADDR}" KILN_TOKEN="${TOKEN}" KILN_PROTO_DIR="${PROTO_DIR}" \
  timeout 120 node "${CLIENT}"

# Graceful shutdown on SIGTERM: the server exits 0 and removes nothing it
# should keep.
kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}"
test -f "${WORK}/store/runs.db"
