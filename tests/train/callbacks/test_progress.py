"""The progress bar on an injected clock: periodic lines with one ETA (the whole run's) when stdout is not a
terminal, a time budget's epochs without a moving total, the LR range test's loss and LR only."""

import io
import re

from cnnlab.train.callbacks import Callback, ProgressBar
from tests.train.helpers import loaders, make_trainer


class Clock(Callback):
    """Fake seconds: every batch takes 4 s (ticked before the progress bar hears of the batch's end)."""

    order = 0

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def on_batch_end(self, batch, logs):
        self.now += 4.0


class FixedBudget:
    seconds = 180.0

    def __init__(self, clock):
        self.clock = clock

    def left(self):
        return self.seconds - self.clock()


def _lines(epochs=2, budget=False, **kw) -> list[str]:
    clock = Clock()
    stream = io.StringIO()
    if budget:
        kw["budget"] = FixedBudget(clock)
    train, _ = loaders(320)  # 10 batches an epoch
    trainer = make_trainer([clock, ProgressBar(stream=stream, every=10, clock=clock, **kw)])
    trainer.fit(train, epochs)
    return stream.getvalue().splitlines()


def test_progress_lines_carry_one_eta_the_whole_runs():
    lines = _lines()
    periodic = [line for line in lines if " step " in line]
    assert periodic and all(line.count("ETA") == 1 and "(run " not in line for line in periodic)
    assert all("samples/s" in line for line in periodic)
    # 4 s a batch, 20 batches in the run: after 3 batches 17 are left, 68 s
    assert periodic[0].startswith("epoch 1/2 step 3/10 - ETA 1:08 - loss: ")
    assert sum(line.startswith("epoch 2/2 - ") for line in lines) == 1  # each epoch still ends with its line
    first_end = next(line for line in lines if line.startswith("epoch 1/2 - "))
    assert first_end.endswith(" - ETA 40s")  # 10 batches left at 4 s


def test_a_time_budget_shows_its_epochs_without_a_total():
    lines = _lines(budget=True)
    assert lines and all(re.match(r"epoch \d \(budget 3:00, \d+:\d\d left\)", line) for line in lines)
    assert not any(re.search(r"epoch \d/", line) for line in lines)
    assert lines[-1].startswith("epoch 2 (budget 3:00, 1:40 left) - ")  # 20 batches of 4 s spent


def test_loss_and_lr_only_when_asked():
    lines = _lines(epochs=1, metrics=("loss",), lr=True)
    assert lines and all("accuracy" not in line and "lr: " in line and "loss: " in line for line in lines)
