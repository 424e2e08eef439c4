"""--time-budget, measured thread choice, honest partial runs, progress lines when stdout is not a terminal."""

import csv
import io
import json
import subprocess
import sys

import pytest
import torch

from cnnlab import runtime
from cnnlab.run.train import train_run
from cnnlab.train.callbacks import Callback, ProgressBar
from cnnlab.train.config import TrainConfig
from tests.conftest import write_fake_idx
from tests.train.helpers import loaders, make_trainer


@pytest.fixture(scope="module")
def budget_data(tmp_path_factory):
    return write_fake_idx(tmp_path_factory.mktemp("budget-data"), n_train=3000, n_test=300)


def test_a_10_s_budget_is_kept_and_the_schedule_reaches_its_end(budget_data, tmp_path):
    # as a user runs it: a new process, wall time from its start (the budget counts start-up too)
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "--data-dir",
        str(budget_data),
        "--model",
        "lenet5",
        "--time-budget",
        "10s",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--schedule",
        "onecycle",
        "--precision",
        "fp32",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    plan = metrics["time_budget"]
    assert plan is not None and plan["steps"] == metrics["steps"], proc.stdout  # stopped at the planned step
    assert "time budget 10 s:" in proc.stdout and "steps" in proc.stdout
    assert metrics["process_seconds"] <= 10.5
    rows = list(csv.DictReader(open(out / "history.csv")))
    # one-cycle laid out over the planned steps: the last step's LR is the schedule's end, lr / 25 / 1e4
    assert float(rows[-1]["lr"]) == pytest.approx(0.05 / 25 / 1e4, rel=0.05)


def test_epochs_and_budget_whichever_ends_first(budget_data, tmp_path):
    cfg = TrainConfig(
        data_dir=str(budget_data),
        model="lenet5",
        epochs=1,
        time_budget="10m",
        precision="fp32",
        verbose=0,
        out=str(tmp_path / "run"),
    )
    lines = []
    result = train_run(cfg, log=lines.append)
    assert result.metrics["time_budget"]["ended_by"] == "epochs" and result.metrics["epochs"] == 1
    assert any("--epochs ends first" in line for line in lines)


def test_recipe_epochs_yield_to_the_budget():
    from cnnlab.cli import build_parser
    from cnnlab.cli.train import _train_values

    args = build_parser().parse_args(["train", "--recipe", "fast", "--time-budget", "30s"])
    assert "epochs" not in _train_values(args)  # the recipe's 2 epochs would end a 30 s run early
    args = build_parser().parse_args(["train", "--recipe", "fast", "--time-budget", "30s", "--epochs", "3"])
    assert _train_values(args)["epochs"] == 3


def test_threads_are_chosen_by_measurement(monkeypatch):
    calls = []

    def step():
        calls.append(torch.get_num_threads())

    before = torch.get_num_threads()
    try:
        # one thread first: 10 ms a step; then two threads: the warm-up step alone takes 1 s (a busy core)
        times = iter([0.0, 0.01, 0.01, 0.02, 0.02, 0.03, 0.03, 0.04, 1.0, 2.0])

        monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(times))
        chosen, measured = runtime.choose_threads(step, [2, 1], reps=3)
        assert chosen == 1 and measured == {1: pytest.approx(0.01), 2: pytest.approx(1.0)}
        assert torch.get_num_threads() == 1 and calls == [1] * 4 + [2]  # the slow count is not timed further
    finally:
        torch.set_num_threads(before)


def test_explicit_threads_and_startup_line(fake_idx, tmp_path):
    before = torch.get_num_threads()
    lines = []
    try:
        cfg = TrainConfig(
            data_dir=str(fake_idx), epochs=1, threads=1, precision="fp32", verbose=0, out=str(tmp_path / "run")
        )
        train_run(cfg, log=lines.append)
    finally:
        torch.set_num_threads(before)
    start = next(line for line in lines if line.startswith("model:"))
    assert "precision fp32: asked for" in start and "threads 1 (asked for)" in start and "CPU ISA" in start


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


def test_progress_lines_when_not_a_terminal(monkeypatch):
    class Clock:
        now = 0.0

        def __call__(self):
            Clock.now += 4.0  # every batch end looks 4 s later
            return Clock.now

    from cnnlab.train.callbacks import progress

    monkeypatch.setattr(progress.time, "perf_counter", Clock())
    stream = io.StringIO()
    train, _ = loaders(320)
    trainer = make_trainer([ProgressBar(stream=stream, every=10)])
    trainer.fit(train, 2)
    lines = stream.getvalue().splitlines()
    periodic = [line for line in lines if " step " in line]
    assert periodic and all("ETA" in line and "(run " in line and "samples/s" in line for line in periodic)
    assert sum(line.startswith("epoch 2/2 - ") for line in lines) == 1  # each epoch still ends with its line
