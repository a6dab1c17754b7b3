#!/usr/bin/env bash
# docs/pipeline.schema.json must be what docs/gen_pipeline_schema.py makes of
# the current protos, and must agree with the loader (tests/schema/check.js).
set -euo pipefail
RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
/usr/bin/python3 "${RUNFILES}/docs/gen_pipeline_schema.py" \
  "${RUNFILES}/proto" --check "${RUNFILES}/docs/pipeline.schema.json"

# node resolves ajv and yaml next to the real check.js (in the source tree).
CHECK="$(readlink -f "${RUNFILES}/tests/schema/check.js")"
if [[ ! -d "$(dirname "${CHECK}")/node_modules/ajv" ]]; then
  echo "missing tests/schema/node_modules: run scripts/install-deps" >&2
  exit 1
fi
exec node "${CHECK}" "${RUNFILES}/docs/pipeline.schema.json" \
  "${RUNFILES}/kiln" "${RUNFILES}/tests/schema/every_form.yaml" \
  "${RUNFILES}/tests/pipeline/bad" \
  "${RUNFILES}/examples/hello/pipeline.yaml" \
  "${RUNFILES}/engine/agent/agent-image.yaml"
