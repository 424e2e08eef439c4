"""IDX files (MNIST, Fashion-MNIST): big-endian header of dtype code, rank and dims, then raw data; gz or plain."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

# IDX type codes → numpy dtypes (big-endian where multi-byte)
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (gzip-compressed or not) into a tensor of its stored shape."""
    path = Path(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: truncated or corrupt IDX file: header says {dims} but holds {len(raw) - header} bytes"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
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
    with gzip.open(path, "wb") if compress else open(path, "wb") as f:
        f.write(data)
