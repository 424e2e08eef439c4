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


SHAPE = 8  # side of the shapes of `make_shape_images`


def _shape_masks() -> list[np.ndarray]:
    """Four 8×8 masks: filled square, ring, plus, diagonal cross."""
    masks = [np.zeros((SHAPE, SHAPE), bool) for _ in range(4)]
    masks[0][1:-1, 1:-1] = True
    masks[1][:2] = masks[1][-2:] = masks[1][:, :2] = masks[1][:, -2:] = True
    mid = slice(SHAPE // 2 - 1, SHAPE // 2 + 1)
    masks[2][mid] = masks[2][:, mid] = True
    i = np.arange(SHAPE)
    masks[3][i, i] = masks[3][i, SHAPE - 1 - i] = masks[3][i[1:], i[:-1]] = masks[3][i[:-1], i[1:]] = True
    return masks


def make_shape_images(n: int, size: int = 28, seed: int = 0):
    """A toy task about *what*, not *where*: the class is the shape (bright, value 230) drawn at a random place on
    noise (values < 60). Returns uint8 images (N, H, W) and labels (N,) in 0–3."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    masks = _shape_masks()
    for img, k, (r, c) in zip(images, labels, rng.integers(0, size - SHAPE, (n, 2)), strict=True):
        img[r : r + SHAPE, c : c + SHAPE][masks[k]] = 230
    return images, labels.astype(np.uint8)


def write_idx_task(folder: Path, make, n_train: int, n_test: int, gz: bool = True) -> Path:
    """Train and test IDX files in Fashion-MNIST's names from a generator make(n, seed=...) → (images, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = make(n, seed=seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
    return folder


def write_fake_idx(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    return write_idx_task(folder, make_images, n_train, n_test, gz)


def train_toy_run(out: Path, data_dir: Path, epochs: int) -> Path:
    """A LeNet-5 run folder trained on the generated task of `write_fake_idx` (seconds; the serve and deploy tests'
    model)."""
    from cnnlab.run.train import train_run
    from cnnlab.train.config import TrainConfig

    cfg = TrainConfig(
        data="fashion-mnist",
        data_dir=str(data_dir),
        model="lenet5",
        epochs=epochs,
        out=str(out),
        verbose=0,
        seed=0,
        batch_size=32,
        lr=3e-3,
        val_split=100,
    )
    train_run(cfg, log=lambda *a: None)
    return out


# fixtures that train a model (seconds each): every test that uses one, directly or through another fixture, is
# `slow`, since a `-m "not slow"` run would pay for the training on its behalf
TRAINING_FIXTURES = {"toy_run", "serve_run", "fashion_lenet", "shapes_lenet", "run_a", "killed_and_resumed", "odd_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def _precision_cache(tmp_path_factory) -> Path:
    """One bf16 check file for the whole session: the probe is measured at most once per test run (a machine's
    answer does not change between tests), while each test keeps a datasets cache of its own."""
    return tmp_path_factory.mktemp("precision") / "precision-check.json"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _precision_cache):
    """Never touch the user's cache or the network from tests."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    # the tests of the check itself (tests/test_runtime.py) point it at a file of their own
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", str(_precision_cache))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    torch.manual_seed(0)


DEFAULT_THREADS = torch.get_num_threads()  # what a `cnnlab` process starts with on this machine


@pytest.fixture
def default_threads(monkeypatch):
    """For a test that runs commands as a user does: torch's thread count as a new process has it, and no
    CNNLAB_THREADS (a training run then measures its thread choice between its candidates)."""
    monkeypatch.delenv("CNNLAB_THREADS", raising=False)
    torch.set_num_threads(DEFAULT_THREADS)


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """Every test runs torch on one thread, and leaves the count as it found it. The suite's tensors are small:
    intra-op threads add overhead there, and on a shared 2-core machine their OpenMP hand-offs cost several times
    the compute (resnet152's 2-sample step: 0.4 s on one thread, 4 s on two while other jobs ran), so the suite's
    speed would follow the machine's load. CNNLAB_THREADS=1 says so to every thread choice (commands, Trainers,
    lessons, subprocesses), so nothing is measured unless a test asks for it (`default_threads`, as the README test
    does; tests/test_runtime_threads.py checks the choice itself on injected timings)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("CNNLAB_THREADS", "1")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fake_idx(tmp_path_factory) -> Path:
    """A folder with tiny Fashion-MNIST-format IDX files (600 train, 200 test, gzip)."""
    return write_fake_idx(tmp_path_factory.mktemp("fake-fashion"))


@pytest.fixture(scope="session")
def toy_run(fake_idx, tmp_path_factory) -> Path:
    """Run folder "toy" of LeNet-5 after 3 epochs on the generated task of `fake_idx` (class k: a bright square at a
    class-specific place), trained by `cnnlab train` as a user runs it: the model of the CLI, explain and deploy
    tests."""
    from tests.helpers import run_cli

    out = tmp_path_factory.mktemp("toy-run") / "toy"
    proc = run_cli(
        "train",
        "--data",
        "fashion-mnist",
        "--data-dir",
        fake_idx,
        "--model",
        "lenet5",
        "--epochs",
        3,
        "--batch-size",
        32,
        "--lr",
        3e-3,
        "--val-split",
        100,
        "--out",
        out,
    )
    assert "test accuracy" in proc.stdout and str(out) in proc.stdout
    return out


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists() and not os.environ.get("CNNLAB_DATA"):
        pytest.skip("real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_DIR
