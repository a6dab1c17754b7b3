#!/usr/bin/env bash
# A separate Bazel workspace uses an installed kiln: //install:tree is
# unpacked into a prefix, the workspace declares
#   local_repository(name = "kiln", path = PREFIX/share/kiln/bazel)
# and kiln_repositories() from it (the offline stand-ins Bazel 4.2.3 would
# download), builds examples/embed/embed.cc against @kiln//:kiln (linked
# statically: libkiln.a) and runs it: a real pipeline in the local sandbox,
# its events printed (docs/embedding.md). Then the workspace's own cc_test
# (linked dynamically: libkiln.so) runs a pipeline under `bazel test`.
# The nested Bazel has its own output root and home in the test's temporary
# directory, touches no repository or disk cache, and is shut down on exit.
set -euo pipefail
RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
T="$(mktemp -d "${TEST_TMPDIR}/bazel-consumer.XXXXXX")"
PREFIX="${T}/prefix"
WS="${T}/ws"
export HOME="${T}/home"
mkdir -p "${PREFIX}" "${WS}" "${HOME}"
# Ends by itself if this script is killed before its trap runs.
nested() { bazel --output_user_root="${T}/root" --max_idle_secs=120 "$@"; }
cleanup() {
  if [[ -d "${T}/root" ]]; then
    (cd "${WS}" && nested shutdown) >/dev/null 2>&1 || true
  fi
  chmod -R u+w "${T}" 2>/dev/null || true
  rm -rf "${T}"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

tar -xf "${RUNFILES}/install/tree.tar" -C "${PREFIX}"
REPO="${PREFIX}/share/kiln/bazel"
[[ -f "${REPO}/WORKSPACE" && -f "${REPO}/BUILD.bazel" ]] ||
  fail "the install tree has no Bazel repository at share/kiln/bazel"

cat >"${WS}/WORKSPACE" <<WS
workspace(name = "kiln_consumer")

local_repository(
    name = "kiln",
    path = "${REPO}",
)

load("@kiln//:repositories.bzl", "kiln_repositories")

kiln_repositories()
WS
cp "${RUNFILES}/tests/consumers/bazel/BUILD.consumer" "${WS}/BUILD.bazel"
cp "${RUNFILES}/examples/embed/embed.cc" \
  "${RUNFILES}/tests/consumers/bazel/consumer_test.cc" "${WS}/"
cat >"${WS}/.bazelrc" <<'RC'
build --cxxopt=-std=c++17 --host_cxxopt=-std=c++17
build --incompatible_strict_action_env
build --nosandbox_debug
build --symlink_prefix=out-
RC

(cd "${WS}" && nested build //:embed) >"${T}/build.log" 2>&1 ||
  { tail -60 "${T}/build.log"; fail "bazel build in the consumer workspace"; }
# Offline: nothing was downloaded (the stand-ins took the place of
# rules_cc and the others).
if grep -q "Download from" "${T}/build.log"; then
  grep "Download from" "${T}/build.log"
  fail "the consumer's build tried to download"
fi

# (readelf's output is kept whole: `grep -q` on a pipe fails under pipefail.)
dynamic=$(readelf -d "${WS}/out-bin/embed")
if grep -q "libkiln" <<<"${dynamic}"; then
  fail "//:embed needs libkiln.so (cc_binary links statically)"
fi
minor=$(sed -n 's/^#define KILN_VERSION_STRING "\([0-9]*\.[0-9]*\)\..*"$/\1/p' \
  "${RUNFILES}/api/version.h")
[[ -n "${minor}" ]] || fail "no KILN_VERSION_STRING in api/version.h"
# The static program finds the sandbox init only in its runfiles (it lives
# outside PREFIX/bin and is told nothing).
[[ -x "${WS}/out-bin/embed.runfiles/kiln/libexec/kiln/kiln-sandbox-init" ]] ||
  fail "the sandbox init is not in //:embed's runfiles"

version=$(sed -n 's/^#define KILN_VERSION_STRING "\(.*\)"$/\1/p' \
  "${RUNFILES}/api/version.h")
check_run() {  # check_run NAME
  local out status=0
  # This test's own runfiles variables would point the library elsewhere.
  out=$(env -u RUNFILES_DIR -u TEST_SRCDIR -u RUNFILES_MANIFEST_FILE \
    -u KILN_SANDBOX_INIT "${WS}/out-bin/$1" "${T}/store-$1" 2>&1) || status=$?
  [[ "${status}" == 0 ]] || { echo "${out}"; fail "$1 exited ${status}"; }
  grep -q "^kiln ${version} (built against ${version})$" <<<"${out}" ||
    { echo "${out}"; fail "$1: version line"; }
  # Its events, as they happened: both tasks succeeded, then the run.
  grep -Eq "^#[0-9]+ greet: SUCCEEDED" <<<"${out}" ||
    { echo "${out}"; fail "$1: no event: greet succeeded"; }
  grep -Eq "^#[0-9]+ shout: SUCCEEDED" <<<"${out}" ||
    { echo "${out}"; fail "$1: no event: shout succeeded"; }
  grep -Eq "^#[0-9]+ run: RUN_SUCCEEDED$" <<<"${out}" ||
    { echo "${out}"; fail "$1: no event: the run succeeded"; }
  grep -q "shout | HELLO, KILN" <<<"${out}" || { echo "${out}"; fail "$1: no shout"; }
  grep -q "finished: RUN_SUCCEEDED" <<<"${out}" || { echo "${out}"; fail "$1: run"; }
  echo "ok: $1"
}
check_run embed

# The consumer's own cc_test, under its own `bazel test` (the offline
# stand-in for remote_coverage_tools is what a test rule needs), linked
# dynamically.
if ! (cd "${WS}" && nested test --test_output=all //:consumer_test) \
  >"${T}/test.log" 2>&1; then
  tail -40 "${T}/test.log"
  fail "bazel test //:consumer_test in the consumer workspace"
fi
grep -q "^ok: consumer_test$" "${T}/test.log" ||
  { tail -40 "${T}/test.log"; fail "consumer_test printed no ok"; }
if grep -q "Download from" "${T}/test.log"; then
  fail "the consumer's bazel test tried to download"
fi
dynamic=$(readelf -d "${WS}/out-bin/consumer_test")
grep -Eq "\(NEEDED\) +Shared library: \[libkiln\.so\.${minor//./\\.}\]" <<<"${dynamic}" ||
  fail "//:consumer_test does not need libkiln.so.${minor}"
echo "ok: consumer_test"

# Only @kiln//:kiln is visible to a consumer.
cat >>"${WS}/BUILD.bazel" <<'EOF2'

cc_library(
    name = "reaches_inside",
    deps = ["@kiln//:libkiln"],
)
EOF2
if (cd "${WS}" && nested build //:reaches_inside) >"${T}/inside.log" 2>&1; then
  fail "a consumer could depend on @kiln//:libkiln"
fi
grep -q "is not visible" "${T}/inside.log" ||
  { tail -20 "${T}/inside.log"; fail "no visibility error"; }
echo "ok: bazel consumer"
