"""
Fashion-MNIST for the PyTorch reference scripts of this folder (glow_fmnist.py, pixelcnn_fmnist.py, realnvp_fmnist.py,
vae_anomaly.py): the four standard IDX files, gzipped or not, in one folder (--data DIR; `bin/latent` reads the same).

    import fmnist                     # the scripts' own folder is on sys.path when run as `python bench/reference/x.py`
    px = fmnist.images(DIR, "train")  # uint8 (60000, 28, 28); "t10k": the 10,000 test images
    y = fmnist.labels(DIR, "t10k")    # uint8 (10000,)
"""
import gzip
import os
import struct

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """Read an IDX file (optionally gzipped) of unsigned bytes into a numpy array."""
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        buf = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", buf[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not an unsigned-byte IDX file"
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data, name):
    """The path of NAME.gz, else NAME, in the folder DATA; FileNotFoundError naming both when neither is there."""
    for cand in (name + ".gz", name):
        p = os.path.join(data, cand)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name}(.gz) not in {data}")


def images(data, split):
    """The images of SPLIT ("train" or "t10k") as uint8 (N, 28, 28)."""
    return read_idx(find(data, split + "-images-idx3-ubyte"))


def labels(data, split):
    """The class labels of SPLIT ("train" or "t10k") as uint8 (N,)."""
    return read_idx(find(data, split + "-labels-idx1-ubyte"))
