"""Streaming survives the file system: unreadable files are skipped with the in-memory warning, and a file deleted,
truncated or replaced mid-epoch ends the run in one line that says `--resume` finishes it (also with --nproc 2,
where torchrun's own report of the failure used to add 68 lines)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.train.callbacks import Callback
from tests.conftest import make_images
from tests.hostile.helpers import env, refused, run_cli


def image_folder(root: Path, n: int, classes: int = 3) -> Path:
    images, labels = make_images(n, classes=classes, seed=0)
    for i, (im, k) in enumerate(zip(images, labels, strict=True)):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / f"c{k}" / f"{i:04d}.png")
    return root


def _skipped(caught) -> list[str]:
    """The files a 'could not be read and were skipped' warning lists."""
    text = next(str(w.message) for w in caught if "could not be read" in str(w.message))
    return sorted(line.strip() for line in text.splitlines()[1:])


def test_stream_skips_unreadable_files_with_the_in_memory_warning(tmp_path):
    from cnnlab.data import load_dataset
    from cnnlab.data.streaming import load_streaming

    root = image_folder(tmp_path / "data", 60)
    (root / "c0" / "empty.png").write_bytes(b"")
    (root / "c1" / "text.png").write_text("not an image\n")
    (root / "c2" / "notes.txt").write_text("a note\n")
    with pytest.warns(UserWarning) as memory:
        load_dataset(f"folder:{root}", val_split=0)
    with pytest.warns(UserWarning) as streamed:
        splits = load_streaming(f"folder:{root}", 0, 0, None, None)
    assert _skipped(streamed) == _skipped(memory) and len(_skipped(memory)) == 3
    assert len(splits.train) == 60
    refused(run_cli("train", "--data", f"folder:{root}", "--stream", "--strict", "--out", tmp_path / "r"), "--strict")


class Damage(Callback):
    """After the first batch, damage every file of class c1: most later batches hold one."""

    def __init__(self, root: Path, how: str) -> None:
        self.root, self.how, self.done = root, how, False

    def on_batch_end(self, batch, logs) -> None:
        if self.done:
            return
        self.done = True
        for path in sorted((self.root / "c1").iterdir()):
            if self.how == "delete":
                path.unlink()
            elif self.how == "truncate":
                path.write_bytes(path.read_bytes()[:40])
            else:  # replaced by another picture
                Image.new("L", (20, 20), 99).save(path)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["delete", "truncate", "replace"])
def test_a_file_damaged_mid_epoch_ends_the_run_in_one_line_and_resume_finishes_it(tmp_path, how):
    from cnnlab.data.streaming import StreamError
    from cnnlab.run.train import train_run
    from cnnlab.train.config import TrainConfig

    root = image_folder(tmp_path / "data", 300)
    backup = {p: p.read_bytes() for p in (root / "c1").iterdir()}
    out = tmp_path / "run"
    cfg = TrainConfig(data=f"folder:{root}", stream=True, epochs=1, batch_size=8, out=str(out), verbose=0, threads=1)
    with pytest.raises(StreamError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_run(cfg, callbacks=[Damage(root, how)], log=lambda *a: None)
    line = str(caught.value)
    assert "\n" not in line and f"{root / 'c1'}" in line and f"cnnlab train --resume {out}` finishes it" in line
    assert (out / "checkpoint.pt").exists()  # the run is kept at its last checkpoint
    for path, data in backup.items():  # the user fixes the data
        path.write_bytes(data)
    proc = run_cli("train", "--resume", out)
    assert proc.returncode == 0 and (out / "metrics.json").exists(), proc.stderr


def _rewrite_later(root: Path, out: Path, done: threading.Event) -> None:
    """Once training has started (the first checkpoint exists), delete the files of class c1."""
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    for path in (root / "c1").iterdir():
        path.unlink()
    done.set()


@pytest.mark.slow
def test_a_file_deleted_mid_epoch_with_nproc_2_is_one_line(tmp_path):
    root = image_folder(tmp_path / "data", 1200)
    out = tmp_path / "run"
    done = threading.Event()
    threading.Thread(target=_rewrite_later, args=(root, out, done), daemon=True).start()
    args = ["--data", f"folder:{root}", "--stream", "--nproc", "2", "--epochs", "20", "--batch-size", "8"]
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", *args, "--out", out, "--verbose", "0", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(CNNLAB_DIST_TIMEOUT="20"),
    )
    assert done.is_set(), "the run ended before the files were deleted"
    line = refused(proc, "deleted while the run was reading", f"cnnlab train --resume {out} --nproc 2` finishes it")
    assert "ChildFailedError" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert line.startswith("cnnlab train: error:")
