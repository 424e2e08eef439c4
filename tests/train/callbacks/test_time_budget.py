"""--time-budget on a fake clock: planning, re-planning, the hard stop at the deadline, "whichever ends first" and
the LR schedule reaching its end, checked to the step whatever the machine's load.

Every test gives each training step a known duration of fake time (`FakeTime`): the budget's clock, its step timer
and its inference rate all read it, so nothing here depends on how fast this machine runs today.
"""

import csv
import json
import re
import time

import pytest
import torch

from cnnlab.train.callbacks import Callback, LRScheduler
from cnnlab.train.callbacks.time_budget import MAX_REPLANS, SAFETY, TimeBudget, time_inference
from cnnlab.train.schedules import make_schedule
from tests.conftest import write_fake_idx
from tests.helpers import run_cli
from tests.train.helpers import loaders, make_trainer

STEP_S = 0.01  # every training step "takes" 10 ms
PER_SAMPLE_S = 1e-3  # inference 1 ms per sample
EPOCH_END_S = 0.05  # an epoch end (no validation here: the checkpoint and CSV row) what the budget reserves for it
POST_S = 0.2  # kept for saving and plotting at the end
BUDGET, RESERVE = 1.5, 0.3  # seconds; kept for the end once measured: 100 test samples × 1 ms + POST_S


class FakeTime:
    """Fake seconds since the job started. The budget reads its step timer once per batch end: each read is the end
    of one more batch, which took `step_s(batches so far)` (10 ms unless a test slows the machine down); each epoch
    end takes EPOCH_END_S (`EpochEnds`)."""

    def __init__(self, step_s=lambda batch: STEP_S, start: float = 0.0):
        self.now, self.batches, self.step_s = start, 0, step_s

    def clock(self) -> float:
        return self.now

    def step_clock(self) -> float:
        self.now += self.step_s(self.batches)
        self.batches += 1
        return self.now


class EpochEnds(Callback):
    def __init__(self, fake: FakeTime):
        self.fake = fake

    def on_epoch_end(self, epoch, logs):
        self.fake.now += EPOCH_END_S


class Spy(Callback):
    """The plans the trainer heard (step, total steps) and the LR of every step, as the optimizer used it."""

    order = 95

    def __init__(self):
        self.lrs, self.plans = [], []

    def on_plan(self, total_steps):
        self.plans.append((self.trainer.step, total_steps))

    def on_batch_end(self, batch, logs):
        self.lrs.append(self.trainer.last_lr)


def _budget(fake: FakeTime, seconds: float = BUDGET, **kw) -> TimeBudget:
    kw = {"post_samples": 100, "post_seconds": POST_S, **kw}
    return TimeBudget(
        seconds,
        fake.clock,
        probe=torch.zeros(32, 1, 28, 28),
        step_clock=fake.step_clock,
        inference_timer=lambda trainer, probe: PER_SAMPLE_S,
        **kw,
    )


def _fit(fake: FakeTime, budget: TimeBudget, epochs: int) -> tuple:
    """Train a linear classifier (SGD at 0.05, one-cycle over the run) on 320 toy images, batch 32: 10 steps an
    epoch, each as cheap as a real step gets (the fake clock, not the model, says how long it took)."""
    spy = Spy()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    callbacks = [budget, LRScheduler("onecycle", "step"), EpochEnds(fake), spy]
    trainer = make_trainer(callbacks, lr=0.05, optimizer="sgd", model=model)
    trainer.fit(loaders(320)[0], epochs)
    return trainer, spy


def _steps(line: str) -> int:
    return int(line.split(": ")[1].split()[0].replace(",", ""))


def test_the_plan_is_the_steps_that_fit_and_the_run_stops_there():
    fake, lines = FakeTime(), []
    budget = _budget(fake, log=lines.append)
    trainer, spy = _fit(fake, budget, epochs=100)
    plan = budget.plan
    # measured once 0.3 s of steps were timed: 30 timed steps (the first step of each epoch is not timed) = step 34
    assert spy.plans[0] == (34, _steps(lines[0])) and plan["step_ms"] == round(STEP_S / SAFETY * 1e3, 3)
    assert plan["inference_samples_per_s"] == 1 / PER_SAMPLE_S and plan["reserved_s"] == RESERVE
    assert plan["ended_by"] == "budget" and plan["replans"] == MAX_REPLANS  # measured again, 3 times
    assert lines[0].startswith(f"time budget {BUDGET:g} s: ") and "the budget ends first" in lines[0]
    # a steady rate: the re-plans only take back part of the 3 % safety margin
    assert all(abs(total - spy.plans[0][1]) <= 0.05 * total for _, total in spy.plans)
    assert trainer.step == plan["steps"] and trainer.stop_reason.endswith(
        f"the {plan['steps']:,} planned steps are done"
    )
    # the plan fills the budget: after the last step, what is left is the reserve, to the safety margin (and an
    # epoch end and a step of rounding)
    assert BUDGET - (1 - SAFETY) * BUDGET - EPOCH_END_S - STEP_S <= fake.now + plan["reserved_s"] <= BUDGET
    # one-cycle laid out over exactly the planned steps: the last step ran at the schedule's end
    schedule = make_schedule("onecycle", total=plan["steps"])
    assert len(spy.lrs) == plan["steps"] and spy.lrs[-1] == pytest.approx(0.05 * schedule(plan["steps"] - 1))
    assert spy.lrs[-1] == pytest.approx(0.05 / 25 / 1e4, rel=0.05)


