"""One small training on the real Fashion-MNIST files (skipped when they are not installed)."""

import json

import pytest

from cnnlab.data import load_dataset
from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig

pytestmark = pytest.mark.fashion


def test_real_files_read(fashion_dir):
    s = load_dataset("fashion-mnist", data_dir=fashion_dir)
    assert (len(s.train), len(s.val), len(s.test)) == (55_000, 5_000, 10_000)
    assert s.image_shape == (1, 28, 28) and s.classes[9] == "Ankle boot"
    assert s.test.labels.bincount().tolist() == [1000] * 10  # the official test set is balanced


@pytest.mark.slow
def test_lenet5_one_epoch(fashion_dir, tmp_path):
    cfg = TrainConfig(
        data="fashion-mnist",
        data_dir=str(fashion_dir),
        model="lenet5",
        epochs=1,
        batch_size=128,
        out=str(tmp_path / "run"),
        verbose=0,
    )
    res = train_run(cfg, log=lambda *_: None)
    metrics = json.loads((res.out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.80  # one epoch of LeNet-5 on 55k images
    assert metrics["train_seconds"] > 0  # recorded; how long it takes is measured in benchmarks/, never asserted
