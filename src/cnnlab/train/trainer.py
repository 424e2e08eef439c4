"""One Trainer: `fit` runs epochs of batches, calls callbacks, and keeps metrics on the device until asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnlab.data.loader import InMemoryLoader
from cnnlab.train.callbacks.base import Callback, CallbackList
from cnnlab.train.losses import ClassificationLoss, main_output
from cnnlab.train.precision import autocast, resolve_device, resolve_precision


class Trainer:
    """Train a classifier on batches of (x, y).

    precision: 'auto' | 'fp32' | 'bf16' — bf16 runs the forward pass under autocast with channels_last memory.
    Ctrl-C stops `fit` after cleaning up: `interrupted` is set and `on_train_end` still runs.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = self.precision == "bf16"
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer
        self.loss_fn = loss_fn or ClassificationLoss()
        self.callbacks = CallbackList(list(callbacks))
        self.callbacks.set_trainer(self)
        self.stop_training = False
        self.interrupted = False
        self.epoch = -1  # last finished epoch (0-based)
        self.step = 0  # optimizer steps taken
        self.epochs = 0
        self.steps_per_epoch = 0
        self.history: list[dict] = []
        self._reset_running()

    # ---- running metrics, accumulated on the device (no host sync per step)
    def _reset_running(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self._seen = 0

    def running_logs(self) -> dict:
        """Mean loss and accuracy of the current epoch so far (synchronises with the device)."""
        n = max(self._seen, 1)
        return {"loss": self._loss_sum.item() / n, "accuracy": self._correct.item() / n}

    # ---- training
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(self.device, self.precision):
            output = self.model(x)
            loss = self.loss_fn(output, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        with torch.no_grad():
            self._loss_sum += loss.detach() * y.shape[0]
            self._correct += (main_output(output).argmax(1) == y).sum()
        self._seen += y.shape[0]

    def fit(
        self, train: InMemoryLoader, epochs: int, val: InMemoryLoader | None = None, initial_epoch: int = 0
    ) -> list[dict]:
        """Train for `epochs` epochs (counting from `initial_epoch`); returns the per-epoch history."""
        if train.channels_last != self.channels_last:
            train.channels_last = self.channels_last
        self.epochs = epochs
        self.steps_per_epoch = len(train)
        self.stop_training = False
        self.interrupted = False
        logs: dict = {}
        self.callbacks.on_train_begin(logs)
        try:
            for epoch in range(initial_epoch, epochs):
                self.model.train()
                self._reset_running()
                self.callbacks.on_epoch_begin(epoch, {})
                start = time.perf_counter()
                for i, (x, y) in enumerate(train):
                    self.train_step(x, y)
                    self.callbacks.on_batch_end(i, {"batch_size": y.shape[0]})
                logs = self.running_logs()
                seconds = time.perf_counter() - start
                logs.update(seconds=seconds, samples_per_s=self._seen / seconds)
                logs["lr"] = self.optimizer.param_groups[0]["lr"]
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
                self.epoch = epoch
                self.history.append({"epoch": epoch + 1, **logs})
                self.callbacks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            self.interrupted = True
        end_logs = {"interrupted": self.interrupted}
        self.callbacks.on_train_end(end_logs)
        return self.history

    # ---- evaluation
    @torch.inference_mode()
    def predict_logits(self, loader: InMemoryLoader) -> torch.Tensor:
        """Logits (N, classes) in float32 for every sample of `loader`, in order."""
        self.model.eval()
        loader.channels_last = self.channels_last
        outs = []
        for x, _ in loader:
            with autocast(self.device, self.precision):
                outs.append(main_output(self.model(x)).float())
        return torch.cat(outs)

    def evaluate(self, loader: InMemoryLoader) -> dict:
        """Mean cross-entropy loss and accuracy over `loader` (no label smoothing)."""
        logits = self.predict_logits(loader)
        labels = loader.labels
        loss = torch.nn.functional.cross_entropy(logits, labels).item()
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean().item()}

    # ---- resume state
    def state_dict(self) -> dict:
        """Everything needed to continue: model, optimizer, epoch, step, history, torch RNG."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "rng_cpu": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = state["epoch"], state["step"]
        torch.set_rng_state(state["rng_cpu"])
