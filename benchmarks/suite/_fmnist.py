"""Fashion-MNIST IDX reading for the peer baselines, which must not depend on cnnlab (the Keras venv lacks it)."""

from __future__ import annotations

import gzip

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(name: str) -> np.ndarray:
    """Read `name` (e.g. 'train-images-idx3-ubyte') from the Debian package's folder as a uint8 array."""
    with gzip.open(f"{DATA}/{name}.gz") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
