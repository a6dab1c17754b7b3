# Shared by the tests/service shell tests that run a real `kiln serve`;
# sourced after `set -euo pipefail`:
#
#   serve_lib_init NAME  KILN (the binary under test), WORK (a fresh
#                        directory named after NAME, removed at exit
#                        together with the server started below)
#   fail MSG / ok MSG    a failed check ends the test; a passed one says so
#   random_token NAME    "NAME-" and 128 random bits ($RANDOM alone can make
#                        a token shorter than serve's 16-byte minimum)
#   start_serve ARGS...  `kiln serve ARGS...` in the background, its output
#                        in $WORK/serve.out and serve.err (appended); sets
#                        SERVER_PID, and ADDR once it serves (fails the
#                        test if it exits first or is not up in 30 s)

serve_lib_init() {
  KILN="${TEST_SRCDIR}/${TEST_WORKSPACE}/kiln"
  WORK="$(mktemp -d "${TEST_TMPDIR}/$1.XXXXXX")"
  SERVER_PID=""
  ADDR=""
  trap serve_lib_cleanup EXIT
}

serve_lib_cleanup() {
  if [[ -n "${SERVER_PID}" ]]; then
    kill -TERM "${SERVER_PID}" 2>/dev/null || true
    wait "${SERVER_PID}" 2>/dev/null || true
  fi
  rm -rf "${WORK}"
}

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

random_token() {
  printf '%s-%s' "$1" "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
}

start_serve() {
  : >"${WORK}/serve.out"
  "${KILN}" serve "$@" >"${WORK}/serve.out" 2>>"${WORK}/serve.err" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR="$(sed -n 's/^kiln: serving on //p' "${WORK}/serve.out" 2>/dev/null || true)"
    [[ -n "${ADDR}" ]] && return 0
    kill -0 "${SERVER_PID}" 2>/dev/null ||
      { cat "${WORK}/serve.err" >&2; fail "kiln serve exited"; }
    sleep 0.1
  done
  fail "kiln serve did not start in 30 s"
}
