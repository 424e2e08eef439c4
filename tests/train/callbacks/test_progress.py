"""The progress bar: periodic lines with an ETA when stdout is not a terminal."""

import io

from cnnlab.train.callbacks import ProgressBar
from tests.train.helpers import loaders, make_trainer


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
