"""IDX files (MNIST, Fashion-MNIST): big-endian header of dtype code, rank and dims, then raw data; gz or plain."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from cnnlab.files import atomic_write, available_memory, regular_file

# IDX type codes → numpy dtypes (big-endian where multi-byte)
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (gzip-compressed or not) into a tensor of its stored shape.

    The header's dimensions are read first and bounded by the memory available; then exactly that many bytes are
    inflated, never more: a small .gz that would inflate to gigabytes is refused or cut off at what it claims."""
    path = regular_file(path, "IDX file")
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise ValueError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
            dtype, ndim = np.dtype(_DTYPES[head[2]]), head[3]
            raw_dims = f.read(4 * ndim)
            dims = [int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(len(raw_dims) // 4)]
            expected = math.prod(dims) * dtype.itemsize
            free = available_memory()
            if expected > free // 2:
                raise ValueError(
                    f"{path}: its header claims {dims} ({expected / 2**30:.1f} GiB), more than half the memory "
                    f"available ({free / 2**30:.1f} GiB); refused before reading it"
                )
            raw = f.read(expected + 1)  # one byte more tells a file longer than its header says
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: cannot read IDX file ({e})") from None
    if len(dims) != ndim or len(raw) != expected:
        held = f"{len(raw)} bytes" if len(raw) <= expected else "more bytes"
        raise ValueError(f"{path}: truncated or corrupt IDX file: header says {dims} but holds {held}")
    arr = np.frombuffer(raw, dtype=dtype).reshape(dims)
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))


def write_idx(path: str | Path, array: np.ndarray | torch.Tensor, compress: bool | None = None) -> None:
    """Write an array as IDX (gzip when `compress`, or when the name ends in .gz)."""
    path = Path(path)
    arr = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    code = {np.dtype(v).newbyteorder("=").str: k for k, v in _DTYPES.items()}
    key = arr.dtype.newbyteorder("=").str
    if key not in code:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    data = bytes([0, 0, code[key], arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data += arr.astype(np.dtype(_DTYPES[code[key]])).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(gzip.compress(data) if compress else data))
