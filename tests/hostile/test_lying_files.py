"""A file that lies is refused at load, in one line naming the file: ONNX metadata that does not fit its graph or is
absurd, foreign ONNX files that are not classifiers, resume checkpoints whose parts do not fit the run (an optimizer
state of another shape used to end in a segmentation fault), damaged --init-from sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import train_toy_run
from tests.hostile.helpers import cnnlab, foreign_onnx, refused, run_cli, snapshot, with_onnx_record


@pytest.fixture(scope="module")
def run(fake_idx, tmp_path_factory) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("lying") / "run", fake_idx, epochs=1)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    from cnnlab.deploy.export import export_onnx
    from cnnlab.io import load_model

    model, meta = load_model(run)
    return export_onnx(model, meta, tmp_path_factory.mktemp("onnx") / "toy.onnx", str(run))


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    return path


# ---- ONNX metadata goes through the same checks as a model file's, and must fit the graph


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"input_size": [3, 28, 28], "mean": [0.3] * 3, "std": [0.3] * 3}, ["graph takes channels 1", "says 3"]),
        ({"input_size": [1, 32, 32]}, ["graph takes height 28", "says 32"]),
        ({"classes": list("abcde"), "model_args": {"num_classes": 5}}, ["outputs 10 classes", "names 5"]),
        ({"std": [0.0]}, ["'std'", "> 0"]),
        ({"mean": [float("nan")]}, ["'mean'", "not finite"]),
        ({"classes": list(range(10))}, ["'classes' must be names"]),
        ({"input_size": [1, 0, 28]}, ["'input_size'", "out of range"]),
    ],
    ids=["channels", "size", "classes", "std", "mean", "class-names", "zero-size"],
)
def test_onnx_metadata_that_lies_is_refused_naming_the_file(tmp_path, exported, png, changes, words):
    lying = with_onnx_record(exported, tmp_path / "lying.onnx", **changes)
    refused(run_cli("predict", lying, png), str(lying), *words)
    refused(run_cli("evaluate", lying), str(lying), *words)


@pytest.mark.slow
def test_an_onnx_input_size_of_gigapixels_is_refused_before_allocating(tmp_path, exported, png):
    lying = with_onnx_record(exported, tmp_path / "huge.onnx", input_size=[1, 100_000, 100_000])
    refused(cnnlab("predict", lying, png, memory_gb=1), str(lying), "'input_size'", "out of range")


def test_a_served_onnx_file_that_lies_is_refused_at_start(tmp_path, exported):
    pytest.importorskip("fastapi")
    from cnnlab.serve.app import create_app

    lying = with_onnx_record(exported, tmp_path / "lying.onnx", classes=list("abc"), model_args={"num_classes": 3})
    with pytest.raises(ValueError, match="lying.onnx: its graph outputs 10 classes, its metadata names 3"):
        create_app([lying])


@pytest.mark.parametrize(
    ("output", "input_type", "words"),
    [
        ("image", "float", ["not a classifier", "rank 4"]),
        ("scalar", "float", ["not a classifier", "rank 0"]),
        ("logits", "uint8", ["not an image classifier cnnlab can feed", "tensor(uint8)"]),
    ],
)
def test_a_foreign_onnx_that_is_not_a_classifier_gets_one_line(tmp_path, png, output, input_type, words):
    path = foreign_onnx(tmp_path / f"{output}.onnx", output, input_type)
    proc = run_cli("predict", path, png, "--input", "1,28,28", "--mean", "0.5", "--std", "0.5")
    refused(proc, str(path), *words)


# ---- resume checkpoints: every part checked against the run before anything is loaded


def _lying_checkpoint(run: Path, folder: Path, change) -> Path:
    copy = shutil.copytree(run, folder)
    state = torch.load(copy / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, copy / "checkpoint.pt")
    return copy


def _first_param_state(state: dict) -> dict:
    return state["optimizer"]["state"][0]


def _nan_weight(state: dict) -> None:
    state["model"]["features.0.weight"][0, 0, 0, 0] = float("nan")


def _bad_generator(state: dict) -> None:
    state["tracked"]["loader"]["generator"] = torch.zeros(10, dtype=torch.uint8)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: _first_param_state(s).update(exp_avg=torch.zeros(7)), ["'exp_avg'", "shape (7,)", "(6, 1, 5, 5)"]),
        (lambda s: _first_param_state(s).update(exp_avg_sq=torch.zeros(6, 1, 5)), ["'exp_avg_sq'", "shape (6, 1, 5)"]),
        (lambda s: s["optimizer"]["state"].update({99: {"step": torch.tensor(1.0)}}), ["names a parameter 99"]),
        (lambda s: s["rng"].update(cpu=torch.zeros(7, dtype=torch.uint8)), ["random state 'rng'"]),
        (_bad_generator, ["random state 'tracked.loader.generator'"]),
        (lambda s: s.update(history="garbage"), ["'history' is not a list"]),
        (lambda s: s.update(epoch=10**15), ["'epoch'"]),
        (lambda s: s.update(step=-5), ["'step' -5"]),
        (lambda s: s.update(batch=10**6), ["'batch' 1000000 is beyond"]),
        (lambda s: s["running"].update(seen="many"), ["running metrics"]),
        (_nan_weight, ["non-finite", "features.0.weight"]),
    ],
    ids=[
        "exp_avg-7",
        "exp_avg_sq-shape",
        "unknown-param",
        "rng",
        "loader-generator",
        "history",
        "epoch",
        "step",
        "batch",
        "running",
        "nan-weights",
    ],
)
def test_a_checkpoint_that_lies_is_refused_and_nothing_changes(tmp_path, run, change, words):
    copy = _lying_checkpoint(run, tmp_path / "run", change)
    before = snapshot(copy)
    proc = cnnlab("train", "--resume", copy, "--epochs", "3")
    assert proc.returncode == 2, proc.stderr  # never a segmentation fault (-11)
    refused(proc, "checkpoint.pt", "cannot be resumed", *words)
    assert snapshot(copy) == before  # model.safetensors above all: never replaced by weights from a lie


def test_non_finite_weights_never_replace_a_model_file(tmp_path):
    from cnnlab.models import create_model
    from cnnlab.run.finish import _check_finite

    model = create_model("lenet5", num_classes=10, in_chans=1)
    _check_finite(model, tmp_path / "model.safetensors")
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"model.safetensors not written: .*features.0.weight\); the previous file"):
        _check_finite(model, tmp_path / "model.safetensors")


# ---- --init-from and --config: damaged or misplaced sources


def test_init_from_a_damaged_run_folder_is_one_line_before_any_data(tmp_path, run, fake_idx):
    damaged = shutil.copytree(run, tmp_path / "damaged")
    (damaged / "model.safetensors").write_bytes(b"\x00" * 100)
    out = tmp_path / "new"
    proc = run_cli("train", "--init-from", damaged, "--data-dir", fake_idx, "--out", out)
    refused(proc, "model.safetensors", "not a safetensors model file")
    assert "data:" not in proc.stdout and not out.exists()
    refused(run_cli("train", "--init-from", fake_idx, "--data-dir", fake_idx, "--out", out), "--init-from", "no model")


def test_a_folder_given_as_a_config_file_is_one_line(tmp_path):
    refused(run_cli("train", "--config", tmp_path, "--out", tmp_path / "run"), "--config", str(tmp_path), "folder")
