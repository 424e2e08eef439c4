"""Stop when the loss stops being a finite number, naming the step; the weights are then not to be kept."""

from __future__ import annotations

import torch

from cnnlab.train.callbacks.base import ORDER_GUARD, Callback


class TerminateOnNaN(Callback):
    """Track the first step whose loss is nan or inf on the device; look at it every `check_every` batches.

    On finding one it stops the run as diverged (`trainer.stop(reason, diverged=True)`, the reason naming the step);
    a Checkpoint then saves nothing more, so the last good checkpoint stays. Its `order` runs it before Checkpoint.
    """

    order = ORDER_GUARD

    def __init__(self, check_every: int = 50) -> None:
        self.check_every = check_every

    def on_train_begin(self, logs: dict) -> None:
        device = self.trainer.device
        self.first_step = torch.full((), -1, dtype=torch.int64, device=device)  # −1: all finite so far
        self.value = torch.zeros((), device=device)
        self.steps_before = self.trainer.step  # optimizer steps done when the next batch's loss is computed

    def on_batch_end(self, batch: int, logs: dict) -> None:
        loss = logs["loss"]
        step = self.steps_before + 1  # the (1-based) optimizer step this batch's loss belongs to
        self.steps_before = self.trainer.step
        new = ~torch.isfinite(loss) & (self.first_step < 0)
        self.first_step = torch.where(new, step, self.first_step)
        self.value = torch.where(new, loss.float(), self.value)
        if (batch + 1) % self.check_every == 0:
            self.check()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.check()

    def check(self) -> bool:
        """Read the tracker (one device sync); stop the run if a non-finite loss was seen."""
        step = int(self.first_step)
        if step < 0:
            return False
        t = self.trainer
        t.stop(
            f"the loss became {float(self.value)} at step {step} "
            f"(epoch {(step - 1) // max(t.updates_per_epoch, 1) + 1}, lr {t.last_lr:g})",
            diverged=True,
        )
        return True