def test_a_slower_machine_is_replanned_and_the_schedule_follows():
    # 10 ms a step until batch 40, then 20 ms: the re-plans see it and shorten the run
    fake, lines = FakeTime(step_s=lambda batch: STEP_S if batch < 40 else 2 * STEP_S), []
    budget = _budget(fake, log=lines.append)
    trainer, spy = _fit(fake, budget, epochs=100)
    plan = budget.plan
    # measured again twice (a third time would be 8 steps on, past the shortened run's end)
    assert plan["replans"] == 2 and plan["steps"] < spy.plans[0][1] and "measured since step 34" in lines[1]
    assert plan["step_ms"] == round(2 * STEP_S / SAFETY * 1e3, 3)  # the last re-plan saw 20 ms steps only
    assert trainer.step == plan["steps"] and "planned steps are done" in trainer.stop_reason
    assert fake.now + plan["reserved_s"] <= BUDGET  # the budget is kept
    schedule = make_schedule("onecycle", total=plan["steps"])
    assert spy.lrs[-1] == pytest.approx(0.05 * schedule(plan["steps"] - 1))


class Validation(Callback):
    """Each epoch end a validation pass of `n` samples at the probe's 1 ms a sample: the fake clock moves on."""

    def __init__(self, fake: FakeTime, n: int):
        self.fake, self.n = fake, n

    def on_epoch_end(self, epoch, logs):
        self.fake.now += self.n * PER_SAMPLE_S


def test_the_plan_fills_the_budget_when_epoch_ends_cost_as_much_as_the_epochs():
    # 10 steps of 10 ms an epoch, then a 50 ms validation and the 50 ms epoch end: the plan counts both (an earlier
    # fixed-point count swung between "no epoch end" and "all of them" and planned 54 steps, half the budget)
    fake = FakeTime()
    budget = _budget(fake, 3.0, val_samples=50)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    callbacks = [budget, LRScheduler("onecycle", "step"), EpochEnds(fake), Validation(fake, 50)]
    trainer = make_trainer(callbacks, lr=0.05, optimizer="sgd", model=model)
    trainer.fit(loaders(320)[0], 100)
    plan = budget.plan
    assert plan["replans"] == MAX_REPLANS and trainer.step == plan["steps"]
    # the run ends within the budget, short of it by the safety margin, an epoch end with its validation and a step
    assert 3.0 - (1 - SAFETY) * 3.0 - EPOCH_END_S - 0.05 - STEP_S <= fake.now + plan["reserved_s"] <= 3.0


def test_the_hard_stop_keeps_the_deadline_when_the_machine_stalls():
    # planned at 10 ms a step; from batch 40 on a step takes a whole second, before a re-plan could notice
    fake = FakeTime(step_s=lambda batch: STEP_S if batch < 40 else 1.0)
    budget = _budget(fake)
    trainer, _ = _fit(fake, budget, epochs=100)
    plan = budget.plan
    assert trainer.step < plan["steps"] and plan["replans"] == 0
    reason = (
        f"time budget of {BUDGET:g} s: stopped at step {trainer.step:,} to leave {RESERVE} s for the final evaluation"
    )
    assert trainer.stop_reason == reason
    # it stopped at the first step that crossed the deadline (the budget less the reserve), not one step later
    assert fake.now >= BUDGET - RESERVE > fake.now - 1.0


def test_epochs_end_first_when_the_budget_is_larger():
    fake, lines = FakeTime(), []
    budget = _budget(fake, 600.0, log=lines.append)
    trainer, spy = _fit(fake, budget, epochs=5)  # 50 steps, planned at step 34: 600 s would allow thousands
    assert budget.plan["ended_by"] == "epochs" and budget.plan["steps"] == 50 == trainer.step
    assert len(trainer.history) == 5 and trainer.partial is None  # the last epoch ended as epochs do
    assert "--epochs ends first (50 steps)" in lines[0]
    assert spy.lrs[-1] == pytest.approx(0.05 * make_schedule("onecycle", total=50)(49))


def test_epochs_end_first_before_the_rate_is_measured():
    fake, lines = FakeTime(), []
    budget = _budget(fake, 600.0, log=lines.append)
    trainer, _ = _fit(fake, budget, epochs=2)  # 18 timed steps: 0.18 s of fake time, too few to measure
    assert budget.plan == {"budget_s": 600.0, "steps": 20, "epochs": 2.0, "ended_by": "epochs"}
    assert trainer.step == 20 and lines == ["time budget 600 s: --epochs ends first (20 steps)"]


