"""Checkpoints: the resume state (last) every epoch and every N steps, and the best weights by a monitored metric."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from cnnlab.io import save_checkpoint
from cnnlab.train import distributed
from cnnlab.train.callbacks.base import ORDER_CHECKPOINT, Callback
from cnnlab.train.monitor import Monitor


class Checkpoint(Callback):
    """Write the trainer's `state_dict()` (plus `extra`) atomically to `path`; a crash leaves the previous one.

    When: before the first step (so a run that diverges at once still has good weights), after each epoch, every
    `every_steps` optimizer steps, and at the step where a callback listed before it stopped the run mid-epoch
    (time limit). Never with non-finite weights or after a divergence: the file keeps the last good state.
    Its `order` puts it after the callbacks whose state it saves (early stopping, LR scheduling) and before the
    CSV logger, wherever it is listed.
    best_path: also save the model weights whenever `monitor` (val_loss, falling back to loss) improves; `mode`
        min / max / auto (from the name: accuracies rise, losses fall).
    log: called with one line per save (e.g. print) — None keeps quiet.
    Distributed: it runs on every rank (the trainer's state gathers each rank's streams), rank 0 alone writes.
    """

    order = ORDER_CHECKPOINT

    def __init__(
        self,
        path: str | Path,
        every_steps: int | None = None,
        best_path: str | Path | None = None,
        monitor: str = "val_loss",
        mode: str = "auto",
        extra: dict | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if every_steps is not None and every_steps < 1:
            raise ValueError(f"--checkpoint-every must be ≥ 1 steps, got {every_steps}")
        self.path = Path(path)
        self.every_steps = every_steps
        self.best_path = Path(best_path) if best_path else None
        self.monitor = Monitor(monitor, mode, fallback="loss")
        self.extra = extra or {}
        self.log = log
        self.saved_step = -1
        self.saved_epochs = 0

    def _finite(self) -> bool:
        params = [p.detach() for p in self.trainer.model.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())  # one sync per save

    def save(self) -> bool:
        """Write the resume state now (unless the weights are not finite); returns whether it was written."""
        t = self.trainer
        if not self._finite():
            return False
        state = t.state_dict()  # a collective in a distributed run
        if not distributed.is_main():
            self.saved_step, self.saved_epochs = t.step, t.epoch + 1
            return True
        save_checkpoint(self.path, {**state, **self.extra})
        self.saved_step, self.saved_epochs = t.step, t.epoch + 1
        if self.log:
            if t.batch:
                where = f"epoch {t.epoch + 2} batch {t.batch}/{t.steps_per_epoch}"
            else:
                where = f"end of epoch {t.epoch + 1}" if t.epoch >= 0 else "before the first step"
            self.log(f"checkpoint: {where}, step {t.step} → {self.path}")
        return True

    def on_train_begin(self, logs: dict) -> None:
        self.last_step = self.trainer.step
        if self.trainer.step == 0 and self.trainer.batch == 0:
            self.save()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        t = self.trainer
        stepped, self.last_step = t.step != self.last_step, t.step
        if not stepped or t.diverged or batch + 1 == t.steps_per_epoch:  # the epoch's own save follows its last batch
            return
        # a callback before this one stopped the run mid-epoch (time limit): the Trainer stops after this batch
        if t.stop_training or (self.every_steps and t.step % self.every_steps == 0):
            self.save()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.trainer.diverged:
            return
        if self.best_path is not None and self.monitor.update(logs) and distributed.is_main():
            model = {k: v.detach().cpu() for k, v in self.trainer.model.state_dict().items()}
            save_checkpoint(
                self.best_path,
                {"model": model, "epoch": epoch + 1, "monitor": self.monitor.metric, "value": self.monitor.best},
            )
        self.save()

    def state_dict(self) -> dict:
        return self.monitor.state_dict() if self.monitor.best is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state)
