#!/bin/bash
# make_bundle.sh BINARY OUTDIR: the agent's self-contained tree under
# OUTDIR/kiln/agent: bin/kiln-agent, lib/<every shared library ldd lists>,
# lib/ld-linux-x86-64.so.2 (the loader). Runs in any image (busybox, scratch):
#   /kiln/agent/lib/ld-linux-x86-64.so.2 --library-path /kiln/agent/lib \
#     /kiln/agent/bin/kiln-agent ...
# Deterministic: the same inputs give the same files and modes (libraries
# 0644, the binary and the loader 0755); symlinks are resolved.
set -euo pipefail
bin=$1
out=$2/kiln/agent
mkdir -p "$out/bin" "$out/lib"
install -m 0755 "$bin" "$out/bin/kiln-agent"
loader=""
found=0
while read -r line; do
  # "libfoo.so.1 => /path/libfoo.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)",
  # "linux-vdso.so.1 (0x...)".
  if [[ $line =~ ^([^[:space:]]+)[[:space:]]+=\>[[:space:]]+(/[^[:space:]]+) ]]; then
    name=${BASH_REMATCH[1]}
    path=${BASH_REMATCH[2]}
    install -m 0644 "$(readlink -f "$path")" "$out/lib/$name"
    found=$((found + 1))
  elif [[ $line =~ ^(/[^[:space:]]*ld-linux[^[:space:]]*) ]]; then
    loader=${BASH_REMATCH[1]}
  elif [[ $line == *"not found"* ]]; then
    echo "make_bundle: $bin: $line" >&2
    exit 1
  fi
done < <(ldd "$bin")
if [[ -z $loader ]]; then
  echo "make_bundle: ldd $bin names no dynamic loader" >&2
  exit 1
fi
install -m 0755 "$(readlink -f "$loader")" "$out/lib/ld-linux-x86-64.so.2"
echo "make_bundle: $found libraries" >&2
