#!/usr/bin/env bash
# B7 (bench/README.md): the image of a 200 MiB mixed tree (one gzip layer)
# vs `tar -c | gzip -1` of the same tree (the compression floor) and vs
# `umoci insert` building the same image; then the containerize kind through
# the engine: cold, and an unchanged rebuild (cache hit).
# Writes bench/results/b7.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/engine/lib.sh
source bench/engine/lib.sh
RUNS="${B7_RUNS:-3}"
# Compilation flags of the driver (default optimized; B7_BAZEL_FLAGS= for the
# default fastbuild, e.g. to reuse a test build).
read -r -a FLAGS <<<"${B7_BAZEL_FLAGS--c opt}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; stop_bazel' EXIT

if ! bazel --output_base="$OUTPUT_BASE" build "${FLAGS[@]}" //bench/oci:b7_image \
  >"$WORK/build.log" 2>&1; then
  tail -30 "$WORK/build.log" >&2
  exit 1
fi
BIN="$(bazel --output_base="$OUTPUT_BASE" info "${FLAGS[@]}" bazel-bin 2>/dev/null)/bench/oci/b7_image"

python3 bench/oci/gen_tree.py "$WORK/tree"
TREE_MB="$(du -sm "$WORK/tree" | cut -f1)"
tar -C "$WORK/tree" -cf - . >/dev/null  # warm the page cache

peer=()
for _ in $(seq "$RUNS"); do
  s="$(now_ns)"
  tar -C "$WORK/tree" --sort=name -cf - . | gzip -1 >"$WORK/peer.tgz"
  peer+=("$(seconds_since "$s")")
done
PEER_S="$(printf '%s\n' "${peer[@]}" | median)"
PEER_MB="$(du -m "$WORK/peer.tgz" | cut -f1)"

mkdir -p "$WORK/layouts"
"$BIN" layer "$WORK/tree" "$WORK/layouts" "$RUNS" >"$WORK/kiln.txt"
KILN_S="$(cut -d' ' -f1 "$WORK/kiln.txt" | median)"
DIGESTS="$(cut -d' ' -f2 "$WORK/kiln.txt" | sort -u | wc -l)"
KILN_MB="$(awk '{printf "%d", $3/1048576; exit}' "$WORK/kiln.txt")"

umoci_s=()
for i in $(seq "$RUNS"); do
  s="$(now_ns)"
  umoci init --layout "$WORK/umoci$i" >/dev/null
  umoci new --image "$WORK/umoci$i:t" >/dev/null
  umoci insert --rootless --image "$WORK/umoci$i:t" "$WORK/tree" /data \
    >/dev/null
  umoci_s+=("$(seconds_since "$s")")
done
UMOCI_S="$(printf '%s\n' "${umoci_s[@]}" | median)"

"$BIN" engine "$WORK/tree" "$WORK/store" >"$WORK/engine.txt"
COLD_S="$(sed -n 1p "$WORK/engine.txt" | cut -d' ' -f1)"
HIT_STATE="$(sed -n 2p "$WORK/engine.txt" | cut -d' ' -f3)"
HIT_TASK_MS="$(sed -n 2p "$WORK/engine.txt" | awk '{printf "%.1f", $2*1000}')"
HIT_RUN_MS="$(sed -n 2p "$WORK/engine.txt" | awk '{printf "%.1f", $1*1000}')"

echo "tree ${TREE_MB} MiB; tar|gzip -1 ${PEER_S}s (${PEER_MB} MiB);" \
  "kiln layer ${KILN_S}s (${KILN_MB} MiB, ${DIGESTS} distinct digest(s));" \
  "umoci ${UMOCI_S}s; engine cold ${COLD_S}s; rebuild ${HIT_STATE}" \
  "task ${HIT_TASK_MS} ms, run ${HIT_RUN_MS} ms"

python3 bench/engine/write_result.py bench/results/b7.json \
  id=B7 what="image of a ${TREE_MB} MiB mixed tree, one gzip layer (scratch base)" \
  kiln_s="$KILN_S" peer="tar -c | gzip -1" peer_s="$PEER_S" \
  target_ratio=1.0 target="<= 1.0x tar|gzip -1; rebuild <= 50 ms" \
  kiln_mb="$KILN_MB" peer_mb="$PEER_MB" umoci_s="$UMOCI_S" \
  umoci_ratio="$(awk -v k="$KILN_S" -v u="$UMOCI_S" 'BEGIN{printf "%.3f", k/u}')" \
  engine_cold_s="$COLD_S" rebuild_state="$HIT_STATE" \
  rebuild_task_ms="$HIT_TASK_MS" rebuild_run_ms="$HIT_RUN_MS" \
  distinct_digests="$DIGESTS" \
  build="${FLAGS[*]:-fastbuild}" \
  notes="median of $RUNS; 2 gzip workers; see bench/README.md B7"
