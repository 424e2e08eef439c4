"""Stop when a monitored metric has not improved for `patience` epochs; optionally restore the best weights."""

from __future__ import annotations

import copy

from cnnlab.train.callbacks.base import Callback


class EarlyStopping(Callback):
    """Watch `monitor` (val_loss by default) each epoch; stop after `patience` epochs without an improvement larger
    than `min_delta`, and with `restore_best` put the best epoch's weights back at the end (`restored_epoch` in the
    end logs). Its state (best value, wait, best weights) travels in the resume checkpoint.
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, restore_best: bool = True
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.sign = -1.0 if "loss" in monitor else 1.0  # losses improve downwards, accuracies upwards

    def on_train_begin(self, logs: dict) -> None:
        self.best = None
        self.best_epoch = -1
        self.best_state = None
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"early stopping monitors '{self.monitor}', which this run does not log "
                f"(logged: {', '.join(logs)}); validation data is needed for val_* metrics"
            )
        value = self.sign * logs[self.monitor]
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(self.trainer.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.trainer.stop_training = True

    def on_train_end(self, logs: dict) -> None:
        if self.restore_best and self.best_state is not None and self.best_epoch != self.trainer.epoch:
            self.trainer.model.load_state_dict(self.best_state)
            logs["restored_epoch"] = self.best_epoch + 1

    def state_dict(self) -> dict:
        if self.best is None:
            return {}
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_state = state["best_state"]
