#!/usr/bin/env python3
"""Generates the B7 tree: about 200 MiB of mixed files (seeded).

  small  4,000 files of 1-16 KiB in 40 directories, text-like   ~33 MiB
  medium   100 files of 256 KiB-2 MiB; half text-like, half random ~110 MiB
  large      1 file of 64 MiB, text and random in 1 MiB stripes   64 MiB
Every 20th small file is executable; a few symlinks and empty directories.
"""
import os
import random
import sys

MiB = 1 << 20


def main():
    root = sys.argv[1]
    rng = random.Random(20261202)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                     for _ in range(rng.randint(2, 10))) for _ in range(5000)]
    soup = bytearray()
    while len(soup) < 8 * MiB:
        soup += ("%08d %s level=%s\n" % (
            rng.randint(0, 99999999),
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))),
            rng.choice(["info", "warn", "debug"]))).encode()

    def text(n):
        out = bytearray()
        while len(out) < n:
            start = rng.randrange(0, len(soup) - 65536)
            out += soup[start:start + min(65536, n - len(out))]
        return bytes(out)

    def write(path, data, mode=0o644):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    for i in range(4000):
        write(os.path.join(root, "small/d%02d/f%04d.txt" % (i % 40, i)),
              text(rng.randint(1024, 16384)), 0o755 if i % 20 == 0 else 0o644)
    for i in range(100):
        n = rng.randint(256 * 1024, 2 * MiB)
        write(os.path.join(root, "medium/m%03d.bin" % i),
              text(n) if i % 2 == 0 else rng.randbytes(n))
    with open(os.path.join(root, "large.bin"), "wb") as f:
        for i in range(64):
            f.write(text(MiB) if i % 2 == 0 else rng.randbytes(MiB))
    for i in range(10):
        os.makedirs(os.path.join(root, "empty/e%02d" % i), exist_ok=True)
        os.symlink("../small/d%02d" % i, os.path.join(root, "empty/l%02d" % i))


if __name__ == "__main__":
    main()
