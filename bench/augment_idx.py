#!/usr/bin/env python3
"""IDX plumbing of bench/augment_study.sh (standard library only).

  augment_idx.py subset SRC_DIR PER_CLASS SEED OUT_DIR [TEST_LIMIT]
      OUT_DIR/train-*: PER_CLASS images of each class of SRC_DIR's train split, picked by a seeded shuffle
      (Python's random.Random(SEED)), in shuffled order; OUT_DIR/t10k-*: SRC_DIR's test split (its first
      TEST_LIMIT images when given).
  augment_idx.py merge OUT_DIR REAL_DIR TEST_DIR GEN_FILE:LABEL [GEN_FILE:LABEL ...]
      OUT_DIR/train-*: REAL_DIR's train split followed by every GEN_FILE (IDX3, 28 x 28) labelled LABEL;
      OUT_DIR/t10k-*: TEST_DIR's test split.
"""
import gzip
import os
import random
import struct
import sys


def read_idx(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return list(dims), data[4 + 4 * ndim:]


def write_idx(path, dims, payload):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | len(dims)))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        f.write(payload)


def split(d, stem):
    dims, px = read_idx(os.path.join(d, f"{stem}-images-idx3-ubyte"))
    _, lab = read_idx(os.path.join(d, f"{stem}-labels-idx1-ubyte"))
    return dims, px, lab


def subset(src, per_class, seed, out, test_limit=None):
    dims, px, lab = split(src, "train")
    n, size = dims[0], dims[1] * dims[2]
    order = list(range(n))
    random.Random(seed).shuffle(order)
    taken, count = [], {}
    for i in order:
        c = lab[i]
        if count.get(c, 0) < per_class:
            count[c] = count.get(c, 0) + 1
            taken.append(i)
    os.makedirs(out, exist_ok=True)
    write_idx(os.path.join(out, "train-images-idx3-ubyte"), [len(taken)] + dims[1:], b"".join(px[i * size:(i + 1) * size] for i in taken))
    write_idx(os.path.join(out, "train-labels-idx1-ubyte"), [len(taken)], bytes(lab[i] for i in taken))
    tdims, tpx, tlab = split(src, "t10k")
    m = tdims[0] if test_limit is None else min(test_limit, tdims[0])
    write_idx(os.path.join(out, "t10k-images-idx3-ubyte"), [m] + tdims[1:], tpx[:m * size])
    write_idx(os.path.join(out, "t10k-labels-idx1-ubyte"), [m], tlab[:m])


def merge(out, real, test, gens):
    dims, px, lab = split(real, "train")
    parts, labels, n = [px], [lab], dims[0]
    for g in gens:
        path, label = g.rsplit(":", 1)
        gd, gpx = read_idx(path)
        if gd[1:] != dims[1:]:
            raise SystemExit(f"{path}: images {gd[1:]} differ from the real ones' {dims[1:]}")
        parts.append(gpx)
        labels.append(bytes([int(label)]) * gd[0])
        n += gd[0]
    os.makedirs(out, exist_ok=True)
    write_idx(os.path.join(out, "train-images-idx3-ubyte"), [n] + dims[1:], b"".join(parts))
    write_idx(os.path.join(out, "train-labels-idx1-ubyte"), [n], b"".join(labels))
    tdims, tpx, tlab = split(test, "t10k")
    write_idx(os.path.join(out, "t10k-images-idx3-ubyte"), tdims, tpx)
    write_idx(os.path.join(out, "t10k-labels-idx1-ubyte"), [tdims[0]], tlab)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "subset" and len(a) in (5, 6):
        subset(a[1], int(a[2]), int(a[3]), a[4], int(a[5]) if len(a) == 6 else None)
    elif a and a[0] == "merge" and len(a) >= 5:
        merge(a[1], a[2], a[3], a[4:])
    else:
        raise SystemExit(__doc__)
