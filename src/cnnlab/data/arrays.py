"""`npz:PATH` (Keras-style x_train/y_train/x_test/y_test) and `csv:PATH` (label, then pixel columns)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageSet


def _to_nchw(x: np.ndarray, path: Path, key: str) -> torch.Tensor:
    """N×H×W, N×H×W×C (C ≤ 4) or N×C×H×W → uint8 N×C×H×W; floats in [0, 1] are scaled to 0–255."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise ValueError(f"{path}: '{key}' has shape {x.shape}; expected N×H×W, N×H×W×C or N×C×H×W")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.max() <= 1.0:
            x = x * 255.0
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(x))


def read_npz(path: str | Path) -> tuple[ImageSet, ImageSet | None]:
    """Read x_train, y_train and optionally x_test, y_test and class_names from an .npz file."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read npz file ({e})") from None
    with z:
        keys = set(z.files)
        if not {"x_train", "y_train"} <= keys:
            raise ValueError(f"{path}: needs arrays 'x_train' and 'y_train' (found {sorted(keys)})")
        y_train = z["y_train"].astype(np.int64).reshape(-1)
        n_classes = int(y_train.max()) + 1
        if "class_names" in keys:
            classes = [str(c) for c in z["class_names"]]
        else:
            classes = [str(i) for i in range(n_classes)]
        train = ImageSet(_to_nchw(z["x_train"], path, "x_train"), torch.from_numpy(y_train), classes)
        test = None
        if {"x_test", "y_test"} <= keys:
            y_test = torch.from_numpy(z["y_test"].astype(np.int64).reshape(-1))
            test = ImageSet(_to_nchw(z["x_test"], path, "x_test"), y_test, classes)
    return train, test


def read_csv(path: str | Path, channels: int = 1) -> ImageSet:
    """Read a CSV of rows `label, p0, p1, …` (one header row allowed) holding square images."""
    path = Path(path)
    with open(path) as f:
        first = f.readline()
    skip = 0 if first.split(",")[0].strip().lstrip("-").isdigit() else 1
    data = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.int64, ndmin=2)
    labels, pixels = data[:, 0], data[:, 1:]
    side = math.isqrt(pixels.shape[1] // channels)
    if side * side * channels != pixels.shape[1]:
        raise ValueError(f"{path}: {pixels.shape[1]} pixel columns is not a square image of {channels} channel(s)")
    images = pixels.reshape(-1, channels, side, side).clip(0, 255).astype(np.uint8)
    classes = [str(i) for i in range(int(labels.max()) + 1)]
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), classes)
