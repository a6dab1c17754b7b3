#!/usr/bin/env python3
"""Generates the B4-B6 benchmark tree: about 1 GiB of mixed files.

The mix (sizes are totals, approximate):
  small   16,000 files of 1-16 KiB in 160 directories, text-like   ~135 MiB
  medium     400 files of 256 KiB-2 MiB; half text-like, half random ~440 MiB
  large        3 files: 160 MiB text-like, 128 MiB random,
               160 MiB half-and-half in 1 MiB stripes                ~448 MiB
"Text-like" is slices of a word soup (log lines with numbers), which zstd -1
compresses about 3-4x; "random" is os.urandom (incompressible). Every 20th
small file is executable; a few symlinks and empty directories are added.
Content is seeded, so two runs generate the same bytes.
"""
import os
import random
import sys

MiB = 1 << 20


def word_soup(rng, size):
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(5000)
    ]
    lines = []
    total = 0
    while total < size:
        line = "%08d %s level=%s %s\n" % (
            rng.randint(0, 99999999),
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))),
            rng.choice(["info", "warn", "debug", "error"]),
            rng.randint(0, 1 << 30),
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def main():
    root = sys.argv[1]
    rng = random.Random(20261127)
    soup = word_soup(rng, 16 * MiB)

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

    for i in range(16000):
        d = "small/d%03d/e%d" % (i % 160, i % 7)
        write(os.path.join(root, d, "f%05d.txt" % i),
              text(rng.randint(1024, 16384)),
              0o755 if i % 20 == 0 else 0o644)
    for i in range(400):
        n = rng.randint(256 * 1024, 2 * MiB)
        data = text(n) if i % 2 == 0 else os.urandom(n)
        write(os.path.join(root, "medium", "m%03d.bin" % i), data)
    write(os.path.join(root, "large", "text.log"), text(160 * MiB))
    write(os.path.join(root, "large", "random.bin"), os.urandom(128 * MiB))
    with open(os.path.join(root, "large", "mixed.bin"), "wb") as f:
        for i in range(160):
            f.write(text(MiB) if i % 2 == 0 else os.urandom(MiB))
    for i in range(20):
        os.makedirs(os.path.join(root, "empty", "e%02d" % i), exist_ok=True)
        os.symlink("../small/d%03d" % i, os.path.join(root, "empty", "l%02d" % i))


if __name__ == "__main__":
    main()
