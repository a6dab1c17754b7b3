#!/usr/bin/env python3
"""B4-B6: kiln stash / re-stash / unstash of a 1 GiB mixed tree against
`tar | zstd -1` and `zstd -d | tar -x`, measured in the same run.

Each figure is the median of --rounds runs (kiln and peer alternate, and
`sync` runs untimed before each so writeback of one run does not land on
the next). Wall time decides the ratio; CPU time (user+sys of the command
and its children) is printed beside it because shared machines are noisy.
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


def median(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default=None,
                    help="where to put the tree (default: a temp dir)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "results",
                                                  "b4_b6.json"))
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="kiln-bench-storage-", dir=args.workdir)
    try:
        tree = os.path.join(work, "tree")
        print("generating the tree ...", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "gen_tree.py"), tree],
                       check=True)
        size = int(subprocess.run(["du", "-sb", tree], check=True,
                                  stdout=subprocess.PIPE).stdout.split()[0])
        files = sum(len(f) for _, _, f in os.walk(tree))
        print("tree: %.2f GiB, %d files" % (size / 2**30, files), flush=True)
        # Warm the page cache so both sides read from memory.
        subprocess.run("tar -cf - -C %s . > /dev/null" % tree, shell=True,
                       check=True)

        peer_archive = os.path.join(work, "peer.tar.zst")
        b4_peer, b4_kiln, b4_peer_cpu, b4_kiln_cpu = [], [], [], []
        store = None
        digest = None
        for r in range(args.rounds):
            order = ["peer", "kiln"] if r % 2 == 0 else ["kiln", "peer"]
            for who in order:
                if who == "peer":
                    w, c, _ = timed("tar -cf - -C %s . | zstd -1 -q -f -o %s"
                                    % (tree, peer_archive), shell=True)
                    b4_peer.append(w)
                    b4_peer_cpu.append(c)
                else:
                    if store:
                        shutil.rmtree(store)
                    store = os.path.join(work, "store%d" % r)
                    w, c, out = timed([args.kiln, "stash", tree,
                                       "--store", store])
                    digest = out.decode().strip()
                    b4_kiln.append(w)
                    b4_kiln_cpu.append(c)
            print("B4 round %d: kiln %.2fs  peer %.2fs"
                  % (r + 1, b4_kiln[-1], b4_peer[-1]), flush=True)

        b5, b5_cpu = [], []
        for r in range(args.rounds):
            w, c, out = timed([args.kiln, "stash", tree, "--store", store])
            assert out.decode().strip() == digest, "re-stash changed the digest"
            b5.append(w)
            b5_cpu.append(c)
        print("B5: re-stash %.3fs" % median(b5), flush=True)

        b6_peer, b6_kiln, b6_peer_cpu, b6_kiln_cpu = [], [], [], []
        for r in range(args.rounds):
            order = ["peer", "kiln"] if r % 2 == 0 else ["kiln", "peer"]
            for who in order:
                dest = os.path.join(work, "x-" + who)
                if os.path.exists(dest):
                    shutil.rmtree(dest)
                if who == "peer":
                    os.mkdir(dest)
                    w, c, _ = timed("zstd -d -q < %s | tar -x -C %s"
                                    % (peer_archive, dest), shell=True)
                    b6_peer.append(w)
                    b6_peer_cpu.append(c)
                else:
                    w, c, _ = timed([args.kiln, "unstash", digest, dest,
                                     "--store", store])
                    b6_kiln.append(w)
                    b6_kiln_cpu.append(c)
            print("B6 round %d: kiln %.2fs  peer %.2fs"
                  % (r + 1, b6_kiln[-1], b6_peer[-1]), flush=True)

        archive_bytes = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(os.path.join(store, "cas", "sha256"))
            for f in fs)
        result = {
            "tree_bytes": size,
            "tree_files": files,
            "rounds": args.rounds,
            "kiln_archive_bytes": archive_bytes,
            "peer_archive_bytes": os.path.getsize(peer_archive),
            "B4": {"kiln_s": median(b4_kiln), "peer_s": median(b4_peer),
                   "ratio": median(b4_kiln) / median(b4_peer),
                   "kiln_cpu_s": median(b4_kiln_cpu),
                   "peer_cpu_s": median(b4_peer_cpu),
                   "target": "<= 1.0",
                   "peer": "tar -cf - DIR | zstd -1"},
            "B5": {"kiln_s": median(b5), "first_stash_s": median(b4_kiln),
                   "ratio": median(b5) / median(b4_kiln),
                   "kiln_cpu_s": median(b5_cpu),
                   "target": "<= 0.2"},
            "B6": {"kiln_s": median(b6_kiln), "peer_s": median(b6_peer),
                   "ratio": median(b6_kiln) / median(b6_peer),
                   "kiln_cpu_s": median(b6_kiln_cpu),
                   "peer_cpu_s": median(b6_peer_cpu),
                   "target": "<= 1.0",
                   "peer": "zstd -d < ARCHIVE | tar -x"},
            "load_average_at_end": os.getloadavg(),
        }
        print()
        print("%-4s %10s %10s %8s %8s   %s" % ("", "kiln", "peer", "ratio",
                                              "target", "cpu kiln/peer"))
        for key in ("B4", "B5", "B6"):
            b = result[key]
            peer = b.get("peer_s", b.get("first_stash_s"))
            cpu = "%.2fs/%.2fs" % (b["kiln_cpu_s"], b.get("peer_cpu_s", 0.0))
            print("%-4s %9.3fs %9.3fs %8.3f %8s   %s" % (
                key, b["kiln_s"], peer, b["ratio"], b["target"], cpu))
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print("\nwrote", os.path.normpath(args.out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
