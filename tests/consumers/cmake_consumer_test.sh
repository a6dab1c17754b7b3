#!/usr/bin/env bash
# Installs //install:tree into a prefix, then builds examples/embed/embed.cc
# outside the workspace three ways — CMake with kiln::kiln (shared) and
# kiln::kiln_static, and a plain compiler line from pkg-config — and runs
# each (a real pipeline in the local sandbox). Also: the versions agree, the
# SONAME carries MAJOR.MINOR, find_package refuses another minor.
set -euo pipefail
RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
T="$(mktemp -d "${TEST_TMPDIR}/consumer.XXXXXX")"
trap 'rm -rf "${T}"' EXIT
PREFIX="${T}/prefix"
mkdir -p "${PREFIX}" "${T}/src"
tar -xf "${RUNFILES}/install/tree.tar" -C "${PREFIX}"
cp "${RUNFILES}/tests/consumers/cmake/CMakeLists.txt" \
  "${RUNFILES}/examples/embed/embed.cc" "${T}/src/"

fail() { echo "FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^#define KILN_VERSION_STRING "\(.*\)"$/\1/p' \
  "${RUNFILES}/api/version.h")
[[ -n "${version}" ]] || fail "no KILN_VERSION_STRING in api/version.h"
export PKG_CONFIG_PATH="${PREFIX}/lib/pkgconfig"
[[ "$(pkg-config --modversion kiln)" == "${version}" ]] ||
  fail "kiln.pc says $(pkg-config --modversion kiln), api/version.h ${version}"
minor=${version%.*}
soname=$(readelf -d "${PREFIX}/lib/libkiln.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "${soname}" == "libkiln.so.${minor}" ]] || fail "SONAME ${soname}"
"${PREFIX}/bin/kiln" --help | grep -q "^usage: kiln VERB" || fail "bin/kiln --help"
# Only the public header set is installed.
[[ -f "${PREFIX}/include/kiln/api/kiln.h" ]] || fail "no api/kiln.h"
[[ ! -e "${PREFIX}/include/kiln/engine/scheduler" ]] || fail "internal headers installed"

check_run() {  # check_run NAME BINARY
  local out
  out=$("$2" "${T}/store-$1" 2>&1) || { echo "${out}"; fail "$1 exited $?"; }
  grep -q "^kiln ${version} (built against ${version})$" <<<"${out}" ||
    { echo "${out}"; fail "$1: version line"; }
  grep -q "shout | HELLO, KILN" <<<"${out}" || { echo "${out}"; fail "$1: no shout"; }
  grep -q "finished: RUN_SUCCEEDED" <<<"${out}" || { echo "${out}"; fail "$1: run"; }
  echo "ok: $1"
}

cmake -S "${T}/src" -B "${T}/build" -DCMAKE_PREFIX_PATH="${PREFIX}" \
  -DCMAKE_BUILD_TYPE=Release >"${T}/cmake.log" 2>&1 ||
  { cat "${T}/cmake.log"; fail "cmake configure"; }
cmake --build "${T}/build" -j 2 >"${T}/build.log" 2>&1 ||
  { tail -50 "${T}/build.log"; fail "cmake build"; }
check_run cmake-shared "${T}/build/embed"
# Linked statically and living outside PREFIX/bin, it is told where the
# sandbox init is (kiln.pc's sandbox_init); without it, it must fail loudly.
if "${T}/build/embed_static" "${T}/store-none" >"${T}/none.log" 2>&1; then
  fail "embed_static ran without KILN_SANDBOX_INIT"
fi
grep -q "kiln-sandbox-init was not found" "${T}/none.log" || fail "no reason"
KILN_SANDBOX_INIT="$(pkg-config --variable=sandbox_init kiln)" \
  check_run cmake-static "${T}/build/embed_static"
if readelf -d "${T}/build/embed_static" | grep -q "libkiln"; then
  fail "embed_static needs libkiln.so"
fi

# pkg-config, with nothing but a compiler.
# shellcheck disable=SC2046
c++ -O1 -o "${T}/embed_pc" "${T}/src/embed.cc" $(pkg-config --cflags --libs kiln) ||
  fail "compile with pkg-config flags"
check_run pkg-config "${T}/embed_pc"

# Another minor version is refused.
mkdir -p "${T}/other"
cat >"${T}/other/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(other LANGUAGES CXX)
find_package(kiln 0.99 REQUIRED)
CMAKE
if cmake -S "${T}/other" -B "${T}/other/build" -DCMAKE_PREFIX_PATH="${PREFIX}" \
  >"${T}/other.log" 2>&1; then
  fail "find_package(kiln 0.99) accepted ${version}"
fi
grep -q "kiln" "${T}/other.log" || fail "no reason given for the refusal"
echo "ok: find_package refuses 0.99"
