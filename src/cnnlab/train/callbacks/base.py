"""The Keras-style callback protocol the Trainer calls at each stage of `fit`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.train.trainer import Trainer


class Callback:
    """Override any hook. `self.trainer` is set by the Trainer; set `self.trainer.stop_training = True` to stop.

    `logs` at epoch end holds loss, accuracy, val_loss, val_accuracy, lr, seconds, samples_per_s.
    `on_batch_end` gets only cheap logs (`batch_size`); call `self.trainer.running_logs()` for the running loss
    and accuracy — it synchronises with the device, so call it only when you will show or store the value.
    """

    trainer: Trainer

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...

    def on_batch_end(self, batch: int, logs: dict) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, logs: dict) -> None: ...


class CallbackList(Callback):
    """Calls each callback's hook in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def set_trainer(self, trainer: Trainer) -> None:
        for c in self.callbacks:
            c.set_trainer(trainer)

    def on_train_begin(self, logs: dict) -> None:
        for c in self.callbacks:
            c.on_train_begin(logs)

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        for c in self.callbacks:
            c.on_epoch_begin(epoch, logs)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        for c in self.callbacks:
            c.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_train_end(self, logs: dict) -> None:
        for c in self.callbacks:
            c.on_train_end(logs)
