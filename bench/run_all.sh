#!/usr/bin/env bash
# Runs every benchmark of bench/ and prints one table of the results.
#
#   bench/run_all.sh            run every script, then merge and print
#   bench/run_all.sh --merge    only merge bench/results/*.json and print
#   bench/run_all.sh b1 b11     run only the scripts whose name contains b1 or b11
#
# A benchmark script is an executable file bench/<area>/run.sh,
# bench/<area>/run_*.sh or bench/<area>/b<N>*.sh; each writes bench/results/<id>.json. They run one
# after another (the machine is small and the figures are timings), each
# bounded by BENCH_TIMEOUT seconds (default 3600). A failing script is
# reported and the others still run. Then every bench/results/*.json except
# latest.json is merged into bench/results/latest.json (an object keyed by
# benchmark id) and a table id | kiln | peer | ratio | target | met? is
# printed. Exit status: 0 if every script that ran succeeded.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
RESULTS=bench/results
BENCH_TIMEOUT=${BENCH_TIMEOUT:-3600}
mkdir -p "$RESULTS"

merge_only=0
filters=()
for arg in "$@"; do
  case $arg in
    --merge) merge_only=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) filters+=("$arg") ;;
  esac
done

failed=()
if ((merge_only == 0)); then
  scripts=()
  for s in bench/*/run.sh bench/*/run_*.sh bench/*/b[0-9]*.sh; do
    [[ -f $s && -x $s ]] || continue
    if ((${#filters[@]} > 0)); then
      keep=0
      for f in "${filters[@]}"; do [[ $(basename "$s") == *"$f"* ]] && keep=1; done
      ((keep)) || continue
    fi
    scripts+=("$s")
  done
  for s in "${scripts[@]}"; do
    echo "=== $s" >&2
    start=$(date +%s)
    timeout --kill-after=30 "$BENCH_TIMEOUT" "$s"
    rc=$?
    echo "=== $s: exit $rc after $(($(date +%s) - start))s" >&2
    ((rc == 0)) || failed+=("$s")
  done
fi

python3 - "$RESULTS" <<'PY'
import glob, json, os, re, sys

results_dir = sys.argv[1]
merged = {}


def add(rid, r):
    while rid in merged:
        rid += "'"
    merged[rid] = r


for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == "latest":
        continue
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        print("bench: skipping %s: %s" % (path, e), file=sys.stderr)
        continue
    if not isinstance(r, dict):
        continue
    # One file may hold several benchmarks: {"B4": {...}, "B5": {...}}.
    nested = {k: v for k, v in r.items() if re.fullmatch(r"B\d+", k) and isinstance(v, dict)}
    if nested:
        shared = {k: v for k, v in r.items() if k not in nested}
        for k, v in nested.items():
            add(k, dict(v, id=k, source=os.path.basename(path), context=shared))
        continue
    rid = str(r.get("id") or stem).upper()
    # Variants of one id in several files (b9.json, b9_cached.json).
    if rid in merged or stem.upper() != rid and stem.upper().startswith(rid + "_"):
        rid = stem.upper()
    add(rid, dict(r, source=os.path.basename(path)))
with open(os.path.join(results_dir, "latest.json"), "w") as f:
    json.dump(merged, f, indent=1, sort_keys=True)
    f.write("\n")

UNITS = (("_s", "s"), ("_ms", "ms"), ("_us", "us"), ("_mb", "MB"), ("_value", None))


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v):
    return ("%.4g" % v) if num(v) else ("-" if v is None else str(v))


def figure(r, name):
    for suffix, unit in UNITS:
        v = r.get(name + suffix)
        if num(v) and unit == "us":
            v, unit = v / 1000.0, "ms"
        if num(v):
            return ("%s %s" % (fmt(v), unit if unit else r.get("unit", ""))).strip()
    return None


def headline(r, skip=()):
    """Up to three telling numbers of a result without a kiln/peer layout."""
    keys = [k for k, v in r.items() if num(v) and k not in skip and k != "date"]
    pick = [k for k in keys if re.search(r"p99|lost|rss|latency", k)] or keys
    return ", ".join("%s %s" % (k, fmt(r[k])) for k in pick[:3]) or "-"


def evaluate_met(r, ratio):
    """The result's own "met", else what its target text says of its ratio.

    Understood targets: "<= N[x]" (ratio), "<= Nx PEER ..." (ratio_PEER, the
    first clause decides; stretch goals and reported figures follow it) and
    ">= Nx ..., identical output" (ratio, and "identical" not false).
    """
    if isinstance(r.get("met"), bool):
        return r["met"]
    target = str(r.get("target", ""))
    m = re.fullmatch(r"\s*<=\s*([\d.]+)\s*x?\s*", target)
    if m and num(ratio):
        return ratio <= float(m.group(1))
    m = re.match(r"\s*<=\s*([\d.]+)\s*x\s+([a-z]+)\b", target)
    if m and num(r.get("ratio_" + m.group(2))):
        return r["ratio_" + m.group(2)] <= float(m.group(1))
    m = re.match(r"\s*>=\s*([\d.]+)\s*x\b", target)
    if m and num(ratio):
        identical = r.get("identical")
        if "identical" in target and identical is not True:
            return None if identical is None else False
        return ratio >= float(m.group(1))
    return None


def rows_of(rid, r):
    """(id, kiln, peer, ratio, target, met) rows; variants as prefix_kiln_*."""
    variants = sorted({m.group(1) for k in r for m in [re.fullmatch(r"(.+?)_kiln(_\w+)", k)] if m})
    if variants and figure(r, "kiln") is None:
        out = []
        for v in variants:
            sub = {k[len(v) + 1:]: val for k, val in r.items() if k.startswith(v + "_")}
            sub["target"] = r.get("target")
            out += rows_of("%s %s" % (rid, v), sub)
        return out
    kiln = figure(r, "kiln")
    peers = [k[:-len(s)] for k in r for s, _ in UNITS
             if k.endswith(s) and num(r[k]) and not k.startswith("kiln") and
             re.fullmatch(r"[a-z]+", k[:-len(s)] or "-") and k[:-len(s)] not in ("wall", "first")]
    if kiln is None:
        return [(rid, headline(r), "-", "-", str(r.get("target", "-")), "?")]
    peer_names = peers if "peer" not in peers else ["peer"]
    peer = ", ".join("%s%s" % (figure(r, p), "" if p == "peer" else " (%s)" % p)
                     for p in peer_names) or "-"
    if r.get("peer"):
        peer += " (%s)" % r["peer"]
    ratio = r.get("ratio")
    if num(ratio):
        ratio_cell = fmt(ratio) + "x"
    else:
        parts = ["%s %sx" % (k[len("ratio_"):], fmt(v)) for k, v in r.items()
                 if k.startswith("ratio_") and num(v)]
        ratio_cell = ", ".join(parts) or "-"
    met = evaluate_met(r, ratio)
    return [(rid, kiln, peer, ratio_cell, str(r.get("target", "-")),
             {True: "yes", False: "NO", None: "?"}[met])]


rows = [("id", "kiln", "peer", "ratio", "target", "met?")]
for rid in sorted(merged, key=lambda s: (int(re.sub(r"\D.*", "", s[1:]) or 0), s)):
    rows += rows_of(rid, merged[rid])
widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
for n, row in enumerate(rows):
    print(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if n == 0:
        print("-|-".join("-" * w for w in widths))
print("\n(merged into %s)" % os.path.join(results_dir, "latest.json"))
PY

if ((${#failed[@]} > 0)); then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
