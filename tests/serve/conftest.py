"""A tiny trained run for the serve tests: LeNet-5, a few seconds on the generated square task (fake_idx)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_toy_run

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'cnnlab[serve]'")


@pytest.fixture(scope="session")
def serve_run(fake_idx, tmp_path_factory):
    """Run folder of LeNet-5 trained two epochs on the generated task (class k: a bright square at place k)."""
    return train_toy_run(tmp_path_factory.mktemp("serve") / "toy-lenet", fake_idx, epochs=2)


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


def train_scene_run(root, task: str, extra: list[str], count=(1, 2)):
    """A LeNet-5 run of `task` trained briefly on a tiny scene set of shapes (32×32, `count` objects): (run, scenes)."""
    from cnnlab.cli import main
    from tests.tasks.helpers import write_scene_set

    fmt, source = ("masks", "masks") if task == "segment" else ("coco", "coco")
    scenes = write_scene_set(root / "scenes", n_train=160, n_test=20, count=count, formats=(fmt,))
    out = root / f"tiny-{task}"
    args = ["train", "--task", task, "--data", f"{source}:{scenes}", "--model", "lenet5", "--epochs", "3"]
    args += ["--batch-size", "16", "--lr", "3e-3", "--seed", "1", "--val-split", "20", "--verbose", "0"]
    assert main([*args, *extra, "--out", str(out)]) == 0
    return out, scenes


@pytest.fixture(scope="session")
def detect_run(tmp_path_factory):
    """A detection run on shapes (grid 4; score threshold 0.05, so that even a briefly trained model shows boxes)."""
    return train_scene_run(
        tmp_path_factory.mktemp("serve-detect"), "detect", ["--task-arg", "grid=4", "--task-arg", "score=0.05"]
    )


@pytest.fixture(scope="session")
def segment_run(tmp_path_factory):
    """A segmentation run on shapes (U-Net decoder, resize upsampling)."""
    return train_scene_run(tmp_path_factory.mktemp("serve-segment"), "segment", ["--task-arg", "upsample=resize"])


@pytest.fixture(scope="session")
def localize_run(tmp_path_factory):
    """A localization run on shapes (one object a scene)."""
    return train_scene_run(tmp_path_factory.mktemp("serve-localize"), "localize", [], count=(1, 1))
