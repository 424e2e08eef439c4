"""Freeze-then-unfreeze (fastai's fine_tune): part of the model frozen for the first epochs, then all of it trains."""

from __future__ import annotations

from cnnlab.train.callbacks.base import ORDER_SCHEDULE, Callback
from cnnlab.train.transfer import freeze, unfreeze


class FreezeSchedule(Callback):
    """Freeze `spec` (see `transfer.frozen_names`) for epochs 0 … `epochs` − 1, then unfreeze the whole model.

    The backbone's lower LR is not set here: build the optimizer with `transfer.param_groups(…,
    backbone_lr_mult)`, whose groups carry their own LR, which the LR schedule multiplies. Whether the model is
    frozen follows from the trainer's position, so a resumed run freezes exactly when the original run did.
    `epochs` ≥ the run's epochs trains only what is not frozen (head only with "features"); `head` lists the
    parameter names "features" leaves trainable when the head is more than the classifier (`LoadReport.head_names`).
    """

    order = ORDER_SCHEDULE  # before anything that saves: the checkpoint of an epoch sees its final state

    def __init__(self, spec: str | int = "features", epochs: int = 1, log=None, head: list[str] | None = None) -> None:
        if epochs < 0:
            raise ValueError(f"freeze epochs must be ≥ 0, got {epochs}")
        self.spec, self.epochs, self.log, self.head = spec, epochs, log, head
        self.frozen: list[str] = []

    def on_train_begin(self, logs: dict) -> None:
        if self.trainer.epoch + 1 < self.epochs:  # the epoch about to run (a resumed run's too) is a frozen one
            self.frozen = freeze(self.trainer.model, self.spec, self.head)
            if self.log is not None:
                total = sum(1 for _ in self.trainer.model.parameters())
                self.log(
                    f"frozen for {self.epochs} epoch(s): {len(self.frozen)} of {total} parameter tensors ({self.spec})"
                )

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        if self.frozen and epoch >= self.epochs:
            unfreeze(self.trainer.model)
            self.frozen = []
            if self.log is not None:
                self.log(f"epoch {epoch + 1}: the whole model trains from now on")

    def on_train_end(self, logs: dict) -> None:
        if self.frozen:  # head-only run: leave the model trainable for whoever uses it next
            unfreeze(self.trainer.model)
            self.frozen = []
