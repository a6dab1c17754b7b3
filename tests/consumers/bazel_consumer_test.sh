#!/usr/bin/env bash
# A separate Bazel workspace that depends on kiln's source tree through
# local_repository (docs/embedding.md) builds examples/embed/embed.cc
# against @kiln//api:kiln and runs it: a real pipeline in the local sandbox.
# The nested Bazel has its own output root in the test's temporary
# directory, offline like kiln's own build, and is shut down on exit.
set -euo pipefail
RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
# kiln's source tree: where the runfiles' WORKSPACE points.
SRC="$(dirname "$(readlink -f "${RUNFILES}/WORKSPACE")")"
[[ -f "${SRC}/third_party/repositories.bzl" ]] || {
  echo "FAIL: kiln's source tree not found from the runfiles (${SRC})" >&2
  exit 1
}
T="$(mktemp -d "${TEST_TMPDIR}/bazel-consumer.XXXXXX")"
WS="${T}/ws"
export HOME="${T}/home"
mkdir -p "${WS}" "${HOME}"
nested() { bazel --output_user_root="${T}/root" "$@"; }
cleanup() {
  (cd "${WS}" && nested shutdown) >/dev/null 2>&1 || true
  chmod -R u+w "${T}" 2>/dev/null || true
  rm -rf "${T}"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"${WS}/WORKSPACE" <<WS
workspace(name = "kiln_consumer")

local_repository(
    name = "kiln",
    path = "${SRC}",
)

load("@kiln//third_party:repositories.bzl", "kiln_repositories")

kiln_repositories(kiln_path = "${SRC}")
WS
cp "${RUNFILES}/tests/consumers/bazel/BUILD.consumer" "${WS}/BUILD.bazel"
cp "${RUNFILES}/examples/embed/embed.cc" "${WS}/"
cat >"${WS}/.bazelrc" <<'RC'
build --cxxopt=-std=c++17 --host_cxxopt=-std=c++17
build --incompatible_strict_action_env
build --symlink_prefix=out-
RC
# A disk cache shared between runs when the caller names one (scripts/test
# does): the nested build's actions differ from the main workspace's.
cache=()
if [[ -n "${KILN_CONSUMER_DISK_CACHE:-}" ]]; then
  cache=(--disk_cache="${KILN_CONSUMER_DISK_CACHE}")
fi

(cd "${WS}" && nested build "${cache[@]}" //:embed) >"${T}/build.log" 2>&1 ||
  { tail -60 "${T}/build.log"; fail "bazel build in the consumer workspace"; }
out=$("${WS}/out-bin/embed" "${T}/store" 2>&1) ||
  { echo "${out}"; fail "the consumer's program exited $?"; }
version=$(sed -n 's/^#define KILN_VERSION_STRING "\(.*\)"$/\1/p' \
  "${RUNFILES}/api/version.h")
grep -q "^kiln ${version} (built against ${version})$" <<<"${out}" ||
  { echo "${out}"; fail "version line"; }
grep -q "shout | HELLO, KILN" <<<"${out}" || { echo "${out}"; fail "no shout"; }
grep -q "finished: RUN_SUCCEEDED" <<<"${out}" || { echo "${out}"; fail "run"; }
# Only the public target is visible to a consumer.
cat >>"${WS}/BUILD.bazel" <<'EOF2'

cc_library(
    name = "reaches_inside",
    deps = ["@kiln//engine/scheduler"],
)
EOF2
if (cd "${WS}" && nested build "${cache[@]}" //:reaches_inside) \
  >"${T}/inside.log" 2>&1; then
  fail "a consumer could depend on @kiln//engine/scheduler"
fi
grep -q "is not visible" "${T}/inside.log" ||
  { tail -20 "${T}/inside.log"; fail "no visibility error"; }
echo "ok: bazel consumer"
