"""Keras-style progress: a bar redrawn in place on a terminal; periodic lines with a whole-run ETA otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from cnnlab.train.callbacks.base import ORDER_REPORT, Callback


def fmt_time(seconds: float) -> str:
    """'42s', '4:05', '1:02:03'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


class ProgressBar(Callback):
    """`Epoch 3/10` then `312/430 [=====>....] - ETA 4s (run 2:10) - loss: 0.41 - accuracy: 0.85 - 2,310 samples/s`.

    On a terminal the bar redraws at most `refresh` times a second (each redraw syncs with the device). When the
    stream is not a terminal (CI, `| tee`, a log file), a plain line is written every `every` seconds and at each
    epoch's end, so a long epoch is never silent. The run ETA counts the optimizer steps still planned for the
    whole run (`trainer.total_steps`) at the rate measured so far. verbose=0 silences it.
    """

    order = ORDER_REPORT

    def __init__(
        self,
        stream: TextIO | None = None,
        verbose: int = 1,
        refresh: float = 0.2,
        width: int = 30,
        every: float = 10.0,
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.refresh = refresh
        self.every = every
        self.width = width
        self.live = verbose > 0 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.mid_line = False

    def on_train_begin(self, logs: dict) -> None:
        self.run_start = time.perf_counter()
        self.run_steps = self.trainer.step  # steps done before this fit (a resumed run)

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.steps = self.trainer.steps_per_epoch
        self.start = self.last = time.perf_counter()
        self.samples = 0
        if self.live:
            self.stream.write(f"Epoch {epoch + 1}/{self.trainer.epochs}\n")

    def run_eta(self) -> float | None:
        """Seconds left in the whole run at the rate of this fit so far (None before the first step)."""
        t = self.trainer
        done = t.step - self.run_steps
        if done <= 0:
            return None
        return (time.perf_counter() - self.run_start) / done * max(t.total_steps - t.step, 0)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.samples += logs.get("batch_size", 0)
        if self.verbose <= 0:
            return
        now = time.perf_counter()
        gap = self.refresh if self.live else self.every
        if now - self.last < gap or batch + 1 == self.steps:  # the epoch's last batch: its end line follows
            return
        self.last = now
        done = batch + 1
        elapsed = now - self.start
        eta = elapsed / done * (self.steps - done)
        run = self.trainer.running_logs()
        run_eta = self.run_eta()
        whole = f" (run {fmt_time(run_eta)})" if run_eta is not None else ""
        metrics = " - ".join(f"{k}: {v:.4f}" for k, v in run.items())  # loss, then the task's: accuracy, …
        stats = f"ETA {fmt_time(eta)}{whole} - {metrics} - {self.samples / elapsed:,.0f} samples/s"
        if self.live:
            filled = int(self.width * done / max(self.steps, 1))
            bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") + "." * (self.width - filled)
            self.stream.write(f"\r{done:>{len(str(self.steps))}}/{self.steps} [{bar}] - {stats}")
            self.mid_line = True
        else:
            epoch = self.trainer.epoch + 2
            self.stream.write(f"epoch {epoch}/{self.trainer.epochs} step {done}/{self.steps} - {stats}\n")
        self.stream.flush()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.verbose <= 0:
            return
        names = ("loss", *getattr(self.trainer, "metric_names", ("accuracy",)))
        parts = [f"{fmt_time(logs['seconds'])}", *(f"{k}: {logs[k]:.4f}" for k in names)]
        if "val_loss" in logs:
            parts += [f"val_{k}: {logs[f'val_{k}']:.4f}" for k in names]
        parts.append(f"{logs['samples_per_s']:,.0f} samples/s")
        run_eta = self.run_eta()
        if run_eta is not None and self.trainer.total_steps > self.trainer.step:
            parts.append(f"run ETA {fmt_time(run_eta)}")
        line = " - ".join(parts)
        if self.live:
            bar = "=" * self.width
            self.stream.write(f"\r{self.steps}/{self.steps} [{bar}] - {line}\033[K\n")
        else:
            self.stream.write(f"epoch {epoch + 1}/{self.trainer.epochs} - {line}\n")
        self.stream.flush()
        self.mid_line = False

    def on_train_end(self, logs: dict) -> None:
        if self.mid_line:  # stopped mid-epoch: end the bar's line before others print
            self.stream.write("\n")
            self.stream.flush()
            self.mid_line = False
