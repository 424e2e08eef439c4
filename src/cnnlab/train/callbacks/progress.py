"""Keras-style progress: a bar redrawn in place on a terminal; periodic lines with the run's ETA otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from cnnlab.train.callbacks.base import ORDER_REPORT, Callback


def fmt_time(seconds: float) -> str:
    """'42s', '4:05', '1:02:03'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def plural(n: float, noun: str) -> str:
    """'1 epoch', '1.5 epochs', '1,024 steps' (a regular plural: the noun and an s)."""
    number = f"{n:,}" if isinstance(n, int) else f"{n:,.3g}" if n < 1000 else f"{n:,.0f}"
    return f"{number} {noun}{'' if n == 1 else 's'}"


class Budget(Protocol):
    """What the progress bar shows of a time budget (`TimeBudget`): its length and what is left of it."""

    seconds: float

    def left(self) -> float: ...


class ProgressBar(Callback):
    """Keras-like progress: `Epoch 3/10`, then `312/430 [=====>....] - ETA 2:10 - loss: 0.41 - accuracy: 0.85 -
    2,310 samples/s`.

    On a terminal the bar redraws at most `refresh` times a second (each redraw syncs with the device). When the
    stream is not a terminal (CI, `| tee`, a log file), a plain line is written every `every` seconds and at each
    epoch's end, so a long epoch is never silent. The one ETA on a line is the whole run's: the batches still planned
    (`trainer.total_steps`) at the rate this fit has kept so far, epoch ends included; the bar shows the epoch's.
    budget: a time budget re-plans the run's length as it measures it; its epochs are then shown without a total
    that moves (`epoch 2 (budget 3:00, 1:12 left)`). metrics: the running logs to show (default: the loss and the
    task's metrics); lr: show the learning rate too. clock: seconds (time.perf_counter). verbose=0 silences it.
    """

    order = ORDER_REPORT

    def __init__(
        self,
        stream: TextIO | None = None,
        verbose: int = 1,
        refresh: float = 0.2,
        width: int = 30,
        every: float = 10.0,
        budget: Budget | None = None,
        metrics: tuple[str, ...] | None = None,
        lr: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.refresh = refresh
        self.every = every
        self.width = width
        self.budget, self.metrics, self.lr = budget, metrics, lr
        self.clock = clock or time.perf_counter
        self.live = verbose > 0 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.mid_line = False

    def on_train_begin(self, logs: dict) -> None:
        self.run_start = self.clock()
        self.run_batches = 0  # batches done by this fit (a resumed run's earlier ones are not timed here)

    def epoch_label(self, epoch: int) -> str:
        """'epoch 3/10'; under a time budget 'epoch 3 (budget 3:00, 1:12 left)'."""
        if self.budget is None:
            return f"epoch {epoch + 1}/{self.trainer.epochs}"
        left = max(self.budget.left(), 0.0)
        return f"epoch {epoch + 1} (budget {fmt_time(self.budget.seconds)}, {fmt_time(left)} left)"

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.epoch = epoch
        self.steps = self.trainer.steps_per_epoch
        self.start = self.last = self.clock()
        self.samples = 0
        if self.live:
            label = self.epoch_label(epoch)
            self.stream.write(f"{label[0].upper()}{label[1:]}\n")

    def run_eta(self) -> float | None:
        """Seconds left in the whole run at the rate of this fit so far (None before its first batch)."""
        t = self.trainer
        if self.run_batches <= 0 or t.updates_per_epoch <= 0:
            return None
        left = max(t.total_steps - t.step, 0) * t.steps_per_epoch / t.updates_per_epoch  # batches still planned
        return (self.clock() - self.run_start) / self.run_batches * left

    def _shown(self, logs: dict) -> list[str]:
        """'loss: 0.4100', 'accuracy: 0.8500', … of `logs` (the metrics asked for), then the LR if asked."""
        names = self.metrics or ("loss", *getattr(self.trainer, "metric_names", ("accuracy",)))
        parts = [f"{k}: {logs[k]:.4f}" for k in names]
        if "val_loss" in logs:
            parts += [f"val_{k}: {logs[f'val_{k}']:.4f}" for k in names if f"val_{k}" in logs]
        if self.lr:
            parts.append(f"lr: {self.trainer.last_lr:.3g}")
        return parts

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.samples += logs.get("batch_size", 0)
        self.run_batches += 1
        if self.verbose <= 0:
            return
        now = self.clock()
        gap = self.refresh if self.live else self.every
        if now - self.last < gap or batch + 1 == self.steps:  # the epoch's last batch: its end line follows
            return
        self.last = now
        done = batch + 1
        run_eta = self.run_eta()
        eta = [f"ETA {fmt_time(run_eta)}"] if run_eta is not None else []
        rate = f"{self.samples / max(now - self.start, 1e-9):,.0f} samples/s"
        stats = " - ".join([*eta, *self._shown(self.trainer.running_logs()), rate])
        if self.live:
            filled = int(self.width * done / max(self.steps, 1))
            bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") + "." * (self.width - filled)
            self.stream.write(f"\r{done:>{len(str(self.steps))}}/{self.steps} [{bar}] - {stats}\033[K")
            self.mid_line = True
        else:
            self.stream.write(f"{self.epoch_label(self.epoch)} step {done}/{self.steps} - {stats}\n")
        self.stream.flush()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.verbose <= 0:
            return
        parts = [fmt_time(logs["seconds"]), *self._shown(logs), f"{logs['samples_per_s']:,.0f} samples/s"]
        run_eta = self.run_eta()
        if run_eta is not None and self.trainer.total_steps > self.trainer.step:
            parts.append(f"ETA {fmt_time(run_eta)}")
        line = " - ".join(parts)
        if self.live:
            bar = "=" * self.width
            self.stream.write(f"\r{self.steps}/{self.steps} [{bar}] - {line}\033[K\n")
        else:
            self.stream.write(f"{self.epoch_label(epoch)} - {line}\n")
        self.stream.flush()
        self.mid_line = False

    def on_train_end(self, logs: dict) -> None:
        if self.mid_line:  # stopped mid-epoch: end the bar's line before others print
            self.stream.write("\n")
            self.stream.flush()
            self.mid_line = False
