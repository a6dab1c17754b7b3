#!/usr/bin/env bash
# The service's bounds, checked from outside: `kiln serve` on loopback TCP
# with small limits, driven by node/limits.js (which holds the assertions),
# plus the start-up checks (TLS key permissions, the plaintext warning).
set -euo pipefail

RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
KILN="${RUNFILES}/kiln"
CLIENT="${RUNFILES}/tests/service/node/limits.js"
PROTO_DIR="${RUNFILES}/proto"

NODE_DIR="$(dirname "$(readlink -f "${CLIENT}")")"
if [[ ! -d "${NODE_DIR}/node_modules/@grpc/grpc-js" ]]; then
  echo "missing ${NODE_DIR}/node_modules: run scripts/install-deps" >&2
  exit 1
fi

source "${RUNFILES}/tests/service/serve_lib.sh"
serve_lib_init limits
tok() { random_token "limits-$1"; }
ADMIN="$(tok admin)"
SUBMITTER="$(tok submitter)"
VIEWER1="$(tok viewer1)"
VIEWER2="$(tok viewer2)"
{
  echo "${ADMIN} admin root"
  echo "${SUBMITTER} submitter ci"
  echo "${VIEWER1} viewer v1"
  echo "${VIEWER2} viewer v2"
} > "${WORK}/tokens"
chmod 600 "${WORK}/tokens"

# 1. A TLS key readable by group or others is refused, as the token file is.
printf 'not a real certificate\n' > "${WORK}/cert.pem"
printf 'not a real key\n' > "${WORK}/key.pem"
chmod 644 "${WORK}/key.pem"
if "${KILN}" serve --store "${WORK}/tls-store" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --tls-cert "${WORK}/cert.pem" \
  --tls-key "${WORK}/key.pem" >"${WORK}/tls.out" 2>"${WORK}/tls.err"; then
  echo "kiln serve accepted a world-readable --tls-key" >&2
  exit 1
fi
grep -q "key.pem: TLS key is accessible by group or others" "${WORK}/tls.err" || {
  echo "unexpected error for a world-readable key:" >&2
  cat "${WORK}/tls.err" >&2
  exit 1
}
echo "ok: world-readable TLS key refused"

# 2. The server under test.
start_serve --store "${WORK}/store" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --max-streams 16 --max-streams-per-client 8 \
  --idle-timeout 2s --max-reply-bytes 65536 --max-uploads 1

# 3. Plain TCP (loopback) is announced as unencrypted.
grep -q "warning: TCP without TLS: traffic (tokens included) is unencrypted" \
  "${WORK}/serve.err" || {
  echo "no plaintext warning:" >&2
  cat "${WORK}/serve.err" >&2
  exit 1
}
echo "ok: plaintext warning"

KILN_ADDR="${ADDR}" KILN_PROTO_DIR="${PROTO_DIR}" KILN_PID="${SERVER_PID}" \
  KILN_STORE="${WORK}/store" \
  KILN_ADMIN="${ADMIN}" KILN_SUBMITTER="${SUBMITTER}" \
  KILN_VIEWER1="${VIEWER1}" KILN_VIEWER2="${VIEWER2}" \
  timeout 600 node "${CLIENT}"

kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}"
SERVER_PID=""

# 4. The connection cap, on a server of its own (default idle timeout, so
# held connections stay for the test's length).
"${KILN}" serve --store "${WORK}/store2" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --max-connections 8 \
  >"${WORK}/serve2.out" 2>"${WORK}/serve2.err" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
  # (the server may not have created its output file yet)
  ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/serve2.out" 2>/dev/null || true)"
  [[ -n "${ADDR}" ]] && break
  if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
    echo "kiln serve exited:" >&2
    cat "${WORK}/serve2.err" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "${ADDR}" ]] || { echo "kiln serve did not start" >&2; exit 1; }
KILN_SECTION=connections KILN_ADDR="${ADDR}" KILN_PROTO_DIR="${PROTO_DIR}" \
  KILN_PID="${SERVER_PID}" KILN_STORE="${WORK}/store2" \
  KILN_ADMIN="${ADMIN}" KILN_SUBMITTER="${SUBMITTER}" \
  KILN_VIEWER1="${VIEWER1}" KILN_VIEWER2="${VIEWER2}" \
  timeout 300 node "${CLIENT}"
grep -q "connections open (--max-connections); refusing new ones" \
  "${WORK}/serve2.err" || {
  echo "no warning about refused connections:" >&2
  cat "${WORK}/serve2.err" >&2
  exit 1
}
echo "ok: refused connections are reported"
kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}"
SERVER_PID=""

# 5. The global budget of uploads and extractions, on a server of its own.
"${KILN}" serve --store "${WORK}/store3" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --max-uploads 3 \
  --max-upload-temp-bytes 4194304 --max-source-bytes 1048576 \
  >"${WORK}/serve3.out" 2>"${WORK}/serve3.err" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
  # (the server may not have created its output file yet)
  ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/serve3.out" 2>/dev/null || true)"
  [[ -n "${ADDR}" ]] && break
  if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
    echo "kiln serve exited:" >&2
    cat "${WORK}/serve3.err" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "${ADDR}" ]] || { echo "kiln serve did not start" >&2; exit 1; }
