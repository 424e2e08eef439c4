"""One answer to "did the monitored metric improve?", shared by early stopping, the best checkpoint and plateau LR."""

from __future__ import annotations

import math

MODES = ("auto", "min", "max")
# metrics that improve upwards; everything else (losses, errors) improves downwards
_HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "precision", "recall", "auc", "iou", "map")


def resolve_mode(metric: str, mode: str = "auto") -> str:
    """'min' or 'max' for `metric`; 'auto' reads the name: accuracies and F1 rise, losses fall."""
    if mode not in MODES:
        raise ValueError(f"unknown monitor mode '{mode}'; choose from {', '.join(MODES)}")
    if mode != "auto":
        return mode
    last = metric.removeprefix("val_").split("_")[-1]
    return "max" if last in _HIGHER_IS_BETTER else "min"


class Monitor:
    """Tracks the best value of one logged metric.

    `update(logs)` returns whether this epoch's value beats the best by more than `min_delta` (a non-finite value
    never does) and keeps it if so. `fallback` is read when the metric is not logged (e.g. 'loss' when a run has no
    validation data); without one, a missing metric is an error naming what is logged.
    """

    def __init__(
        self, metric: str = "val_loss", mode: str = "auto", min_delta: float = 0.0, fallback: str | None = None
    ) -> None:
        if min_delta < 0:
            raise ValueError(f"min_delta must be ≥ 0, got {min_delta}")
        self.metric, self.mode, self.min_delta, self.fallback = metric, resolve_mode(metric, mode), min_delta, fallback
        self.best: float | None = None

    def value(self, logs: dict) -> float | None:
        if self.metric in logs:
            return logs[self.metric]
        if self.fallback is not None:
            return logs.get(self.fallback)
        raise ValueError(
            f"the monitored metric '{self.metric}' is not logged by this run (logged: {', '.join(logs)}); "
            "validation data is needed for val_* metrics"
        )

    def is_better(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, logs: dict) -> bool:
        """Whether `logs` improves on the best so far (and remember it when it does)."""
        value = self.value(logs)
        if not self.is_better(value):
            return False
        self.best = value
        return True

    def reset(self) -> None:
        self.best = None

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
