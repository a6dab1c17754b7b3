#!/usr/bin/env python3
"""Checks a `kiln run --profile` trace (Chrome trace-event JSON).

usage: check_profile.py FILE MODE TASK...
  MODE cold: every task ran (an "attempt 1" with the execution's spans);
  MODE warm: every task was a cache hit found without a worker ("key",
             "cache lookup" and no attempt; its record is its TASK_CACHED
             event, in the event pump's "record events").
  MODE replay: the run was a whole-run replay (engine/run_replay.h): the
             "run" track holds the replay check and the replay, nothing
             was scheduled, and no task has a track of its own.
Exits non-zero naming the first problem.
"""
import json
import sys


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    path, mode, tasks = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(path) as f:
        trace = json.load(f)
    events = trace.get("traceEvents")
    if not isinstance(events, list) or not events:
        fail("no traceEvents")
    names = {}
    spans = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e["args"]["name"]
        elif e.get("ph") == "X":
            for k in ("name", "ts", "dur", "pid", "tid"):
                if k not in e:
                    fail("span without %s: %r" % (k, e))
            if not (e["dur"] >= 0 and e["ts"] >= 0):
                fail("negative time in %r" % e)
            spans.setdefault(e["tid"], []).append(e)
        elif e.get("ph") != "M":
            fail("unexpected event %r" % e)
    tracks = {v: k for k, v in names.items()}
    for tid in spans:
        if tid not in names:
            fail("spans on unnamed track %d" % tid)

    # Spans on one track nest: sorted by start (longest first), each lies
    # within the innermost open span that contains its start, or starts
    # after it ended.
    eps = 0.002  # µs: rounding of ts/dur to nanoseconds
    for tid, ss in spans.items():
        ss.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in ss:
            while stack and e["ts"] >= stack[-1]["ts"] + stack[-1]["dur"] - eps:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"] + eps:
                fail("on %s, %s [%f+%f] overlaps %s [%f+%f] without nesting" % (
                    names[tid], e["name"], e["ts"], e["dur"], stack[-1]["name"],
                    stack[-1]["ts"], stack[-1]["dur"]))
            stack.append(e)

    wanted = [("kiln run", "load pipeline"), ("kiln run", "open store"),
              ("run", "stash source")]
    if mode == "replay":
        wanted += [("run", "replay check"), ("run", "fingerprint"),
                   ("run", "find replay source"), ("run", "outputs present"),
                   ("run", "replay"), ("run", "record replay"),
                   ("run", "deliver replay events")]
    else:
        wanted += [("run", "schedule"), ("event pump", "record events")]
    for track, want in wanted:
        if not any(s["name"] == want for s in spans.get(tracks.get(track), [])):
            fail("the %r track has no %r span" % (track, want))
    if mode == "replay":
        if any(s["name"] == "schedule" for s in spans.get(tracks.get("run"), [])):
            fail("a replay was scheduled")
        for task in tasks:
            if "task " + task in tracks:
                fail("task %s has a track in a replay" % task)
        return spans, tracks

    def within(child, parent):
        return (child["ts"] >= parent["ts"] - eps and
                child["ts"] + child["dur"] <= parent["ts"] + parent["dur"] + eps)

    for task in tasks:
        track = tracks.get("task " + task)
        if track is None:
            fail("no track for task %s" % task)
        ss = spans[track]
        top = [s for s in ss if s["name"] == "task"]
        if len(top) != 1:
            fail("task %s has %d 'task' spans" % (task, len(top)))
        top = top[0]
        for s in ss:
            if not within(s, top):
                fail("task %s: %s lies outside its 'task' span" % (task, s["name"]))
        got = {s["name"] for s in ss}
        if mode == "cold":
            attempt = [s for s in ss if s["name"] == "attempt 1"]
            if len(attempt) != 1:
                fail("task %s has no 'attempt 1' span (spans: %s)" % (task, sorted(got)))
            need = ["queued", "reserve attempt", "resolve", "key", "cache lookup",
                    "sandbox start", "command", "record (action cache)",
                    "record (run)"]
            for n in need:
                if n not in got:
                    fail("task %s has no %r span (spans: %s)" % (task, n, sorted(got)))
            # (A key and a lookup may also precede the attempt: the no-op
            # path's offer, a miss.)
            for n in need[1:]:
                if not any(s["name"] == n and within(s, attempt[0]) for s in ss):
                    fail("task %s: no %s inside 'attempt 1'" % (task, n))
        elif mode == "warm":
            for n in ("key", "cache lookup"):
                if n not in got:
                    fail("task %s has no %r span (spans: %s)" % (task, n, sorted(got)))
            if any(n.startswith("attempt") for n in got):
                fail("task %s went through a worker on a warm run" % task)
            if top.get("args", {}).get("state") != "TASK_CACHED":
                fail("task %s ended %r" % (task, top.get("args")))
        else:
            fail("unknown mode " + mode)
    return spans, tracks


if __name__ == "__main__":
    spans, tracks = main()
    # Print what each task's track holds (the test log shows the profile).
    for name, tid in sorted(tracks.items()):
        print("%s: %s" % (name, ", ".join(
            "%s %.0fus" % (s["name"], s["dur"]) for s in sorted(
                spans.get(tid, []), key=lambda s: s["ts"]))))
    print("ok")
