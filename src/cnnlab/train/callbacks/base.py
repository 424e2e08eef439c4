"""The Keras-style callback protocol the Trainer calls at each stage of `fit`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.train.trainer import Trainer


# `order` of the built-in callbacks: lower runs first at every hook; user callbacks default to USER
ORDER_SCHEDULE = 10  # sets the LR of the next step; its plateau state must be final before a checkpoint
ORDER_GUARD = 20  # TerminateOnNaN: a divergence is known before anything saves
ORDER_STOPPER = 30  # EarlyStopping, TimeLimit: decide to stop before the checkpoint of that step
USER = 50
ORDER_CHECKPOINT = 80  # saves the trainer's and every earlier callback's state
ORDER_REPORT = 90  # progress, CSV, TensorBoard: a row written means a checkpoint has it


class Callback:
    """Override any hook. `self.trainer` is set by the Trainer; call `self.trainer.stop(reason)` to stop.

    The contract, one way in each direction:
    - callbacks run sorted by `order` (stable: equal orders keep their list position), whatever list they came in;
    - they read the trainer's position (`epoch`, `batch`, `step`, `epochs`, `total_steps`, `steps_per_epoch`,
      `updates_per_epoch`, `last_lr`, `history`), its `model`, `optimizer` and `device`, `running_logs()` and
      `state_dict()`;
    - they act on the run only through `trainer.stop(reason, diverged=False)`, `trainer.plan(total_steps)` (a new
      length for the run; every callback hears it in `on_plan`) and the optimizer's LR;
    - `logs` at epoch end holds loss, accuracy, val_loss, val_accuracy, lr, seconds, samples_per_s;
      `on_batch_end` gets only cheap logs: `batch_size` and `loss`, the batch's loss as a tensor still on the
      device (reading a device value synchronises with it, so do it only when you will show or store the value);
    - a callback with state that a resumed run must continue from returns it from `state_dict()` (tensors, numbers,
      strings, lists, dicts: it is saved in the checkpoint) and takes it back in `load_state_dict()`, which the
      Trainer calls right after `on_train_begin`.
    """

    trainer: Trainer
    order: int = USER

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...

    def on_plan(self, total_steps: int) -> None:
        """The run's length in optimizer steps is known or changed (`Trainer.plan`, e.g. by a time budget)."""

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
        self.callbacks = sorted(callbacks, key=lambda c: c.order)  # stable: equal orders keep their list order

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer
        for c in self.callbacks:
            c.set_trainer(trainer)

    def add(self, callback: Callback) -> None:
        """Add a callback to a trainer's list (placed by its `order`)."""
        self.callbacks = sorted([*self.callbacks, callback], key=lambda c: c.order)
        if hasattr(self, "trainer"):
            callback.set_trainer(self.trainer)

    def on_train_begin(self, logs: dict) -> None:
        for c in self.callbacks:
            c.on_train_begin(logs)

    def on_plan(self, total_steps: int) -> None:
        for c in self.callbacks:
            c.on_plan(total_steps)

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
