"""A small trained run for the deployment tests: LeNet-5 after 3 epochs on the generated task (tests/conftest.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")
pytest.importorskip("onnxscript", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")


@pytest.fixture(scope="session")
def toy_run(fake_idx, tmp_path_factory):
    """Run folder of LeNet-5 trained on the generated task (class k: a bright square at a class-specific place)."""
    from cnnlab.pipeline import train_run
    from cnnlab.train.config import TrainConfig

    out = tmp_path_factory.mktemp("deploy") / "toy"
    cfg = TrainConfig(data="fashion-mnist", data_dir=str(fake_idx), model="lenet5", epochs=3, out=str(out), verbose=0,
                      seed=0, batch_size=32, lr=3e-3, val_split=100)  # fmt: skip
    train_run(cfg, log=lambda *a: None)
    return out
