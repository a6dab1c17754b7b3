#!/usr/bin/env bash
set -euo pipefail
R="${TEST_SRCDIR}/${TEST_WORKSPACE}"
body=$(sed -n '/^int main/,/^}/p' "${R}/examples/embed/ten_lines.cc")
[[ -n "${body}" ]] || { echo "no main() in ten_lines.cc"; exit 1; }
if ! grep -qF -- "$(head -1 <<<"${body}")" "${R}/README.md" ||
  ! /usr/bin/python3 -c 'import sys; sys.exit(0 if sys.argv[1] in open(sys.argv[2]).read() else 1)' \
    "${body}" "${R}/README.md"; then
  echo "README.md does not hold examples/embed/ten_lines.cc's main() verbatim"
  exit 1
fi
out=$("${R}/examples/embed/ten_lines" "${TEST_TMPDIR}/store")
echo "${out}"
[[ "${out}" == "hello" ]]
