"""Shared fixtures: small generated datasets in the official file formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data.idx import write_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def make_images(n: int, classes: int = 10, size: int = 28, channels: int = 1, seed: int = 0):
    """A learnable toy task: class k is a bright 6×6 square at a class-specific place, on noise.

    Returns uint8 images (N, H, W) for one channel or (N, H, W, C), and int labels (N,).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 60, (n, size, size, channels)).astype(np.uint8)
    step = max(1, (size - 6) // 4)
    for i, k in enumerate(labels):
        r, c = (k // 4) * step, (k % 4) * step
        images[i, r : r + 6, c : c + 6] = 230
    return (images[..., 0] if channels == 1 else images), labels.astype(np.uint8)


def write_fake_idx(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = make_images(n, seed=seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
    return folder


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from tests."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def fake_idx(tmp_path_factory) -> Path:
    """A folder with tiny Fashion-MNIST-format IDX files (600 train, 200 test, gzip)."""
    return write_fake_idx(tmp_path_factory.mktemp("fake-fashion"))


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists() and not os.environ.get("CNNLAB_DATA"):
        pytest.skip("real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_DIR
