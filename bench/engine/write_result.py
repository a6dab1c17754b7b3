#!/usr/bin/env python3
"""Writes one benchmark result as bench/results/<id>.json.

  write_result.py OUT.json id=B1 what="..." kiln_s=0.5 peer=ninja peer_s=0.2 \
      target_ratio=2 target="<= 2x ninja" notes="..." [extra_key=value ...]

Numbers stay numbers, true and false become booleans; a space-separated
list of numbers becomes a list. ratio = kiln_s / peer_s when both are
given; met is ratio <= target_ratio, or kiln_value <= target_max when
target_max is given.
The target_* helpers are not written out.
"""
import datetime
import json
import sys


def parse_value(text):
    if " " in text.strip():  # a space-separated list of numbers
        items = [parse_value(t) for t in text.split()]
        if all(isinstance(i, (int, float)) for i in items):
            return items
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def main():
    out_path = sys.argv[1]
    r = {}
    for arg in sys.argv[2:]:
        key, _, value = arg.partition("=")
        r[key] = parse_value(value) if value != "" else None
    target_ratio = r.pop("target_ratio", None)
    target_max = r.pop("target_max", None)
    kiln, peer = r.get("kiln_s"), r.get("peer_s")
    if isinstance(kiln, (int, float)) and isinstance(peer, (int, float)) and peer > 0:
        r["ratio"] = round(kiln / peer, 3)
    else:
        r.setdefault("ratio", None)
    met = None
    if target_ratio is not None and r["ratio"] is not None:
        met = r["ratio"] <= target_ratio
    if target_max is not None:
        value = r.get("kiln_value", kiln)
        if isinstance(value, (int, float)):
            met = value <= target_max
    r["met"] = met
    r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    order = ["id", "what", "kiln_s", "peer", "peer_s", "ratio", "target", "met",
             "date", "notes"]
    ordered = {k: r.get(k) for k in order}
    ordered.update({k: v for k, v in r.items() if k not in ordered})
    with open(out_path, "w") as f:
        json.dump(ordered, f, indent=1)
        f.write("\n")
    print(json.dumps(ordered))


if __name__ == "__main__":
    main()
