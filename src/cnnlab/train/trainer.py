"""One Trainer: `fit` runs epochs of batches, calls callbacks, and keeps metrics on the device until asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnlab import infer
from cnnlab.data.loader import BatchLoader
from cnnlab.layers.pool_first import pool_first
from cnnlab.runtime import ThreadChoice, autocast, compiled, resolve_device, resolve_precision, use_channels_last
from cnnlab.tasks import Task
from cnnlab.tasks.classify import Classify
from cnnlab.train import distributed
from cnnlab.train.callbacks.base import Callback, CallbackList
from cnnlab.train.probe import choose_training_threads


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


def _shard_weight(local: int, i: int, batch_size: int, num_samples: int) -> float:
    """Loss weight of a rank's share of global batch `i`: DDP averages the ranks' gradients, so each rank's mean
    loss counts local × world / global — the gradient of the mean over the global batch, for any split."""
    whole = min((i + 1) * batch_size, num_samples) - i * batch_size
    return local * distributed.world_size() / whole


class Trainer:
    """Train a model on batches of (x, y): a classifier, or the model of another task (localization, …).

    precision: 'auto' | 'fp32' | 'bf16' — bf16 runs the forward pass under autocast; channels_last memory on CPU and
        with bf16 (see precision.use_channels_last).
    accumulate: batches per optimizer step (gradients summed, weighted to the mean over the group); 0 means the whole
        epoch, i.e. full-batch gradient descent with memory bounded by one batch.
    grad_clip: largest global L2 norm of the gradient (clipped before each step); None leaves it alone.
    mix: optional (x, y) → (x, soft targets) applied to training batches after the loader, e.g. Augment.mix.
    compile: 'off' | 'default' | 'reduce-overhead' (CUDA graphs on a GPU) | 'max-autotune' — torch.compile the
        training forward pass; `model` itself stays the plain module (saved, evaluated and explained as it is).
    task: what the targets are (cnnlab.tasks): its running metrics (logged with the loss: `accuracy`, and e.g.
        `iou` for localization), validation loss and metrics, and the default loss; default classification.
    threads: CPU threads while `fit` runs — 'auto' measures them on the first batch (`runtime.choose_threads`:
        $CNNLAB_THREADS or an enclosing `use_threads` fix them; a choice measured minutes ago is reused), an int
        fixes them. The caller's count is restored when `fit` returns; `threads_choice` says what was used and why.
    Ctrl-C stops `fit` after cleaning up: `interrupted` is set and `on_train_end` still runs. `stop(reason)` (from a
    callback) during an epoch stops at the next optimizer step; at an epoch's end, after that epoch.

    Distributed (under torchrun, see train/distributed.py): the training forward pass is DDP-wrapped, every stop is
    agreed by all ranks (`StopAgreement`), epoch metrics and `evaluate` are summed over ranks, and `state_dict()` is
    a collective that also gathers every rank's streams. In one process none of this runs.

    Resume: `state_dict()` holds the weights, optimizer, position, history, running metrics, torch's RNG and the
    state of every tracked object — the training loader (tracked by `fit`), the callbacks, and whatever the caller
    tracks with `track(name, obj)` (e.g. an augmentation's random stream). `load_state_dict` restores what is tracked
    and keeps the rest until its object is tracked, so the order of construction does not matter.
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
        task: Task | None = None,
        threads: int | str = "auto",
    ) -> None:
        if threads != "auto" and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be 'auto' or a whole number ≥ 1, got {threads!r}")
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
        # the training forward pass: DDP-wrapped under torchrun (gradients averaged over ranks), maybe compiled;
        # where neither wraps it, a trace running each ReLU after its max pool (same values, a quarter of the ReLU work)
        forward = compiled(distributed.wrap(self.model), compile)
        self.forward = pool_first(self.model) if forward is self.model else forward
        self.optimizer = optimizer
        self.task = task or Classify([], [])  # classes and input size are not needed to train and validate
        self.loss_fn = loss_fn or self.task.loss()
        self.accumulate = accumulate
        self.grad_clip = grad_clip
        self.mix = mix
        if distributed.active():  # every stop (NaN, time limit, early stopping, Ctrl-C) is one of all ranks
            callbacks = [*callbacks, distributed.StopAgreement()]
        self.callbacks = CallbackList(list(callbacks))
        self.callbacks.set_trainer(self)
        self.tracked: dict = {}  # name → object with state_dict() / load_state_dict(), saved for resume
        self._pending: dict = {}  # loaded state of objects not tracked yet
        self.stop_training = False
        self.stop_reason: str | None = None  # why a callback stopped the run (time limit, divergence, …)
        self.diverged = False  # set by TerminateOnNaN: the current weights are not to be kept
        self.interrupted = False
        self.epoch = -1  # last finished epoch (0-based)
        self.batch = 0  # batches done in the epoch after it (a resume continues from here)
        self.step = 0  # optimizer steps taken
        self.epochs = 0
        self.total_steps = 0  # optimizer steps the whole run is planned for (epochs × updates, or a time budget's)
        self.steps_per_epoch = 0  # batches per epoch
        self.updates_per_epoch = 0  # optimizer steps per epoch (fewer than batches when accumulating)
        self.last_lr = optimizer.param_groups[0]["lr"]
        self.history: list[dict] = []
        self.partial: dict | None = None  # logs of an epoch cut short by a stop (not in `history`: not resumable)
        self.threads = threads
        self.threads_choice: ThreadChoice | None = None  # made at the first batch `fit` sees (CPU only)
        self._reset_running()

    def stop(self, reason: str | None = None, diverged: bool = False) -> None:
        """Stop the run at the next optimizer step (or after the epoch that is ending). `diverged`: the current
        weights are not to be kept (a checkpoint saves nothing more). The first reason is kept, unless a later
        stop is a divergence, which is the more important news."""
        self.stop_training = True
        if reason is not None and (self.stop_reason is None or (diverged and not self.diverged)):
            self.stop_reason = reason
        self.diverged = self.diverged or diverged

    def plan(self, total_steps: int) -> None:
        """Lay the run out over `total_steps` optimizer steps: `epochs` becomes the epochs they span, and every
        callback hears it (`on_plan`: whole-run LR schedules re-lay themselves). Stopping at that step is the
        planner's job (e.g. the time budget's)."""
        self.total_steps = max(int(total_steps), 1)
        self.epochs = -(-self.total_steps // max(self.updates_per_epoch, 1))
        self.callbacks.on_plan(self.total_steps)

    def track(self, name: str, obj) -> None:
        """Save `obj`'s state_dict() in every checkpoint under `name`; restore it now if a loaded state has it."""
        self.tracked[name] = obj
        if name in self._pending:
            obj.load_state_dict(self._pending.pop(name))

    # ---- running metrics, accumulated on the device (no host sync per step)
    def _reset_running(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._sums: dict[str, torch.Tensor] = {}  # the task's running metrics, summed over the epoch's samples
        self._seen = 0

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics logged next to the loss (and as val_*): the task's, e.g. ('accuracy',)."""
        return self.task.running_metrics

    def _running_values(self) -> list[float]:
        return [self._sums[k].item() if k in self._sums else 0 for k in self.metric_names]

    def running_logs(self) -> dict:
        """Mean loss and the task's metrics (accuracy, …) of the current epoch so far (synchronises with the
        device); this rank's own in a distributed run."""
        n = max(self._seen, 1)
        values = self._running_values()
        return {"loss": self._loss_sum.item() / n, **{k: v / n for k, v in zip(self.metric_names, values, strict=True)}}

    def _epoch_logs(self) -> dict:
        """`running_logs` over all ranks (a collective in a distributed run; the same numbers in one process)."""
        if not distributed.active():
            return self.running_logs()
        loss, *values, seen = distributed.all_sum([self._loss_sum.item(), *self._running_values(), self._seen])
        n = max(seen, 1)
        return {"loss": loss / n, **{k: v / n for k, v in zip(self.metric_names, values, strict=True)}}

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
            for name, total in self.task.running(output, y).items():
                self._sums[name] = self._sums[name] + total if name in self._sums else total
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
        self, train: BatchLoader, epochs: int, val: BatchLoader | None = None, initial_epoch: int = 0
    ) -> list[dict]:
        """Train until epoch `epochs` (from `initial_epoch`, or where a loaded state left off); returns the history."""
        before = torch.get_num_threads()
        try:
            return self._fit(train, epochs, val, initial_epoch)
        finally:
            torch.set_num_threads(before)  # the caller's count comes back, whatever the choice

    def _choose_threads(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Set the CPU threads for this fit (see `threads`): measured once per Trainer, on its first batch."""
        if self.device.type != "cpu":
            return
        if self.threads_choice is None:
            asked = self.threads if isinstance(self.threads, int) else None
            self.threads_choice = choose_training_threads(
                self.model, self.loss_fn, x, y, self.device, self.precision, self.channels_last, asked
            )
        torch.set_num_threads(self.threads_choice.threads)

    def _fit(self, train: BatchLoader, epochs: int, val: BatchLoader | None, initial_epoch: int) -> list[dict]:
        self.track("loader", train)
        self.epochs = epochs
        self.steps_per_epoch = len(train)
        per_update = self.accumulate or len(train)
        self.updates_per_epoch = -(-len(train) // per_update)
        self.total_steps = epochs * self.updates_per_epoch
        self.partial = None
        plan = accumulation_plan(len(train), train.batch_size, train.num_samples, per_update)
        self.stop_training, self.stop_reason, self.diverged, self.interrupted = False, None, False, False
        logs: dict = {}
        self.callbacks.on_train_begin(logs)
        self.track("callbacks", self.callbacks)  # after on_train_begin: a resumed run's callback state wins
        start, seen_before = time.perf_counter(), self._seen
        threads_set = False
        try:
            for epoch in range(max(initial_epoch, self.epoch + 1), epochs):
                self.model.train()
                if self.batch == 0:
                    self._reset_running()
                self.callbacks.on_epoch_begin(epoch, {})
                start, seen_before = time.perf_counter(), self._seen
                for i, (x, y) in enumerate(train.batches(self.batch), self.batch):
                    if self.channels_last and x.ndim == 4:
                        x = x.contiguous(memory_format=torch.channels_last)
                    if not threads_set:  # the first batch of this fit
                        self._choose_threads(x, y)
                        threads_set = True
                    weight, update = plan[i]
                    if distributed.active():  # this rank's share of the global batch (1.0 when split evenly)
                        weight *= _shard_weight(y.shape[0], i, train.batch_size, train.num_samples)
                    loss = self.train_step(x, y, weight, update)
                    self.batch = i + 1
                    self.callbacks.on_batch_end(i, {"batch_size": y.shape[0], "loss": loss})
                    if self.stop_training and update:
                        break
                if self.batch < len(train):  # stopped mid-epoch: no epoch end, the position stays for a resume
                    self.partial = self._partial_logs(epoch, start, seen_before)
                    break
                logs = self._epoch_logs()
                seconds = time.perf_counter() - start
                seen = (self._seen - seen_before) * distributed.world_size()  # ranks see equal shares (± 1)
                logs.update(seconds=seconds, samples_per_s=seen / seconds, lr=self.last_lr)
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
                self.epoch, self.batch = epoch, 0
                self.history.append({"epoch": epoch + 1, **logs})
                self.callbacks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            if self.batch > 0:  # Ctrl-C mid-epoch: what that epoch did so far
                self.partial = self._partial_logs(self.epoch + 1, start, seen_before)
        self.callbacks.on_train_end({"interrupted": self.interrupted, "partial": self.partial})
        return self.history

    def _partial_logs(self, epoch: int, start: float | None, seen_before: int) -> dict:
        """The history row of an epoch cut short: fractional epoch, running loss/accuracy, rate, LR (no validation)."""
        seconds = time.perf_counter() - start if start is not None else 0.0
        seen = (self._seen - seen_before) * distributed.world_size()
        logs = {"epoch": round(epoch + self.batch / max(self.steps_per_epoch, 1), 3), **self._epoch_logs()}
        logs.update(
            seconds=seconds, samples_per_s=seen / seconds if seconds > 0 else None, lr=self.last_lr, partial=True
        )
        return logs

    # ---- evaluation
    def evaluate(self, loader: BatchLoader) -> dict:
        """Mean loss (no label smoothing) and the task's metrics over `loader` — classification: cross-entropy and
        accuracy — through `cnnlab.infer`.

        Validation runs the training model at the trainer's precision, without TTA; on the CPU as a copy with
        BatchNorm folded into the convolutions (`evaluates_folded`), the same function to rounding.
        """
        labels: list[torch.Tensor] = []

        def inputs():
            for x, y in loader.batches():
                labels.append(y)
                yield x

        outputs = infer.run(self.model, inputs(), self.device, self.precision, fold_bn=self.evaluates_folded())
        y = torch.cat(labels).cpu() if labels else torch.zeros(0, dtype=torch.int64)
        if distributed.active():  # each rank evaluated its shard: sums over ranks
            sums = self.task.evaluate_sums(outputs, y)
            *totals, n = distributed.all_sum([*sums.values(), len(y)])
            return {k: v / max(n, 1) for k, v in zip(sums, totals, strict=True)}
        return self.task.evaluate_outputs(outputs, y)

    def evaluates_folded(self) -> bool:
        """Evaluate a copy with BatchNorm folded into its convolutions (as the final evaluation and `cnnlab evaluate`
        do) on the CPU, where the batch norm of small maps costs as much as the convolutions: the fast recipe's
        validation pass ran at 13,750 samples/s unfolded and 22,358 folded (`benchmarks/features/val_fold.py`, batch
        500, 2-core Zen 3). Not on an accelerator, where the copy would take the model's memory a second time."""
        return self.device.type == "cpu"

    # ---- resume state
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: model, optimizer, position, history, running metrics, torch's RNG
        and every tracked object's state (loader order, callbacks, augmentation stream, …)."""
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "history": self.history,
            "running": {
                "loss_sum": self._loss_sum.cpu(),
                "sums": {k: v.cpu() for k, v in self._sums.items()},
                "seen": self._seen,
            },
            "rng": rng,
            "tracked": {**self._pending, **{name: obj.state_dict() for name, obj in self.tracked.items()}},
        }
        if distributed.active():  # a collective: every rank's own streams and running sums, in rank order
            state["ranks"] = distributed.gather_objects({k: state[k] for k in ("running", "rng", "tracked")})
            state["world_size"] = distributed.world_size()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`; the next `fit` continues from the saved epoch and batch."""
        if "tracked" not in state:  # written by cnnlab 0.1, before the tracked-state protocol
            legacy = {**state.get("streams", {}), "callbacks": state.get("callbacks", {})}
            if state["rng"].get("data") is not None:
                legacy["loader"] = {"generator": state["rng"]["data"]}
            state = {**state, "tracked": legacy}
        ranks = state.get("ranks")
        if ranks is not None and len(ranks) == distributed.world_size():  # the same N: each rank its own streams
            state = {**state, **ranks[distributed.rank()]}
        elif ranks is not None:  # another N (or one process): rank 0's streams, the epoch's running sums summed
            runs = [_running_state(r["running"]) for r in ranks]
            run = {
                "loss_sum": sum(r["loss_sum"] for r in runs),
                "sums": {k: sum(r["sums"][k] for r in runs) for k in runs[0]["sums"]},
                "seen": sum(r["seen"] for r in runs),
            }
            if not distributed.is_main():
                run = {"loss_sum": torch.zeros(()), "sums": {}, "seen": 0}
            state = {**state, "running": run}
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.batch = state["batch"]
        self.history = list(state["history"])
        run = _running_state(state["running"])
        self._loss_sum = run["loss_sum"].to(self.device)
        self._sums = {k: v.to(self.device) for k, v in run["sums"].items()}
        self._seen = run["seen"]
        rng = state["rng"]
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self._pending = {}
        for name, obj_state in state["tracked"].items():
            if name in self.tracked and name != "callbacks":
                self.tracked[name].load_state_dict(obj_state)
            else:  # restored when tracked: the loader and the callbacks at the next `fit`
                self._pending[name] = obj_state


def _running_state(run: dict) -> dict:
    """The running sums of a checkpoint; those written before tasks (a `correct` count) are classification's."""
    if "sums" in run:
        return run
    return {"loss_sum": run["loss_sum"], "sums": {"accuracy": run["correct"]}, "seen": run["seen"]}
