"""LR scheduling: sets every parameter group's LR from a schedule each step or each epoch, plus reduce-on-plateau."""

from __future__ import annotations

from cnnlab.train.callbacks.base import ORDER_SCHEDULE, Callback
from cnnlab.train.monitor import Monitor
from cnnlab.train.schedules import SCHEDULES, UNITS, make_schedule


class LRScheduler(Callback):
    """LR = the group's initial LR × schedule(k) × plateau scale, k counting optimizer steps or finished epochs.

    name, warmup and the keyword arguments are those of `schedules.make_schedule`; the schedule's length is the
    run's (epochs × steps per epoch, or epochs), known when training begins. 'plateau' multiplies the LR by `gamma`
    after `patience` epochs without `monitor` (val_loss, falling back to loss) improving by more than `min_delta`.
    The LR of the last step of each epoch is the history's `lr` column.
    """

    order = ORDER_SCHEDULE

    def __init__(
        self,
        name: str = "constant",
        unit: str = "step",
        warmup: int = 0,
        patience: int = 2,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        **schedule_kw,
    ) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule '{name}'; choose from {', '.join(SCHEDULES)}")
        if unit not in UNITS:
            raise ValueError(f"unknown schedule unit '{unit}'; choose from {', '.join(UNITS)}")
        self.name, self.unit, self.warmup = name, unit, warmup
        self.patience = patience
        self.monitor = Monitor(monitor, min_delta=min_delta, fallback="loss")
        self.schedule_kw = schedule_kw
        self.scale, self.wait = 1.0, 0

    def on_train_begin(self, logs: dict) -> None:
        t = self.trainer
        self._build(t.total_steps)
        for group in t.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.scale, self.wait = 1.0, 0
        self.monitor.reset()
        self.applied_k = -1

    def _build(self, total_steps: int) -> None:
        """The schedule laid out over the run's length (optimizer steps, or the epochs they span)."""
        t = self.trainer
        total = total_steps if self.unit == "step" else -(-total_steps // max(t.updates_per_epoch, 1))
        self.schedule = make_schedule(self.name, max(total, 1), self.warmup, **self.schedule_kw)

    def on_plan(self, total_steps: int) -> None:
        self._build(total_steps)  # e.g. a time budget fixed the run's length: one-cycle, cosine, linear re-lay
        self.applied_k = -1  # apply the re-laid schedule at the next batch end

    def _apply(self) -> None:
        t = self.trainer
        k = t.step if self.unit == "step" else t.epoch + 1
        factor = self.schedule(k) * self.scale
        for group in t.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        self.applied_k = k

    def lr_at(self, k: int) -> float:
        """The first group's LR at unit k (without plateau reductions still to come)."""
        return self.trainer.optimizer.param_groups[0]["initial_lr"] * self.schedule(k) * self.scale

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self._apply()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.unit == "step" and self.trainer.step != self.applied_k:
            self._apply()  # the LR of the next step (a Python float per group: no device work)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.name != "plateau":
            return
        if self.monitor.update(logs):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.scale *= self.schedule_kw.get("gamma", 0.1)
            self.wait = 0

    def state_dict(self) -> dict:
        if self.name != "plateau":
            return {}
        return {"scale": self.scale, "wait": self.wait, **self.monitor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.wait = state["scale"], state["wait"]
        self.monitor.load_state_dict(state)
