#!/usr/bin/env python3
"""B4-B6: kiln stash / re-stash / unstash of a 1 GiB mixed tree against
`tar | zstd -1` and `zstd -d | tar -x`, measured in the same run.

Each figure is the median of --rounds runs (the contenders alternate, their
order rotating every round, and `sync` runs untimed before each so writeback
of one run does not land on the next). Wall time decides the ratio; CPU time
(user+sys of the command and its children) is printed beside it because
shared machines are noisy. Everything runs on /dev/shm when it is a tmpfs
with room (see default_workdir), and the result names the filesystem.

With --kiln-before, a second kiln binary (a build from main) runs in the same
rounds, interleaved with the first and the peer: the result then holds both,
each with its ratio to the peer of the same run, and the paired ratio
after/before.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(cmd, **kw):
    subprocess.run(["sync"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, **kw).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


# The tree, both archives and both extractions take ~4.5 GiB.
TMPFS_ROOM = 6 << 30


def filesystem(path):
    """The type of the filesystem holding path, as `stat -f -c %T` names it."""
    out = subprocess.run(["stat", "-f", "-c", "%T", path], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return out.strip()


def default_workdir():
    """/dev/shm when it is a tmpfs with room, else None (the temp dir).

    On the project's VMs, writing the same 256 MiB to the disk and syncing
    it took from 0.12 s to 1.19 s in consecutive runs (bench/README.md, B4-B6):
    on the disk the rounds time the writeback, not the programs. A tmpfs
    takes that out for both sides; the result names the filesystem.
    """
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    if filesystem("/dev/shm") != "tmpfs" or st.f_bavail * st.f_frsize < TMPFS_ROOM:
        return None
    return "/dev/shm"


def median(xs):
    return statistics.median(xs)


def rotated(names, r):
    k = r % len(names)
    return names[k:] + names[:k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--kiln-before", default=None,
                    help="a kiln built from main, run interleaved as BEFORE")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default=None,
                    help="where to put the tree (default: /dev/shm when it "
                    "is a tmpfs with room, else a temp dir)")
    ap.add_argument("--tree", default=None,
                    help="use this tree (made by gen_tree.py) instead of "
                    "generating one")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "results",
                                                  "b4_b6.json"))
    args = ap.parse_args()

    kilns = {"kiln": args.kiln}
    if args.kiln_before:
        kilns["before"] = args.kiln_before
    work = tempfile.mkdtemp(prefix="kiln-bench-storage-",
                            dir=args.workdir or default_workdir())
    try:
        tree = args.tree or os.path.join(work, "tree")
        if not args.tree:
            print("generating the tree ...", flush=True)
            subprocess.run([sys.executable, os.path.join(HERE, "gen_tree.py"),
                            tree], check=True)
        size = int(subprocess.run(["du", "-sb", tree], check=True,
                                  stdout=subprocess.PIPE).stdout.split()[0])
        files = sum(len(f) for _, _, f in os.walk(tree))
        print("tree: %.2f GiB, %d files" % (size / 2**30, files), flush=True)
        # Warm the page cache so every side reads from memory.
        subprocess.run("tar -cf - -C %s . > /dev/null" % tree, shell=True,
                       check=True)

        names = ["peer"] + list(kilns)
        wall = {(b, n): [] for b in ("B4", "B5", "B6") for n in names}
        cpu = {(b, n): [] for b in ("B4", "B5", "B6") for n in names}
        peer_archive = os.path.join(work, "peer.tar.zst")
        stores, digests = {}, {}
        for r in range(args.rounds):
            for who in rotated(names, r):
                if who != "peer" and who in stores:
                    shutil.rmtree(stores[who])
                os.sync()  # no dirty pages of the round before (see B6)
                if who == "peer":
                    w, c, _ = timed("tar -cf - -C %s . | zstd -1 -q -f -o %s"
                                    % (tree, peer_archive), shell=True)
                else:
                    stores[who] = os.path.join(work, "store-%s-%d" % (who, r))
                    w, c, out = timed([kilns[who], "stash", tree,
                                       "--store", stores[who]])
                    digests[who] = out.decode().strip()
                wall["B4", who].append(w)
                cpu["B4", who].append(c)
            print("B4 round %d: %s" % (r + 1, "  ".join(
                "%s %.2fs" % (n, wall["B4", n][-1]) for n in names)),
                flush=True)
        if len(set(digests.values())) != 1:
            sys.exit("the kiln binaries disagree on the tree digest: %s"
                     % digests)
        digest = digests["kiln"]

        for r in range(args.rounds):
            for who in rotated(list(kilns), r):
                w, c, out = timed([kilns[who], "stash", tree, "--store",
                                   stores[who]])
                assert out.decode().strip() == digest, \
                    "re-stash changed the digest"
                wall["B5", who].append(w)
                cpu["B5", who].append(c)
        print("B5: re-stash %s" % "  ".join(
            "%s %.3fs" % (n, median(wall["B5", n])) for n in kilns),
            flush=True)

        for r in range(args.rounds):
            for who in rotated(names, r):
                dest = os.path.join(work, "x-" + who)
                if os.path.exists(dest):
                    shutil.rmtree(dest)
                # Start from no dirty pages: otherwise the writeback of the
                # round before (1 GiB unsynced by the peer) lands on whoever
                # runs next, which moved rounds by 5x (bench/README.md).
                os.sync()
                if who == "peer":
                    os.mkdir(dest)
                    w, c, _ = timed("zstd -d -q < %s | tar -x -C %s"
                                    % (peer_archive, dest), shell=True)
                else:
                    w, c, _ = timed([kilns[who], "unstash", digest, dest,
                                     "--store", stores[who]])
                wall["B6", who].append(w)
                cpu["B6", who].append(c)
            print("B6 round %d: %s" % (r + 1, "  ".join(
                "%s %.2fs" % (n, wall["B6", n][-1]) for n in names)),
                flush=True)

        def archive_bytes(store):
            return sum(os.path.getsize(os.path.join(d, f))
                       for d, _, fs in os.walk(os.path.join(store, "cas",
                                                            "sha256"))
                       for f in fs)

        def figures(who):
            m = lambda b: median(wall[b, who])
            mc = lambda b: median(cpu[b, who])
            return {
                "B4": {"kiln_s": m("B4"), "peer_s": median(wall["B4", "peer"]),
                       "ratio": m("B4") / median(wall["B4", "peer"]),
                       "kiln_cpu_s": mc("B4"),
                       "peer_cpu_s": median(cpu["B4", "peer"]),
                       "target": "<= 1.0",
                       "peer": "tar -cf - DIR | zstd -1"},
                "B5": {"kiln_s": m("B5"), "first_stash_s": m("B4"),
                       "ratio": m("B5") / m("B4"),
                       "kiln_cpu_s": mc("B5"),
                       "target": "<= 0.2"},
                "B6": {"kiln_s": m("B6"),
                       "peer_s": median(wall["B6", "peer"]),
                       "ratio": m("B6") / median(wall["B6", "peer"]),
                       "kiln_cpu_s": mc("B6"),
                       "peer_cpu_s": median(cpu["B6", "peer"]),
                       "target": "<= 1.0",
                       "peer": "zstd -d < ARCHIVE | tar -x"},
            }

        result = {
            "tree_bytes": size,
            "tree_files": files,
            "rounds": args.rounds,
            "kiln_archive_bytes": archive_bytes(stores["kiln"]),
            "peer_archive_bytes": os.path.getsize(peer_archive),
        }
        result.update(figures("kiln"))
        if "before" in kilns:
            result["before"] = figures("before")
            result["after_over_before"] = {
                b: median(wall[b, "kiln"]) / median(wall[b, "before"])
                for b in ("B4", "B5", "B6")}
            result["after_over_before_cpu"] = {
                b: median(cpu[b, "kiln"]) / median(cpu[b, "before"])
                for b in ("B4", "B5", "B6")}
        result["per_round_s"] = {"%s/%s" % k: v for k, v in wall.items() if v}
        result["load_average_at_end"] = os.getloadavg()
        result["filesystem"] = filesystem(work)

        print()
        print("%-4s %-7s %10s %10s %8s %8s   %s" % (
            "", "", "kiln", "peer", "ratio", "target", "cpu kiln/peer"))
        for label, figs in [("after" if "before" in kilns else "", result)] + (
                [("before", result["before"])] if "before" in kilns else []):
            for key in ("B4", "B5", "B6"):
                b = figs[key]
                peer = b.get("peer_s", b.get("first_stash_s"))
                c = "%.2fs/%.2fs" % (b["kiln_cpu_s"], b.get("peer_cpu_s", 0.0))
                print("%-4s %-7s %9.3fs %9.3fs %8.3f %8s   %s" % (
                    key, label, b["kiln_s"], peer, b["ratio"], b["target"], c))
        if "before" in kilns:
            print("after/before (wall): %s" % "  ".join(
                "%s %.3f" % kv for kv in result["after_over_before"].items()))
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print("\nwrote", os.path.normpath(args.out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
