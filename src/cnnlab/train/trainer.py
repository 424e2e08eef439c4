"""One Trainer: `fit` runs epochs of batches, calls callbacks, and keeps metrics on the device until asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnlab.data.loader import InMemoryLoader
from cnnlab.models import main_output
from cnnlab.runtime import autocast, compiled, resolve_device, resolve_precision, use_channels_last
from cnnlab.train.callbacks.base import Callback, CallbackList
from cnnlab.train.losses import ClassificationLoss, hard_labels


def accumulation_plan(num_batches: int, batch_size: int, num_samples: int, per_update: int) -> list[tuple[float, bool]]:
    """For each batch of an epoch: (loss weight, whether an optimizer step follows it).

    Batches are grouped `per_update` at a time; each batch's mean loss is weighted by its share of the group's
    samples, so the summed gradient is the gradient of the mean loss over the whole group (one big batch).
    """
    plan = []
    for i in range(num_batches):
        first = i // per_update * per_update
        last = min(first + per_update, num_batches) - 1
        group = min((last + 1) * batch_size, num_samples) - first * batch_size
        this = min((i + 1) * batch_size, num_samples) - i * batch_size
        plan.append((this / group, i == last))
    return plan


class Trainer:
    """Train a classifier on batches of (x, y).

    precision: 'auto' | 'fp32' | 'bf16' — bf16 runs the forward pass under autocast; channels_last memory on CPU and
        with bf16 (see precision.use_channels_last).
    accumulate: batches per optimizer step (gradients summed, weighted to the mean over the group); 0 means the whole
        epoch, i.e. full-batch gradient descent with memory bounded by one batch.
    grad_clip: largest global L2 norm of the gradient (clipped before each step); None leaves it alone.
    mix: optional (x, y) → (x, soft targets) applied to training batches after the loader, e.g. Augment.mix.
    compile: 'off' | 'default' | 'reduce-overhead' (CUDA graphs on a GPU) | 'max-autotune' — torch.compile the
        training forward pass; `model` itself stays the plain module (saved, evaluated and explained as it is).
    Ctrl-C stops `fit` after cleaning up: `interrupted` is set and `on_train_end` still runs. A callback that sets
    `stop_training` during an epoch stops at the next optimizer step; at an epoch's end, after that epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        callbacks: Sequence[Callback] = (),
        accumulate: int = 1,
        grad_clip: float | None = None,
        mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        compile: str = "off",
    ) -> None:
        if accumulate < 0:
            raise ValueError(f"accumulate must be ≥ 1 batches (or 0 for the whole epoch), got {accumulate}")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"gradient clipping needs a norm > 0, got {grad_clip}")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = use_channels_last(self.device, self.precision)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = compiled(self.model, compile)  # the training forward pass
        self.optimizer = optimizer
        self.loss_fn = loss_fn or ClassificationLoss()
        self.accumulate = accumulate
        self.grad_clip = grad_clip
        self.mix = mix
        self.callbacks = CallbackList(list(callbacks))
        self.callbacks.set_trainer(self)
        # random streams besides torch's global one and the loader's, saved for resume: name → has state_dict()
        self.rng_streams: dict = {}
        self.stop_training = False
        self.stop_reason: str | None = None  # why a callback stopped the run (time limit, divergence, …)
        self.diverged = False  # set by TerminateOnNaN: the current weights are not to be kept
        self.interrupted = False
        self.epoch = -1  # last finished epoch (0-based)
        self.batch = 0  # batches done in the epoch after it (a resume continues from here)
        self.step = 0  # optimizer steps taken
        self.epochs = 0
        self.steps_per_epoch = 0  # batches per epoch
        self.updates_per_epoch = 0  # optimizer steps per epoch (fewer than batches when accumulating)
        self.last_lr = optimizer.param_groups[0]["lr"]
        self.history: list[dict] = []
        self._data_rng: torch.Tensor | None = None  # the loader's generator at the start of the current epoch
        self._callback_state: dict | None = None
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
    def train_step(self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0, update: bool = True) -> torch.Tensor:
        """Forward and backward one batch (loss × weight); step the optimizer when `update`. Returns the loss."""
        if self.mix is not None:
            x, y = self.mix(x, y)
        with autocast(self.device, self.precision):
            output = self.forward(x)
            loss = self.loss_fn(output, y)
        (loss if weight == 1.0 else loss * weight).backward()
        if update:
            self.optimizer_step()
        loss = loss.detach()
        with torch.no_grad():
            self._loss_sum += loss * y.shape[0]
            self._correct += (main_output(output).argmax(1) == hard_labels(y)).sum()
        self._seen += y.shape[0]
        return loss

    def optimizer_step(self) -> None:
        """Clip the accumulated gradient (if asked), update the weights, clear the gradient."""
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def fit(
        self, train: InMemoryLoader, epochs: int, val: InMemoryLoader | None = None, initial_epoch: int = 0
    ) -> list[dict]:
        """Train until epoch `epochs` (from `initial_epoch`, or where a loaded state left off); returns the history."""
        if train.channels_last != self.channels_last:
            train.channels_last = self.channels_last
        self.epochs = epochs
        self.steps_per_epoch = len(train)
        per_update = self.accumulate or len(train)
        self.updates_per_epoch = -(-len(train) // per_update)
        plan = accumulation_plan(len(train), train.batch_size, train.num_samples, per_update)
        self.stop_training, self.stop_reason, self.diverged, self.interrupted = False, None, False, False
        logs: dict = {}
        self.callbacks.on_train_begin(logs)
        if self._callback_state is not None:  # resumed: callbacks continue from their saved state
            self.callbacks.load_state_dict(self._callback_state)
            self._callback_state = None
        if self._data_rng is not None:  # resumed: the loader's generator as at the start of the saved epoch
            train.generator.set_state(self._data_rng)
        try:
            for epoch in range(max(initial_epoch, self.epoch + 1), epochs):
                self.model.train()
                self._data_rng = train.generator.get_state()
                if self.batch == 0:
                    self._reset_running()
                self.callbacks.on_epoch_begin(epoch, {})
                start, seen_before = time.perf_counter(), self._seen
                for i, (x, y) in enumerate(train.batches(self.batch), self.batch):
                    weight, update = plan[i]
                    loss = self.train_step(x, y, weight, update)
                    self.batch = i + 1
                    self.callbacks.on_batch_end(i, {"batch_size": y.shape[0], "loss": loss})
                    if self.stop_training and update:
                        break
                if self.batch < len(train):  # stopped mid-epoch: no epoch end, the position stays for a resume
                    break
                logs = self.running_logs()
                seconds = time.perf_counter() - start
                logs.update(seconds=seconds, samples_per_s=(self._seen - seen_before) / seconds, lr=self.last_lr)
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
                self.epoch, self.batch = epoch, 0
                self._data_rng = train.generator.get_state()  # = the start of the next epoch
                self.history.append({"epoch": epoch + 1, **logs})
                self.callbacks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            self.interrupted = True
        self.callbacks.on_train_end({"interrupted": self.interrupted})
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
        """Everything needed to continue exactly: model, optimizer, position, history, running metrics, every RNG."""
        rng = {"cpu": torch.get_rng_state(), "data": self._data_rng}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "history": self.history,
            "running": {"loss_sum": self._loss_sum.cpu(), "correct": self._correct.cpu(), "seen": self._seen},
            "rng": rng,
            "streams": {name: s.state_dict() for name, s in self.rng_streams.items()},
            "callbacks": self.callbacks.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`; the next `fit` continues from the saved epoch and batch."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.batch = state["batch"]
        self.history = list(state["history"])
        run = state["running"]
        self._loss_sum, self._correct = run["loss_sum"].to(self.device), run["correct"].to(self.device)
        self._seen = run["seen"]
        rng = state["rng"]
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self._data_rng = rng["data"]
        for name, s in state["streams"].items():
            if name in self.rng_streams:
                self.rng_streams[name].load_state_dict(s)
        self._callback_state = state["callbacks"]
