"""An output never destroys what it does not own, and every file cnnlab writes is written atomically.

`--overwrite` replaces only a cnnlab run folder; an `--out` that is, holds or sits inside what a verb reads is one
line naming the flag; a SIGKILL in the middle of any write leaves the previous file whole."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_toy_run
from tests.hostile.helpers import killed_at, refused, run_cli, snapshot, tiny_npz


@pytest.fixture(scope="module")
def run(fake_idx, tmp_path_factory) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("outputs") / "run", fake_idx, epochs=1)


@pytest.fixture
def folder_data(tmp_path) -> Path:
    """folder:D data: two classes of 8×8 PNGs."""
    root = tmp_path / "D"
    rng = np.random.default_rng(0)
    for c in "ab":
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


# ---- --overwrite replaces only a cnnlab run folder


def test_overwrite_never_replaces_the_data_folder(folder_data):
    before = snapshot(folder_data)
    proc = run_cli("train", "--data", f"folder:{folder_data}", "--out", folder_data, "--overwrite")
    refused(proc, "--out", str(folder_data), "is the data")
    assert snapshot(folder_data) == before


def test_overwrite_never_replaces_a_folder_holding_the_data(tmp_path):
    x = tmp_path / "X"
    x.mkdir()
    data = tiny_npz(x / "tiny.npz", side=8)
    (x / "thesis.tex").write_text("three years of work\n")
    before = snapshot(x)
    refused(run_cli("train", "--data", f"npz:{data}", "--out", x, "--overwrite"), "--out", "holds the data")
    refused(run_cli("train", "--data", f"npz:{data}", "--out", tmp_path, "--overwrite"), "holds the data")  # a parent
    assert snapshot(x) == before


def test_overwrite_never_replaces_the_working_folder_or_the_root(tmp_path, run):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine\n")
    proc = run_cli("train", "--data-dir", tmp_path / "none", "--out", ".", "--overwrite", cwd=work)
    refused(proc, "--out", "not a cnnlab run folder")
    refused(run_cli("train", "--data-dir", tmp_path / "none", "--out", "/", "--overwrite", cwd=work), "--out /")
    assert snapshot(work) == {"notes.txt": b"mine\n"}
    copy = shutil.copytree(run, work / "run")  # a run folder that is the working folder: moving it away is refused
    refused(run_cli("train", "--data-dir", tmp_path / "none", "--out", ".", "--overwrite", cwd=copy), "working folder")


def test_overwrite_never_replaces_a_run_folder_with_files_of_the_user(tmp_path, run):
    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "thesis.tex").write_text("notes beside the run\n")
    before = snapshot(copy)
    proc = run_cli("train", "--data-dir", tmp_path / "none", "--out", copy, "--overwrite")
    refused(proc, "--out", "not a cnnlab run folder", "thesis.tex")
    assert snapshot(copy) == before


def test_overwrite_accepts_a_run_folder(run):
    from cnnlab.run.folder import check_run_dir, run_folder_problem

    assert run_folder_problem(run) is None
    assert check_run_dir(run, overwrite=True) == run


def test_a_run_folder_inside_the_data_is_refused(folder_data):
    before = snapshot(folder_data)
    proc = run_cli("train", "--data", f"folder:{folder_data}", "--out", folder_data / "a" / "run")
    refused(proc, "--out", "inside the data")
    assert snapshot(folder_data) == before and not (folder_data / "a" / "run").exists()


# ---- every verb's --out: never an input, never inside the data


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["export", "RUN", "--out", "RUN/model.safetensors"], ["--out", "is the run's model.safetensors"]),
        (["export", "RUN", "--out", "RUN/checkpoint.pt"], ["--out", "is the run's checkpoint.pt"]),
        (["export", "RUN", "--out", "RUN"], ["--out", "is a folder"]),
        (["explain", "RUN", "filters", "--out", "RUN/config.json"], ["--out", "is the run's config.json"]),
        (["features", "RUN", "--out", "DATA/codes.npz"], ["--out", "inside the data"]),
        (["features", "RUN", "--out", "RUN/codes.safetensors"], ["--out", "ending in .npz"]),
        (["evaluate", "RUN", "--out", "DATA"], ["--out", "inside the data"]),
        (["bench", "RUN", "--quick", "--save", "RUN/model.safetensors"], ["--save", "is the run's model.safetensors"]),
        (["augment", "--data-dir", "DATA", "--out", "DATA/augment.png"], ["--out", "inside the data"]),
        (["datasets", "samples", "fashion-mnist", "--data-dir", "DATA", "--out", "DATA"], ["--out", "is the data"]),
        (["lr-find", "--data-dir", "DATA", "--out", "DATA"], ["--out", "inside the data"]),
        (["lab", "conv", "--quick", "--data", "folder:DATA", "--out", "DATA"], ["--out", "is the data"]),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None,
)
def test_an_output_is_never_an_input(run, fake_idx, args, words):
    args = [a.replace("RUN", str(run)).replace("DATA", str(fake_idx)) for a in args]
    before, data = snapshot(run), snapshot(fake_idx)
    refused(run_cli(*args), *words)
    assert snapshot(run) == before and snapshot(fake_idx) == data
    assert not list(run.glob("codes*"))  # not even under another name (X.safetensors.npz)


def test_an_output_in_an_unwritable_place_names_the_file(run):
    line = refused(run_cli("export", run, "--out", "/proc/x.onnx"), "/proc/x.onnx", "could not be written")
    assert ".tmp" not in line


# ---- atomic writes: a SIGKILL in the middle of a write keeps the old file


def _old(path: Path, data: bytes = b"the previous file, whole\n") -> bytes:
    path.write_bytes(data)
    return data


@pytest.mark.slow
@pytest.mark.parametrize(
    ("writer", "args", "target"),
    [
        ("onnx.save_model", ["export", "RUN"], "RUN/model.onnx"),
        ("numpy.savez_compressed", ["features", "RUN", "--out", "OUT/codes.npz"], "OUT/codes.npz"),
        ("matplotlib.figure.Figure.savefig", ["evaluate", "RUN", "--out", "OUT"], "OUT/confusion.png"),
        (
            "PIL.Image.Image.save",
            ["datasets", "samples", "fashion-mnist", "--data-dir", "DATA", "--n", "1", "--out", "OUT"],
            "OUT/t-shirt-top.png",
        ),
    ],
    ids=["export-onnx", "features-npz", "evaluate-png", "samples-png"],
)
def test_a_kill_mid_write_keeps_the_old_file(tmp_path, run, fake_idx, writer, args, target):
    def fill(a: str) -> str:
        return a.replace("RUN", str(run)).replace("OUT", str(tmp_path)).replace("DATA", str(fake_idx))

    path = Path(fill(target))
    old = _old(path)
    before = snapshot(run) if path.parent != run else None
    proc = killed_at(writer, *map(fill, args))
    assert proc.returncode == -9, proc.stderr  # killed where the writer had written half a file
    assert path.read_bytes() == old
    if before is not None:
        assert snapshot(run) == before
    path.unlink()


@pytest.mark.slow
def test_a_kill_while_history_csv_is_written_keeps_its_rows(tmp_path, fake_idx):
    out = tmp_path / "run"
    args = ["train", "--data-dir", fake_idx, "--epochs", "2", "--out", out, "--verbose", "0", "--val-split", "100"]
    proc = killed_at("pathlib.Path.write_text@history.csv#2", *args)
    assert proc.returncode == -9, proc.stderr
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"] and float(rows[0]["loss"]) > 0  # epoch 1's row, whole


@pytest.mark.slow
def test_a_kill_while_int8_onnx_and_json_are_written_keeps_the_old_files(tmp_path, run):
    old = _old(tmp_path / "model.int8.onnx")
    proc = killed_at("onnx.save_model@model.int8.onnx", "export", run, "--int8", "--out", tmp_path / "model.int8.onnx")
    assert proc.returncode == -9 and (tmp_path / "model.int8.onnx").read_bytes() == old, proc.stderr
    old = _old(tmp_path / "bench.json")
    proc = killed_at("pathlib.Path.write_text@bench.json", "bench", run, "--quick", "--save", tmp_path / "bench.json")
    assert proc.returncode == -9 and (tmp_path / "bench.json").read_bytes() == old, proc.stderr
