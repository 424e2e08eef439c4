"""A whole run (cnnlab.run: setup, train): the thread choice and its start-up line, honest partial runs, and starts
or stops that leave nothing behind. (To move into tests/run/, with that package's other tests.)"""

import csv
import json
import re

import pytest
import torch

from cnnlab.io import load_checkpoint
from cnnlab.run.train import train_run
from cnnlab.runtime import cpu_isa, thread_candidates
from cnnlab.train.callbacks import Callback
from cnnlab.train.config import TrainConfig


@pytest.mark.slow
def test_explicit_threads_and_startup_line(fake_idx, tmp_path):
    """One short start-up line; why that precision and thread count is in metrics.json and, with --verbose 2,
    printed in full below it."""
    before = torch.get_num_threads()
    runs = {}
    try:
        for verbose in (1, 2):
            lines, out = [], tmp_path / f"run{verbose}"
            cfg = TrainConfig(
                data_dir=str(fake_idx), epochs=1, threads=1, precision="fp32", verbose=verbose, out=str(out)
            )
            train_run(cfg, log=lines.append)
            runs[verbose] = lines, json.loads((out / "metrics.json").read_text())
    finally:
        torch.set_num_threads(before)
    lines, metrics = runs[1]
    start = next(line for line in lines if line.startswith("model:"))
    assert len(start) <= 120 and start.startswith("model: lenet5 (") and ", fp32, 1 thread (why: --verbose 2)" in start
    assert not any(line.startswith("  ") for line in lines)
    assert (
        metrics["startup"]["precision"] == "fp32: asked for"
        and metrics["startup"]["threads"] == "threads 1 (asked for)"
    )
    assert metrics["startup"]["cpu_isa"]
    lines, _ = runs[2]
    at = next(i for i, line in enumerate(lines) if line.startswith("model:"))
    assert lines[at + 1 : at + 4] == [
        "  precision fp32: asked for",
        "  threads 1 (asked for)",
        f"  CPU ISA {cpu_isa()}",
    ]


@pytest.mark.slow
def test_the_thread_choice_is_measured_between_one_per_core_and_one(fake_idx, tmp_path, default_threads):
    cfg = TrainConfig(data_dir=str(fake_idx), epochs=1, precision="fp32", verbose=0, out=str(tmp_path / "run"))
    train_run(cfg, log=lambda line: None)
    chosen = json.loads((tmp_path / "run" / "metrics.json").read_text())["startup"]["threads"]
    # either count may win on a given machine and load; every candidate was timed, and the record says which won
    counts = thread_candidates()
    if len(counts) == 1:
        pytest.skip("one core: nothing to choose between")
    took = ", ".join(rf"[\d.]+ ms with {n}" for n in counts)
    assert re.search(rf"threads \d+ \(measured: a training step took {took}\)", chosen), chosen


