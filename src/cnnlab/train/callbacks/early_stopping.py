"""Stop when a monitored metric has not improved for `patience` epochs; optionally restore the best weights."""

from __future__ import annotations

import copy

from cnnlab.train.callbacks.base import ORDER_STOPPER, Callback
from cnnlab.train.monitor import Monitor


class EarlyStopping(Callback):
    """Watch `monitor` (val_loss by default) each epoch; stop after `patience` epochs without an improvement larger
    than `min_delta`, and with `restore_best` put the best epoch's weights back at the end (`restored_epoch` in the
    end logs). mode: min / max / auto (from the name: accuracies rise, losses fall). Its state (best value, wait,
    best weights) travels in the resume checkpoint.
    """

    order = ORDER_STOPPER

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best: bool = True,
        mode: str = "auto",
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be ≥ 1 epochs, got {patience}")
        self.monitor = Monitor(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best = restore_best

    def on_train_begin(self, logs: dict) -> None:
        self.monitor.reset()
        self.best_epoch = -1
        self.best_state = None
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.monitor.update(logs):
            self.best_epoch, self.wait = epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(self.trainer.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.trainer.stop(f"early stopping: {self.monitor.metric} did not improve for {self.patience} epoch(s)")

    def on_train_end(self, logs: dict) -> None:
        if self.restore_best and self.best_state is not None and self.best_epoch != self.trainer.epoch:
            self.trainer.model.load_state_dict(self.best_state)
            logs["restored_epoch"] = self.best_epoch + 1

    def state_dict(self) -> dict:
        if self.monitor.best is None:
            return {}
        return {
            **self.monitor.state_dict(),
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state)
        self.best_epoch, self.wait, self.best_state = state["best_epoch"], state["wait"], state["best_state"]