KILN_SECTION=budget KILN_ADDR="${ADDR}" KILN_PROTO_DIR="${PROTO_DIR}" \
  KILN_PID="${SERVER_PID}" KILN_STORE="${WORK}/store3" \
  KILN_ADMIN="${ADMIN}" KILN_SUBMITTER="${SUBMITTER}" \
  KILN_VIEWER1="${VIEWER1}" KILN_VIEWER2="${VIEWER2}" \
  timeout 300 node "${CLIENT}"
kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}"
SERVER_PID=""

# 5b. Free space kept on the store's filesystem, on a server of its own
# that must keep more than any filesystem has.
"${KILN}" serve --store "${WORK}/store4" --listen 127.0.0.1:0 \
  --token-file "${WORK}/tokens" --min-free-bytes 1152921504606846976 \
  >"${WORK}/serve4.out" 2>"${WORK}/serve4.err" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
  # (the server may not have created its output file yet)
  ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/serve4.out" 2>/dev/null || true)"
  [[ -n "${ADDR}" ]] && break
  if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
    echo "kiln serve exited:" >&2
    cat "${WORK}/serve4.err" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "${ADDR}" ]] || { echo "kiln serve did not start" >&2; exit 1; }
KILN_SECTION=diskfree KILN_ADDR="${ADDR}" KILN_PROTO_DIR="${PROTO_DIR}" \
  KILN_PID="${SERVER_PID}" KILN_STORE="${WORK}/store4" \
  KILN_ADMIN="${ADMIN}" KILN_SUBMITTER="${SUBMITTER}" \
  KILN_VIEWER1="${VIEWER1}" KILN_VIEWER2="${VIEWER2}" \
  timeout 120 node "${CLIENT}"
kill -TERM "${SERVER_PID}"
wait "${SERVER_PID}"
SERVER_PID=""

# 6. The connection cap on the listeners gRPC accepts itself: TLS, and the
# unix socket (connection_gate.h), each on a server of its own.
start_server() {  # NAME, serve arguments...
  local name="$1"
  shift
  "${KILN}" serve --store "${WORK}/${name}" "$@" \
    >"${WORK}/${name}.out" 2>"${WORK}/${name}.err" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    # (the server may not have created its output file yet)
    ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/${name}.out" 2>/dev/null || true)"
    [[ -n "${ADDR}" ]] && break
    if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
      echo "kiln serve exited:" >&2
      cat "${WORK}/${name}.err" >&2
      exit 1
    fi
    sleep 0.1
  done
  [[ -n "${ADDR}" ]] || { echo "kiln serve did not start" >&2; exit 1; }
}
stop_server() {  # NAME: the server printed the cap's warning
  grep -q "connections open (--max-connections); refusing new ones" \
    "${WORK}/$1.err" || {
    echo "no warning about refused connections:" >&2
    cat "${WORK}/$1.err" >&2
    exit 1
  }
  kill -TERM "${SERVER_PID}"
  wait "${SERVER_PID}"
  SERVER_PID=""
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "${WORK}/tls-key.pem" -out "${WORK}/tls-cert.pem" -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  2>/dev/null
chmod 600 "${WORK}/tls-key.pem"
start_server tls --listen 127.0.0.1:0 --token-file "${WORK}/tokens" \
  --tls-cert "${WORK}/tls-cert.pem" --tls-key "${WORK}/tls-key.pem" \
  --max-connections 4
KILN_SECTION=gated KILN_ADDR="${ADDR}" KILN_PROTO_DIR="${PROTO_DIR}" \
  KILN_PID="${SERVER_PID}" KILN_STORE="${WORK}/tls" \
  KILN_CERT="${WORK}/tls-cert.pem" \
  KILN_ADMIN="${ADMIN}" KILN_SUBMITTER="${SUBMITTER}" \
  KILN_VIEWER1="${VIEWER1}" KILN_VIEWER2="${VIEWER2}" \
  timeout 300 node "${CLIENT}"
stop_server tls
# A socket path must be short (108 bytes): not under TEST_TMPDIR.
SOCK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kiln-cap.XXXXXX")"
trap 'serve_lib_cleanup; rm -rf "${SOCK_DIR}"' EXIT
start_server unix --listen "unix:${SOCK_DIR}/s" --max-connections 4
KILN_SECTION=gated KILN_ADDR="${ADDR}" KILN_PROTO_DIR="${PROTO_DIR}" \
  KILN_PID="${SERVER_PID}" KILN_STORE="${WORK}/unix" \
  KILN_ADMIN="${ADMIN}" KILN_SUBMITTER="${SUBMITTER}" \
  KILN_VIEWER1="${VIEWER1}" KILN_VIEWER2="${VIEWER2}" \
  timeout 300 node "${CLIENT}"
stop_server unix
