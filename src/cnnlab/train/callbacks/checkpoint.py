"""Resume checkpoint written atomically at the end of every epoch (model, optimizer, RNG, epoch, step)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.io import save_checkpoint
from cnnlab.train.callbacks.base import Callback


class Checkpoint(Callback):
    """Write `path` after each finished epoch via the trainer's `state_dict()`; a crash leaves the previous one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.saved_epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        save_checkpoint(self.path, self.trainer.state_dict())
        self.saved_epochs = epoch + 1
