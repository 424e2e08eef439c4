"""A tiny trained run for the serve tests: LeNet-5, a few seconds on the generated square task (fake_idx)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'cnnlab[serve]'")


@pytest.fixture(scope="session")
def serve_run(fake_idx, tmp_path_factory):
    """Run folder of LeNet-5 trained two epochs on the generated task (class k: a bright square at place k)."""
    from cnnlab.pipeline import train_run
    from cnnlab.train.config import TrainConfig

    out = tmp_path_factory.mktemp("serve") / "toy-lenet"
    cfg = TrainConfig(data="fashion-mnist", data_dir=str(fake_idx), model="lenet5", epochs=2, out=str(out), verbose=0,
                      seed=0, batch_size=32, lr=3e-3, val_split=100)  # fmt: skip
    train_run(cfg, log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def client(serve_run, fake_idx):
    from fastapi.testclient import TestClient

    from cnnlab.serve.app import create_app

    with TestClient(create_app([serve_run], data_dir=str(fake_idx)), raise_server_exceptions=False) as c:
        yield c


def square_png(k: int = 0, size: int = 28, mode: str = "L") -> bytes:
    """A PNG of the generated task's class k: a bright 6×6 square at its place on a dark background."""
    from tests.conftest import make_images

    images, labels = make_images(200, seed=3)
    img = images[int(np.flatnonzero(labels == k)[0])]
    im = Image.fromarray(img).convert(mode)
    if size != 28:
        im = im.resize((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
