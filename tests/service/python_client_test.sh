#!/usr/bin/env bash
# Starts `kiln serve` on loopback TCP with a token file and runs the Python
# client (python/client.py: Debian's python3-grpcio, the protos compiled at
# test time), which submits a run, watches it, downloads its output
# artifact with DownloadArtifact and holds every assertion.
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
KILN="${RUNFILES}/kiln"
CLIENT="${RUNFILES}/tests/service/python/client.py"
PROTO_DIR="${RUNFILES}/proto"
# Debian's interpreter (its dist-packages hold python3-grpcio), not
# whatever python3 comes first on PATH.
PYTHON=/usr/bin/python3
if ! "${PYTHON}" -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "python3-grpcio / python3-protobuf missing: run scripts/install-deps" >&2
  exit 1
fi

WORK="$(mktemp -d "${TEST_TMPDIR}/py.XXXXXX")"
TOKEN="py-test-token-$RANDOM$RANDOM$RANDOM"
printf '%s viewer py-viewer\n' "v-${TOKEN}" > "${WORK}/tokens"
printf '%s submitter py-test\n' "${TOKEN}" >> "${WORK}/tokens"
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

KILN_ADDR="${ADDR}" KILN_TOKEN="${TOKEN}" KILN_VIEWER_TOKEN="v-${TOKEN}" \
  KILN_PROTO_DIR="${PROTO_DIR}" \
  WORK_DIR="${WORK}" timeout 180 "${PYTHON}" "${CLIENT}"
