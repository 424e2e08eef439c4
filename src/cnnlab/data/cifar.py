"""CIFAR-10, binary version: records of 1 label byte + 3,072 pixel bytes (R, G, B planes of 32×32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

RECORD = 1 + 3 * 32 * 32
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_cifar_bin(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one CIFAR-10 binary batch file → (uint8 N×3×32×32, int64 N)."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise ValueError(f"{path}: not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple of {RECORD})")
    rec = raw.reshape(-1, RECORD)
    if rec[:, 0].max() > 9:
        raise ValueError(f"{path}: label byte {rec[:, 0].max()} out of range 0–9; is this the binary version?")
    images = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(rec[:, 0].astype(np.int64))


def write_cifar_bin(path: str | Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write uint8 N×3×32×32 images and labels as a CIFAR-10 binary batch file."""
    rec = np.concatenate([labels.numpy().astype(np.uint8)[:, None], images.numpy().reshape(len(labels), -1)], 1)
    rec.tofile(path)
