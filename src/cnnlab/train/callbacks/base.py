"""The Keras-style callback protocol the Trainer calls at each stage of `fit`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.train.trainer import Trainer


class Callback:
    """Override any hook. `self.trainer` is set by the Trainer; set `self.trainer.stop_training = True` to stop.

    `logs` at epoch end holds loss, accuracy, val_loss, val_accuracy, lr, seconds, samples_per_s.
    `on_batch_end` gets only cheap logs: `batch_size` and `loss`, the batch's loss as a tensor still on the device;
    call `self.trainer.running_logs()` for the running loss and accuracy — reading a device value synchronises with
    the device, so do it only when you will show or store the value.
    A callback with state that a resumed run must continue from returns it from `state_dict()` (tensors, numbers,
    strings, lists, dicts: it is saved in the checkpoint) and takes it back in `load_state_dict()`, which the
    Trainer calls right after `on_train_begin`.
    """

    trainer: Trainer

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...

    def on_batch_end(self, batch: int, logs: dict) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


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

    def _keys(self) -> list[str]:
        """A stable key per callback: its class name, numbered when the class appears more than once."""
        names = [type(c).__name__ for c in self.callbacks]
        return [f"{n}.{names[:i].count(n)}" if names.count(n) > 1 else n for i, n in enumerate(names)]

    def state_dict(self) -> dict:
        states = {key: c.state_dict() for key, c in zip(self._keys(), self.callbacks, strict=True)}
        return {k: v for k, v in states.items() if v}

    def load_state_dict(self, state: dict) -> None:
        for key, c in zip(self._keys(), self.callbacks, strict=True):
            if key in state:
                c.load_state_dict(state[key])