@pytest.mark.slow
def test_a_stop_mid_epoch_writes_its_fractional_row(fake_idx, tmp_path):
    class StopAt(Callback):
        def on_batch_end(self, batch, logs):
            if self.trainer.epoch == 0 and batch == 4:  # the 5th batch of the 2nd epoch
                self.trainer.stop("enough")

    cfg = TrainConfig(
        data_dir=str(fake_idx),
        epochs=3,
        batch_size=32,
        precision="fp32",
        verbose=0,
        val_split=100,
        out=str(tmp_path / "run"),
    )
    result = train_run(cfg, callbacks=[StopAt()], log=lambda s: None)
    rows = list(csv.DictReader(open(result.out / "history.csv")))
    steps_per_epoch = -(-500 // 32)
    assert [float(r["epoch"]) for r in rows] == [1, pytest.approx(1 + 5 / steps_per_epoch, abs=1e-3)]
    assert rows[-1]["val_loss"] == "" and float(rows[-1]["samples_per_s"]) > 0
    m = result.metrics
    assert m["epochs"] == pytest.approx(1 + 5 / steps_per_epoch, abs=1e-3) and m["steps"] == steps_per_epoch + 5
    assert m["samples_per_s"] > 0 and (result.out / "curves.png").exists()


def test_ctrl_c_before_the_first_step_saves_nothing(fake_idx, tmp_path):
    class CtrlC(Callback):
        def on_train_begin(self, logs):
            raise KeyboardInterrupt

    cfg = TrainConfig(data_dir=str(fake_idx), epochs=1, verbose=0, out=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, callbacks=[CtrlC()], log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_a_failed_start_leaves_no_folder(tmp_path):
    missing = tmp_path / "nowhere"
    for bad in (
        {"model": "lenet_5"},
        {"device": "cuda:7"} if not torch.cuda.is_available() else {"model": "x"},
        {"data_dir": str(missing), "data": "mnist"},
    ):
        cfg = TrainConfig(**{"out": str(tmp_path / "run"), "verbose": 0, **bad})
        with pytest.raises((ValueError, FileNotFoundError)):
            train_run(cfg, log=lambda s: None)
        assert not (tmp_path / "run").exists(), bad


@pytest.mark.slow
def test_ctrl_c_mid_epoch_says_what_was_kept_and_what_was_trained_in_one_wording(fake_idx, tmp_path):
    class CtrlC(Callback):
        def on_batch_end(self, batch, logs):
            if self.trainer.epoch == 0 and batch == 4:  # the 5th batch of the 2nd epoch
                raise KeyboardInterrupt

    lines = []
    cfg = TrainConfig(
        data_dir=str(fake_idx), epochs=3, batch_size=32, val_split=100, verbose=0, out=str(tmp_path / "run")
    )
    train_run(cfg, callbacks=[CtrlC()], log=lines.append)  # 500 training images: 16 steps an epoch
    assert "interrupted; keeping the weights of the last good checkpoint (1 epoch, 16 steps)" in lines
    took = next(line for line in lines if "training took" in line)
    assert re.search(r"; training took [\d.]+ s for 1\.31 epochs, 21 steps$", took), took


@pytest.mark.slow
def test_a_resumed_run_reports_the_whole_runs_training_time(fake_idx, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(data_dir=str(fake_idx), epochs=1, batch_size=32, val_split=100, verbose=0, out=str(out))
    train_run(cfg, log=lambda line: None)
    earlier = load_checkpoint(out / "checkpoint.pt")["tracked"]["training_time"]["seconds"]
    assert 0 < earlier <= json.loads((out / "metrics.json").read_text())["train_seconds"]
    lines = []
    train_run(TrainConfig(**{**cfg.to_dict(), "epochs": 2}), resume=out, log=lines.append)
    metrics = json.loads((out / "metrics.json").read_text())
    session = metrics["session_train_seconds"]
    assert metrics["resumed"] and metrics["train_seconds"] == pytest.approx(earlier + session, abs=2e-3)
    took = next(line for line in lines if "training took" in line)
    assert re.search(
        rf"training took [\d.]+ s for 2 epochs, 32 steps in all \({session:.1f} s in this session\)$", took
    )


@pytest.mark.slow
def test_a_checkpoint_without_its_training_time_counts_its_epochs(fake_idx, tmp_path):
    """Checkpoints written before the training time was kept: the earlier session is its epochs' own time."""
    out = tmp_path / "run"
    cfg = TrainConfig(data_dir=str(fake_idx), epochs=1, batch_size=32, val_split=100, verbose=0, out=str(out))
    train_run(cfg, log=lambda line: None)
    state = load_checkpoint(out / "checkpoint.pt")
    del state["tracked"]["training_time"]
    torch.save(state, out / "checkpoint.pt")
    train_run(TrainConfig(**{**cfg.to_dict(), "epochs": 2}), resume=out, log=lambda line: None)
    metrics = json.loads((out / "metrics.json").read_text())
    first = float(next(csv.DictReader(open(out / "history.csv")))["seconds"])
    assert metrics["train_seconds"] == pytest.approx(first + metrics["session_train_seconds"], abs=2e-3)
