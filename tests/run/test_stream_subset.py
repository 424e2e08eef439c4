"""A streamed folder is a FileSet with a real `subset`: --max-train-samples and the validation carve-out on it."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cnnlab.data.streaming import SAMPLE, file_set, load_streaming
from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig
from tests.conftest import make_images


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream-subset")
    images, labels = make_images(120, classes=3, size=20, seed=4)
    for i, (im, k) in enumerate(zip(images, labels, strict=True)):
        (root / f"c{k}").mkdir(exist_ok=True)
        Image.fromarray(im).save(root / f"c{k}" / f"{i:03d}.png")
    return root


def test_subset_keeps_files_labels_and_a_sample_of_its_own(folder):
    files = file_set(folder, None, None, seed=0)
    first = files.subset(slice(0, 50))
    assert len(first) == 50 and first.files == files.files[:50] and first.file_labels == files.file_labels[:50]
    assert set(first.sample_index) <= set(range(50)) and len(first.sample) == len(first.sample_index) > 0
    for j, i in enumerate(first.sample_index):  # each sample image is the decoded file it names
        assert torch.equal(first.sample.images[j], first.dataset()[i][0])
    picked = files.subset([3, 7, 11])
    assert picked.files == [files.files[i] for i in (3, 7, 11)] and len(picked.sample) == 3


def test_a_subset_far_smaller_than_the_sample_decodes_its_own(folder, monkeypatch):
    monkeypatch.setattr("cnnlab.data.streaming.SAMPLE", 100)
    files = file_set(folder, None, None, seed=0)
    few = files.subset(slice(0, 10))
    assert len(few.sample) == 10  # all of it: statistics of the training images actually used
    assert SAMPLE == 1024


@pytest.mark.slow
def test_stream_with_max_train_samples_trains(folder, tmp_path):
    # was: AttributeError: 'FileSet' object has no attribute 'subset'
    cfg = TrainConfig(
        data=f"folder:{folder}",
        stream=True,
        max_train_samples=50,
        model="lenet5",
        epochs=1,
        batch_size=16,
        image_size=28,
        precision="fp32",
        verbose=0,
        out=str(tmp_path / "run"),
    )
    result = train_run(cfg, log=lambda *a: None)
    assert result.metrics["steps"] == 4  # 50 images, batches of 16
    val = load_streaming(f"folder:{folder}", None, 0, None, None).val
    assert len(val) == 12
