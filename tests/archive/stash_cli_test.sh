#!/bin/sh
# End to end through the `kiln` binary: stash, unstash, cas put/get, the
# store resolution ($KILN_STORE) and exit codes.
set -u
KILN="$1"
T="${TEST_TMPDIR:?}/cli"
rm -rf "$T" && mkdir -p "$T/src/sub" || exit 1
fail() { echo "FAIL: $*" >&2; exit 1; }

printf 'hello\n' > "$T/src/a"
chmod 755 "$T/src/a"
printf 'nested\n' > "$T/src/sub/b"
ln -s ../a "$T/src/sub/link"

D=$("$KILN" stash "$T/src" --store "$T/store") || fail "stash"
echo "$D" | grep -Eq '^sha256:[0-9a-f]{64}$' || fail "stash printed '$D'"
D2=$(KILN_STORE="$T/store" "$KILN" stash "$T/src") || fail "stash via KILN_STORE"
[ "$D" = "$D2" ] || fail "digest differs between runs"

"$KILN" unstash "$D" "$T/out" --store "$T/store" || fail "unstash"
[ "$(cat "$T/out/sub/b")" = "nested" ] || fail "content"
[ -x "$T/out/a" ] || fail "exec bit"
[ "$(readlink "$T/out/sub/link")" = "../a" ] || fail "symlink"
[ "$("$KILN" stash "$T/out" --store "$T/store")" = "$D" ] || fail "round trip"

# A non-empty target is refused (exit 1), a malformed digest is usage (2).
"$KILN" unstash "$D" "$T/out" --store "$T/store" 2>/dev/null
[ $? -eq 1 ] || fail "unstash into a non-empty dir"
"$KILN" unstash sha256:beef "$T/x" --store "$T/store" 2>/dev/null
[ $? -eq 2 ] || fail "bad digest should be a usage error"
"$KILN" unstash "sha256:$(printf '%064d' 0)" "$T/x" --store "$T/store" \
  2>/dev/null
[ $? -eq 1 ] || fail "unknown artifact"
[ ! -e "$T/x" ] || fail "unknown artifact left a directory"

# Selected paths only.
P=$("$KILN" stash "$T/src" --path sub/b --store "$T/store") || fail "--path"
"$KILN" unstash "$P" "$T/part" --store "$T/store" || fail "unstash part"
[ -f "$T/part/sub/b" ] && [ ! -e "$T/part/a" ] || fail "--path selection"

# Blobs.
B=$("$KILN" cas put "$T/src/sub/b" --store "$T/store") || fail "cas put"
[ "$B" = "sha256:$(sha256sum "$T/src/sub/b" | cut -d' ' -f1)" ] ||
  fail "cas put digest $B"
[ "$("$KILN" cas get "$B" --store "$T/store")" = "nested" ] || fail "cas get"
"$KILN" cas get "sha256:$(printf '%064d' 0)" --store "$T/store" 2>/dev/null
[ $? -eq 1 ] || fail "cas get of a missing blob"
"$KILN" cas frob --store "$T/store" 2>/dev/null
[ $? -eq 2 ] || fail "unknown cas subcommand"

# A corrupt blob is never served.
F="$T/store/cas/sha256/$(echo "$B" | cut -c8-9)/$(echo "$B" | cut -c10-)"
chmod 644 "$F" && printf 'nestee\n' > "$F"
"$KILN" cas get "$B" --store "$T/store" >/dev/null 2>&1
[ $? -eq 1 ] || fail "corrupt blob served"

rm -rf "$T"
echo PASS
