"""Tracebacks are bugs: what used to end in one (or in a silent wrong result) is one line naming the flag or file,
and a message names only flags the verb has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_toy_run
from tests.hostile.helpers import foreign_onnx, refused, run_cli, tiny_npz


@pytest.fixture(scope="module")
def run(fake_idx, tmp_path_factory) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("tracebacks") / "run", fake_idx, epochs=1)


@pytest.mark.parametrize("opset", ["5", "99"])
def test_an_opset_out_of_range_is_one_line_and_writes_nothing(tmp_path, run, opset):
    refused(run_cli("export", run, "--opset", opset, "--out", tmp_path / "m.onnx"), f"--opset {opset}", "opsets 7–")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_an_opset_the_exporter_cannot_reach_is_one_line_not_another_opset(tmp_path, run):
    # it used to print the converter's traceback, then write the exporter's own opset and exit 0
    proc = run_cli("export", run, "--opset", "9", "--out", tmp_path / "m.onnx")
    refused(proc, "--opset 9", "could not convert", "it exports opset")
    assert not (tmp_path / "m.onnx").exists() and "Traceback" not in proc.stdout


def test_a_folder_where_a_file_is_expected_is_one_line(tmp_path, run):
    (tmp_path / "d.npz").mkdir()
    refused(run_cli("train", "--data", f"npz:{tmp_path / 'd.npz'}", "--out", tmp_path / "r"), "d.npz is a folder")
    refused(run_cli("bench", run, "--quick", "--save", tmp_path), "--save", "is a folder")


def test_a_checkpoint_that_is_a_folder_is_one_line(tmp_path, run):
    import shutil

    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "checkpoint.pt").unlink()
    (copy / "checkpoint.pt").mkdir()
    refused(run_cli("train", "--resume", copy, "--epochs", "3"), "checkpoint.pt is a folder")


def test_messages_name_only_flags_the_verb_has(tmp_path):
    root = tmp_path / "mixed"
    for cls, side in (("a", 8), ("b", 9), ("c", 8)):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((side, side), np.uint8)).save(root / cls / "x.png")
    line = refused(run_cli("augment", "--data", f"folder:{root}", "--out", tmp_path / "a.png"), "--image-size")
    assert "augment" in line  # and augment has the flag:
    assert (
        run_cli("augment", "--data", f"folder:{root}", "--image-size", "8", "--out", tmp_path / "a.png").returncode == 0
    )
    foreign = foreign_onnx(tmp_path / "foreign.onnx")
    data = f"npz:{tiny_npz(tmp_path / 'd.npz')}"
    refused(run_cli("evaluate", foreign, "--data", data), "without cnnlab metadata", "to cnnlab predict")
