"""A time budget for training: stop cleanly (at the next optimizer step) once it is spent."""

from __future__ import annotations

import re
import time

from cnnlab.train.callbacks.base import ORDER_STOPPER, Callback

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """'90', '90s', '1.5m', '2h' → seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", str(text).lower())
        if not match:
            raise ValueError(f"time limit '{text}' not understood; use seconds or a unit, e.g. 90, 60s, 5m, 1.5h")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or ""]
    if seconds <= 0:
        raise ValueError(f"time limit must be > 0, got '{text}'")
    return seconds


class TimeLimit(Callback):
    """Stop training `seconds` after it began (checked after each batch with the wall clock: no device sync)."""

    order = ORDER_STOPPER

    def __init__(self, seconds: float | str) -> None:
        self.seconds = parse_duration(seconds)

    def on_train_begin(self, logs: dict) -> None:
        self.start = time.perf_counter()

    def _check(self) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed >= self.seconds and not self.trainer.stop_training:
            self.trainer.stop(f"time limit of {self.seconds:g} s reached after {elapsed:.1f} s")

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self._check()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._check()
