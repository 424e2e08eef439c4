"""Trained models for the explanation tests: LeNet-5 after one epoch of real Fashion-MNIST, and on the generated tasks."""

from __future__ import annotations

import pytest

from cnnlab.data import load_dataset
from cnnlab.io import load_model
from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig
from tests.conftest import make_shape_images, write_idx_task


def _train(data_dir, out, epochs: int, **kw) -> tuple:
    cfg = TrainConfig(
        data="fashion-mnist",
        data_dir=str(data_dir),
        model="lenet5",
        epochs=epochs,
        out=str(out),
        verbose=0,
        seed=0,
        **kw,
    )
    train_run(cfg, log=lambda *a: None)
    model, meta = load_model(out)
    return model, meta, load_dataset("fashion-mnist", data_dir, val_split=0).test


@pytest.fixture(scope="session")
def fashion_lenet(fashion_dir, tmp_path_factory):
    """(model, meta, test ImageSet): LeNet-5 after one Adam epoch on real Fashion-MNIST (about 81 % test accuracy)."""
    return _train(fashion_dir, tmp_path_factory.mktemp("explain") / "fashion", epochs=1)


@pytest.fixture(scope="session")
def toy_lenet(toy_run, fake_idx):
    """(model, meta, test ImageSet) of `toy_run` (tests/conftest.py)."""
    model, meta = load_model(toy_run)
    return model, meta, load_dataset("fashion-mnist", fake_idx, val_split=0).test


@pytest.fixture(scope="session")
def shapes_lenet(tmp_path_factory):
    """(model, meta, test ImageSet): LeNet-5 after one epoch on the shape task (class = shape, placed at random)."""
    data = write_idx_task(tmp_path_factory.mktemp("shapes"), make_shape_images, n_train=2000, n_test=200)
    return _train(data, tmp_path_factory.mktemp("explain") / "shapes", epochs=1, batch_size=32, lr=3e-3, val_split=100)