def test_the_budget_ends_first_before_the_rate_is_measured():
    # start-up took all but 5 ms of what the budget leaves before its reserve (until measured: POST_S only)
    fake, lines = FakeTime(start=BUDGET - POST_S - 0.005), []
    budget = _budget(fake, log=lines.append)
    trainer, _ = _fit(fake, budget, epochs=5)
    assert trainer.step == 1 and budget.plan["ended_by"] == "budget"  # the first step crossed the deadline
    assert "used up after 1 step(s), before the training rate could be measured" in lines[0]


def test_a_first_estimate_lays_the_run_out_from_the_first_step():
    fake = FakeTime()
    trainer, spy = _fit(fake, _budget(fake, estimate_step_s=STEP_S), epochs=100)
    assert spy.plans[0][0] == 0 and spy.plans[1][0] == 34  # provisional at step 0, measured at step 34
    # the estimate (no safety margin, inference guessed at a third of a step's time per sample: 0.1 ms here, where
    # this fake machine's 1 ms reserves 0.09 s more, 9 steps) planned more steps than the measured plan, by those
    assert 0 < spy.plans[0][1] - spy.plans[1][1] <= 9 + 3


def test_the_default_timers_measure_this_machine():
    budget = TimeBudget(5.0, lambda: 0.0, probe=torch.zeros(4, 1, 28, 28))
    assert budget.inference_timer is time_inference and budget.step_clock is time.perf_counter
    assert time_inference(make_trainer(), torch.zeros(4, 1, 28, 28)) > 0


@pytest.fixture(scope="module")
def budget_data(tmp_path_factory):
    return write_fake_idx(tmp_path_factory.mktemp("budget-data"), n_train=1000, n_test=200)


@pytest.mark.slow
def test_time_budget_through_the_cli(budget_data, tmp_path, monkeypatch):
    """`cnnlab train --time-budget` end to end on fake time (each step 10 ms, inference 0.1 ms a sample): it finishes,
    writes its plan, stops at the planned step, and the one-cycle schedule's last LR is its end."""
    from cnnlab.run import setup

    fake = FakeTime()

    def fake_timed(seconds, clock, **kw):  # the run's own budget (its probe, reserves), on fake time
        return TimeBudget(
            seconds, fake.clock, **kw, step_clock=fake.step_clock, inference_timer=lambda trainer, probe: 1e-4
        )

    monkeypatch.setattr(setup, "TimeBudget", fake_timed)
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "--data-dir",
        budget_data,
        "--model",
        "lenet5",
        "--time-budget",
        "3s",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--schedule",
        "onecycle",
        "--precision",
        "fp32",
        "--out",
        out,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    plan = metrics["time_budget"]
    assert plan["steps"] == metrics["steps"] and plan["ended_by"] == "budget", proc.stdout  # the planned step
    assert f"time budget 3 s: {plan['steps']:,} steps" in proc.stdout and "planned steps are done" in proc.stdout
    assert plan["step_ms"] == round(STEP_S / SAFETY * 1e3, 3) and plan["inference_samples_per_s"] == 1e4
    # the progress lines name each epoch with the budget, never a total that the re-plans would move
    assert re.search(r"^epoch 1 \(budget 3s, \d+s left\) - ", proc.stdout, re.M), proc.stdout
    assert not re.search(r"^epoch \d+/", proc.stdout, re.M)
    rows = list(csv.DictReader(open(out / "history.csv")))
    # one-cycle laid out over the planned steps: the last step's LR is the schedule's end, lr / 25 / 1e4
    end = 0.05 * make_schedule("onecycle", total=plan["steps"])(plan["steps"] - 1)
    assert float(rows[-1]["lr"]) == pytest.approx(end, rel=1e-6)
    assert float(rows[-1]["lr"]) == pytest.approx(0.05 / 25 / 1e4, rel=0.05)


@pytest.mark.slow
def test_epochs_and_budget_whichever_ends_first(fake_idx, tmp_path, monkeypatch):
    """Through the whole run (train_run): --epochs 1 ends a 10-minute budget's run, and says so. The budget's clock
    starts with this run (not with the test process, which may have run for minutes)."""
    from cnnlab.run import setup
    from cnnlab.run.train import train_run
    from cnnlab.train.config import TrainConfig

    monkeypatch.setattr(setup, "process_seconds", lambda: 0.0)  # the job "has just started", all run long
    cfg = TrainConfig(data_dir=str(fake_idx), model="lenet5", epochs=1, time_budget="10m", precision="fp32", verbose=0)
    cfg.out = str(tmp_path / "run")
    lines = []
    result = train_run(cfg, log=lines.append)
    assert result.metrics["time_budget"]["ended_by"] == "epochs" and result.metrics["epochs"] == 1
    assert any("--epochs ends first" in line for line in lines)
