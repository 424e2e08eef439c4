"""`run_splits`: every verb reopens a run's data exactly as the run trained on them, and says so when it does not."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cnnlab.io import RunMeta, load_model, read_meta, save_model
from cnnlab.models import create_model
from cnnlab.run.splits import run_splits
from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig
from tests.conftest import make_images
from tests.helpers import run_cli


def cli(*args, code: int = 0) -> tuple[str, str]:
    result = run_cli(*args, code=code)
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def odd_run(fake_idx, tmp_path_factory):
    """A run trained with a validation split and a seed that are not any verb's defaults."""
    out = tmp_path_factory.mktemp("splits") / "odd"
    cfg = TrainConfig(
        data_dir=str(fake_idx),
        model="lenet5",
        epochs=2,
        batch_size=32,
        lr=3e-3,
        val_split=150,
        seed=3,
        precision="fp32",
        verbose=0,
        out=str(out),
    )
    train_run(cfg, log=lambda *a: None)
    return out


def test_split_val_reproduces_the_runs_own_val_accuracy(odd_run):
    # before run_splits, `evaluate --split val` rebuilt the split from its own defaults (another size, seed 0): a
    # "validation" accuracy on images the run had trained on, without a word
    metrics = json.loads((odd_run / "metrics.json").read_text())
    stdout, stderr = cli("evaluate", odd_run, "--split", "val", "--json")
    result = json.loads(stdout)
    assert result["n"] == 150 and result["accuracy"] == metrics["val_accuracy"]
    assert "note:" not in stderr
    test = json.loads(cli("evaluate", odd_run, "--json")[0])
    assert test["accuracy"] == metrics["test_accuracy"] and test["n"] == 200


def test_the_recorded_split_is_the_trained_one(odd_run, fake_idx):
    meta = read_meta(odd_run)
    assert meta.data.val_split == 150 and meta.data.seed == 3 and meta.data.data_dir == str(fake_idx)
    data = run_splits(odd_run)
    assert len(data.splits.val) == 150 and len(data.splits.train) == 450 and data.notes("val") == []
    # the same 150 images the training held out: carved by the run's seed, not seed 0
    other = run_splits(odd_run, seed=0)
    assert not torch.equal(other.splits.val.images, data.splits.val.images)


def test_another_split_is_used_only_when_asked_and_said_in_one_line(odd_run):
    stdout, stderr = cli("evaluate", odd_run, "--split", "val", "--val-split", "100", "--json")
    assert json.loads(stdout)["n"] == 100
    notes = [line for line in stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "validation split 100 (seed 3), not the run's own 150 (seed 3)" in notes[0]
    _, stderr = cli("evaluate", odd_run, "--seed", "5", "--json")  # the test split does not depend on it
    assert "note:" not in stderr


def test_other_data_are_said(odd_run, tmp_path):
    images, labels = make_images(80, seed=5)
    for i, (im, k) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "d" / str(k)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(tmp_path / "d" / str(k) / f"{i}.png")
    stdout, stderr = cli("evaluate", odd_run, "--data", f"folder:{tmp_path / 'd'}", "--split", "val", "--json")
    assert json.loads(stdout)["n"] == 8  # the folder's own default split: 10 %
    assert "not the data the run trained on (fashion-mnist)" in stderr


def test_a_model_file_without_a_data_record_uses_its_run_folders_config(odd_run, fake_idx, tmp_path):
    # files written before the record existed: the config.json of their run folder describes the data
    model, meta = load_model(odd_run)
    old = tmp_path / "old"
    old.mkdir()
    save_model(old / "model.safetensors", model, meta.replace(data=None))
    (old / "config.json").write_text((odd_run / "config.json").read_text())
    assert len(run_splits(old).splits.val) == 150
    # a lone model file: the defaults, said once
    lone = tmp_path / "lone.safetensors"
    save_model(lone, model, meta.replace(data=None))
    data = run_splits(lone, data_dir=str(fake_idx))
    assert len(data.splits.val) == 60 and any("does not record how its data were split" in n for n in data.notes())
    assert data.notes("test") == []


def test_classes_in_another_order_are_put_in_the_models(tmp_path):
    classes = list("jihgfedcba")  # a folder lists its classes alphabetically: a … j
    path = save_model(tmp_path / "m.safetensors", create_model("lenet5", num_classes=10), classes=classes)
    images, labels = make_images(40, seed=7)
    for i, (im, k) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "d" / classes[k]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(tmp_path / "d" / classes[k] / f"{i}.png")
    data = run_splits(path, data=f"folder:{tmp_path / 'd'}", val_split=0)
    assert data.splits.classes == classes and data.splits.train.classes == classes
    # the files of class k are in folder classes[k], and their labels are k again: class k's square is where
    # make_images draws it for k
    step = (28 - 6) // 4
    for image, k in zip(data.splits.train.images, data.splits.train.labels.tolist(), strict=True):
        r, c = (k // 4) * step, (k % 4) * step
        assert (image[0, r : r + 6, c : c + 6] == 230).all()


def test_an_exported_files_metadata_reopens_the_same_data(odd_run):
    meta = read_meta(odd_run).replace(export=None)
    record = RunMeta.from_dict(meta.to_dict(), "x")
    assert record == meta and len(run_splits(record).splits.val) == 150
