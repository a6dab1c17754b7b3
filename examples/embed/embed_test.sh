#!/usr/bin/env bash
set -euo pipefail
out=$("$TEST_SRCDIR/kiln/examples/embed/embed" "$TEST_TMPDIR/store")
echo "$out"
grep -q "shout | HELLO, KILN" <<<"$out"
grep -q "finished: RUN_SUCCEEDED" <<<"$out"
