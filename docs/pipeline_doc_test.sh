#!/usr/bin/env bash
# docs/pipeline.md must be what docs/gen_pipeline_doc.py makes of the
# current proto/kiln/v1/pipeline.proto (protoc reads its comments).
set -euo pipefail
RUNFILES="${TEST_SRCDIR}/${TEST_WORKSPACE}"
exec /usr/bin/python3 "${RUNFILES}/docs/gen_pipeline_doc.py" \
  "${RUNFILES}/proto" --check "${RUNFILES}/docs/pipeline.md"
