"""Memory is bounded by what the user asked, never by what a file claims.

The cases that used gigabytes run in a subprocess whose address space is limited (RLIMIT_AS = 1 GiB: a whole
`cnnlab train --resume` fits in it); each one must end in one line naming the file or flag, before allocating."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_toy_run
from tests.hostile.helpers import cnnlab, foreign_onnx, refused, run_cli, snapshot, torch_bomb

LIMIT_GB = 1.0  # the address space of the subprocesses: every refusal below must fit in it


@pytest.fixture(scope="module")
def run(fake_idx, tmp_path_factory) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("bounds") / "run", fake_idx, epochs=1)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A 4.7 MB torch file that inflates to 1 GiB (one float32 tensor of 2^28 zeros, deflated)."""
    return torch_bomb(tmp_path_factory.mktemp("bomb") / "weights.pth", 2**28)


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    return path


@pytest.mark.slow
def test_a_checkpoint_that_inflates_to_gigabytes_is_refused_before_inflating(tmp_path, run, bomb):
    copy = shutil.copytree(run, tmp_path / "run")
    shutil.copy(bomb, copy / "checkpoint.pt")
    before = snapshot(copy)
    proc = cnnlab("train", "--resume", copy, "--epochs", "3", memory_gb=LIMIT_GB)
    refused(proc, "checkpoint.pt", "inflate", "1,024 MiB")
    assert snapshot(copy) == before


@pytest.mark.slow
def test_an_init_from_file_that_inflates_to_gigabytes_is_refused_before_any_data(tmp_path, fake_idx, bomb):
    out = tmp_path / "run"
    proc = cnnlab("train", "--init-from", bomb, "--data-dir", fake_idx, "--out", out, memory_gb=LIMIT_GB)
    refused(proc, str(bomb), "inflate")
    assert "data:" not in proc.stdout and not out.exists()  # refused before the data were read


def test_an_npz_that_would_inflate_beyond_the_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((4096, 64, 64), np.uint8), y_train=np.zeros(4096, np.int64))
    assert path.stat().st_size < 2**20  # 16 MiB of pixels in well under 1 MiB
    monkeypatch.setattr("cnnlab.data.arrays.available_memory", lambda: 16 * 2**20)  # a machine with 16 MiB free
    refused(run_cli("train", "--data", f"npz:{path}", "--out", tmp_path / "run"), str(path), "inflate")
    assert not (tmp_path / "run").exists()


def _idx_header(dims: list[int]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_an_idx_file_is_read_no_further_than_its_header_says(tmp_path):
    from cnnlab.data.idx import read_idx

    huge = tmp_path / "huge-idx3-ubyte.gz"
    huge.write_bytes(gzip.compress(_idx_header([100_000, 1000, 1000]) + bytes(100)))  # claims 100 GB
    with pytest.raises(ValueError, match="header claims .* more than half the memory available"):
        read_idx(huge)
    long = tmp_path / "long-idx3-ubyte.gz"
    long.write_bytes(gzip.compress(_idx_header([2, 2, 2]) + bytes(64 * 2**20)))  # 8 pixels, then 64 MiB more
    with pytest.raises(ValueError, match="header says \\[2, 2, 2\\] but holds more bytes"):
        read_idx(long)


@pytest.mark.slow
def test_a_device_given_as_csv_is_refused_before_reading(tmp_path):
    proc = cnnlab("train", "--data", "csv:/dev/zero", "--out", tmp_path / "run", memory_gb=LIMIT_GB)
    refused(proc, "/dev/zero", "not a regular file")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["bench", "RUN", "--batch", "1,100000000", "--quick"], ["--batch 100000000", "1–4,096"]),
        (["explain", "RUN", "maximize", "--layer", "features.0", "--channel", "0-99999"], ["--channel", "256"]),
        (["explain", "RUN", "maximize", "--layer", "features.0", "--channel", "0-99"], ["channel 99", "has 6"]),
        (["export", "RUN", "--input", "1,60000,60000"], ["--input 1,60000,60000", "4096"]),
    ],
    ids=["bench-batch", "maximize-range", "maximize-channel", "export-input"],
)
def test_sizes_the_user_asks_for_are_checked_before_allocating(run, args, words):
    refused(run_cli(*[str(run) if a == "RUN" else a for a in args]), *words)


def test_a_foreign_onnx_input_size_is_checked_before_allocating(tmp_path, png):
    onnx_file = foreign_onnx(tmp_path / "foreign.onnx")
    args = ["predict", onnx_file, png, "--mean", "0.5", "--std", "0.5"]
    refused(run_cli(*args, "--input", "1,60000,60000"), "--input 1,60000,60000", "4096")
    assert run_cli(*args, "--input", "1,28,28").returncode == 0
