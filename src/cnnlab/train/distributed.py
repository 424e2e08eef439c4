"""Data-parallel training with torch.distributed: one process per device, launched by torchrun.

The process group is set up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT):
gloo on CPU, nccl on CUDA (one process per GPU, `cuda:LOCAL_RANK`). The model is wrapped in
DistributedDataParallel for the training forward pass only; every rank reads its slice of each global batch
(`InMemoryLoader(rank=, world=)`), so --batch-size stays the global batch. `StopAgreement` makes every stop
decision (NaN, time limit, early stopping, Ctrl-C / SIGTERM) a decision of all ranks at the same step. Without
torchrun's environment everything here is a no-op and a run is the single-process run, bit for bit.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from cnnlab.train.callbacks.base import Callback

DEFAULT_TIMEOUT_S = 30.0  # a lost peer turns into an error after this long (CNNLAB_DIST_TIMEOUT overrides it)
ORDER_STOP_AGREEMENT = 40  # after NaN guard (20), early stopping and time limit (30); before the checkpoint (80)


class DistributedError(RuntimeError):
    """Another process of a distributed run is gone (killed, crashed, unreachable)."""


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process in the job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, or a single process: the one that prints, writes the run folder, checkpoints and plots."""
    return rank() == 0


def timeout_s() -> float:
    return float(os.environ.get("CNNLAB_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


def setup(device: str = "auto") -> str:
    """Join torchrun's process group when launched by it; returns the device this rank trains on.

    device 'auto'/'cuda' with CUDA: nccl and `cuda:LOCAL_RANK`; otherwise gloo (and the device as given)."""
    if not launched():
        return device
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s()))
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module) -> nn.Module:
    """The DDP-wrapped module for the training forward pass (the plain module outside a distributed run)."""
    if not active():
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def all_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """The sums over ranks of `values` (float64; a no-op in one process)."""
    return _all_reduce(values, dist.ReduceOp.SUM, device)


def all_max(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """The maxima over ranks of `values` (float64; a no-op in one process)."""
    return _all_reduce(values, dist.ReduceOp.MAX, device)


def _all_reduce(values: list[float], op, device: torch.device | str) -> list[float]:
    if not active():
        return list(values)
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor(values, dtype=torch.float64, device=device)
    collective(dist.all_reduce, t, op)
    return t.tolist()


def gather_objects(obj) -> list:
    """`obj` of every rank, in rank order (picklable objects; a one-item list in one process)."""
    if not active():
        return [obj]
    out = [None] * world_size()
    collective(dist.all_gather_object, out, obj)
    return out


def collective(fn, *args):
    """Run a collective; a peer that is gone becomes one DistributedError naming this rank."""
    try:
        return fn(*args)
    except RuntimeError as e:  # dist.DistError is a RuntimeError
        raise DistributedError(_first_line(e)) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:160] if text else ''}"


def is_peer_failure(error: BaseException) -> bool:
    """Whether `error` is a collective that failed because a peer is gone (not a bug of this rank's own)."""
    if isinstance(error, DistributedError | dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(w in text for w in ("gloo", "nccl", "connection", "timed out"))


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm → SyncBatchNorm (statistics over the global batch). torch implements it on GPUs only."""
    if device.type != "cuda":
        raise ValueError(
            "--sync-bn needs CUDA devices: torch's SyncBatchNorm runs on GPUs only (on CPU, train a "
            "model without BatchNorm for rank-count independent results)"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def plain_batchnorm(module: nn.Module) -> nn.Module:
    """SyncBatchNorm → BatchNorm2d with the same weights and statistics (for saving, folding and evaluation)."""
    if isinstance(module, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        bn.load_state_dict(module.state_dict())
        return bn.to(next(module.parameters(), module.running_mean).device).train(module.training)
    for name, child in module.named_children():
        setattr(module, name, plain_batchnorm(child))
    return module


def as_distributed_error(error: BaseException, out) -> DistributedError:
    """A failed collective (a peer killed or unreachable) as one line naming this rank and what to do."""
    cause = str(error) if isinstance(error, DistributedError) else _first_line(error)
    return DistributedError(
        f"rank {rank()}: another process of this distributed run stopped or cannot be reached ({cause}); "
        f"continue with --resume {out} and the same number of processes"
    )


class StopAgreement(Callback):
    """Every stop is a stop of all ranks at the same step: after each batch and each epoch, the stop flags
    (stop, diverged, interrupted) are summed over ranks; one rank's stop stops them all, with its reason.

    Ctrl-C and SIGTERM (torchrun forwards them) set the interrupted flag instead of raising, so no rank is left
    waiting in a collective; the run stops at the next optimizer step, checkpoints and ends cleanly."""

    order = ORDER_STOP_AGREEMENT

    def __init__(self) -> None:
        self.signalled: str | None = None
        self._previous: dict = {}

    def _on_signal(self, signum, frame) -> None:
        self.signalled = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"

    def on_train_begin(self, logs: dict) -> None:
        if active():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def on_train_end(self, logs: dict) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _agree(self) -> None:
        if not active():
            return
        t = self.trainer
        mine = [float(t.stop_training), float(t.diverged), float(self.signalled is not None)]
        stop, diverged, signalled = all_sum(mine)
        if not stop and not signalled:
            return
        reason = self.signalled or t.stop_reason
        reasons = gather_objects(reason if (t.stop_training or self.signalled) else None)
        first = next((f"{r} (rank {i})" for i, r in enumerate(reasons) if r), "stopped by another rank")
        if signalled:
            t.interrupted = True
        t.stop(first, diverged=diverged > 0)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self._agree()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._agree()
