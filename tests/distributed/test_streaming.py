"""Streaming folder:PATH data: the same uint8 batches, in the same order, as the in-memory loader."""

from __future__ import annotations

import csv

import pytest
import torch
from PIL import Image

from cnnlab.data import InMemoryLoader, channel_stats
from cnnlab.data.folder import read_image_folder
from cnnlab.data.streaming import StreamingFolderLoader, file_set, load_streaming, should_stream
from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig
from tests.conftest import make_images


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpegs")
    images, labels = make_images(150, classes=3, size=24, channels=3, seed=3)
    for i, (im, k) in enumerate(zip(images, labels, strict=True)):
        (root / f"c{k}").mkdir(exist_ok=True)
        Image.fromarray(im).save(root / f"c{k}" / f"{i:04d}.jpg" if i % 2 else root / f"c{k}" / f"{i:04d}.png")
    return root


@pytest.mark.parametrize(("workers", "world"), [(0, 1), pytest.param(1, 2, marks=pytest.mark.slow)])
def test_streamed_batches_equal_in_memory_batches(folder, workers, world):
    memory = read_image_folder(folder)
    files = file_set(folder, None, None, seed=0)
    assert files.classes == memory.classes and len(files) == len(memory)
    for rank in range(world):
        a = InMemoryLoader(memory, 32, shuffle=True, seed=7, rank=rank, world=world)
        b = StreamingFolderLoader(files, 32, shuffle=True, seed=7, rank=rank, world=world, workers=workers)
        assert len(a) == len(b) and a.num_samples == b.num_samples
        for _ in range(2):  # two epochs: the generator moves on identically
            for (xa, ya), (xb, yb) in zip(a.batches(), b.batches(), strict=True):
                assert xb.dtype == torch.uint8 and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_resume_mid_epoch_replays_the_rest_of_the_epoch(folder):
    loader = StreamingFolderLoader(file_set(folder, None, None, 0), 16, shuffle=True, seed=1, workers=0)
    it = loader.batches()
    next(it)
    state = loader.state_dict()
    rest = [y for _, y in it]
    again = StreamingFolderLoader(file_set(folder, None, None, 0), 16, shuffle=True, seed=99, workers=0)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(rest, [y for _, y in again.batches(1)], strict=True))


@pytest.mark.slow
def test_stream_flag_trains_like_the_in_memory_run(folder, tmp_path):
    common = dict(
        data=f"folder:{folder}",
        model="lenet5",
        epochs=2,
        batch_size=32,
        precision="fp32",
        threads=1,
        verbose=0,
        image_size=28,
        mode="L",
    )
    a = train_run(TrainConfig(**common, out=str(tmp_path / "memory")), log=lambda *_: None)
    b = train_run(TrainConfig(**common, stream=True, out=str(tmp_path / "stream")), log=lambda *_: None)
    for ra, rb in zip(a.history, b.history, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], abs=1e-5) and ra["val_loss"] == pytest.approx(rb["val_loss"])
    with open(tmp_path / "stream" / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_only_large_folders_stream_by_themselves(folder):
    assert not should_stream(f"folder:{folder}", None, None)
    assert not should_stream("fashion-mnist", None, None)
    splits = load_streaming(f"folder:{folder}", 30, 0, None, None)
    assert len(splits.train) == 120 and len(splits.val) == 30 and "streaming" in splits.notes[0]


def test_the_statistics_sample_is_not_lost_to_the_validation_split(folder, monkeypatch):
    # the sample and the validation split are drawn from independent streams: with a sample smaller than the
    # held-out split it must not lie wholly in the held-out files (the bug: channel statistics of 0 images, NaN)
    monkeypatch.setattr("cnnlab.data.streaming.SAMPLE", 20)
    splits = load_streaming(f"folder:{folder}", 30, 0, None, None)
    assert 0 < len(splits.train.sample) <= 20
    assert all(torch.isfinite(torch.tensor(channel_stats(splits.train.sample.images))).flatten())
