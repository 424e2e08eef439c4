"""Keras-style progress bar: one line per epoch, redrawn in place on a terminal, a summary line otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from cnnlab.train.callbacks.base import ORDER_REPORT, Callback


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


class ProgressBar(Callback):
    """`Epoch 3/10` then `312/430 [=====>....] - ETA 4s - loss: 0.41 - accuracy: 0.85 - 2,310 samples/s`.

    On a terminal the bar redraws at most `refresh` times a second (each redraw syncs with the device);
    when the stream is not a terminal only the end-of-epoch line is written. verbose=0 silences it.
    """

    order = ORDER_REPORT

    def __init__(self, stream: TextIO | None = None, verbose: int = 1, refresh: float = 0.2, width: int = 30):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.refresh = refresh
        self.width = width
        self.live = verbose > 0 and hasattr(self.stream, "isatty") and self.stream.isatty()

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.steps = self.trainer.steps_per_epoch
        self.start = self.last = time.perf_counter()
        self.samples = 0
        self.epochs = self.trainer.epochs
        if self.live:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.samples += logs.get("batch_size", 0)
        now = time.perf_counter()
        if not self.live or (now - self.last < self.refresh and batch + 1 < self.steps):
            return
        self.last = now
        done = batch + 1
        elapsed = now - self.start
        eta = elapsed / done * (self.steps - done)
        filled = int(self.width * done / max(self.steps, 1))
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") + "." * (self.width - filled)
        run = self.trainer.running_logs()
        text = (f"\r{done:>{len(str(self.steps))}}/{self.steps} [{bar}] - ETA {_fmt_time(eta)} - "
                f"loss: {run['loss']:.4f} - accuracy: {run['accuracy']:.4f} - {self.samples / elapsed:,.0f} samples/s")  # fmt: skip
        self.stream.write(text)
        self.stream.flush()
        self.mid_line = True

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.verbose <= 0:
            return
        parts = [
            f"{_fmt_time(logs['seconds'])}",
            f"loss: {logs['loss']:.4f}",
            f"accuracy: {logs['accuracy']:.4f}",
        ]
        if "val_loss" in logs:
            parts += [f"val_loss: {logs['val_loss']:.4f}", f"val_accuracy: {logs['val_accuracy']:.4f}"]
        parts.append(f"{logs['samples_per_s']:,.0f} samples/s")
        line = " - ".join(parts)
        if self.live:
            bar = "=" * self.width
            self.stream.write(f"\r{self.steps}/{self.steps} [{bar}] - {line}\033[K\n")
        else:
            self.stream.write(f"epoch {epoch + 1}/{self.epochs} - {line}\n")
        self.stream.flush()
        self.mid_line = False

    def on_train_end(self, logs: dict) -> None:
        if getattr(self, "mid_line", False):  # stopped mid-epoch: end the bar's line before others print
            self.stream.write("\n")
            self.stream.flush()
            self.mid_line = False
