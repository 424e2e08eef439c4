"""A resume checkpoint is user input: `check_state` checks every part of a `Trainer.state_dict()` read from a file
against the trainer it is to be loaded into, before any of it is.

Why each check: an optimizer state tensor of another shape than its parameter reaches the fused Adam / SGD kernels,
which index it by the parameter's size (a 7-element `exp_avg` ended in a segmentation fault); non-finite weights
would train on garbage and could end up in the model file; a random state of the wrong size, a history that is not
a list of rows or a position out of range fails later, deep in a traceback. Each problem is one line.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnlab.train.trainer import Trainer

MAX_COUNT = 10**12  # epochs, steps: more than any run takes
_RNG_BYTES = torch.get_rng_state().numel()  # a CPU generator's state (mt19937 and its position)


def check_state(state: dict, trainer: Trainer, batches_per_epoch: int) -> None:
    """Raise ValueError (one line, without the file's name) for the first part of `state` that cannot be loaded
    into `trainer`, whose training loader has `batches_per_epoch` batches."""
    model = trainer.model.state_dict()
    _check_tensors(state.get("model"), model, "weights")
    _check_optimizer(state.get("optimizer"), trainer.optimizer)
    _check_position(state, batches_per_epoch)
    _check_history(state.get("history"))
    _check_running(state.get("running"))
    rng = state.get("rng")
    if not isinstance(rng, dict) or not _is_rng(rng.get("cpu")):
        raise ValueError(f"its random state 'rng' is not a generator state of {_RNG_BYTES} bytes")
    for key, value in _walk(state.get("tracked", {})):
        if key.endswith("generator") and not _is_rng(value):
            raise ValueError(f"its random state '{key}' is not a generator state of {_RNG_BYTES} bytes")
        if key.endswith("best_state") and value is not None:
            _check_tensors(value, model, "early stopping's best weights")


def _check_tensors(tensors: Any, expected: dict[str, torch.Tensor], what: str) -> None:
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ValueError(f"its {what} are not a mapping of names to tensors")
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        names = ", ".join([*(f"missing {k}" for k in missing[:2]), *(f"unexpected {k}" for k in extra[:2])])
        raise ValueError(f"its {what} do not fit this model ({names})")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"its {what} {key} have shape {tuple(value.shape)}, the model needs {tuple(expected[key].shape)}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"its {what} hold non-finite values (nan or inf) in {key}")


def _check_optimizer(saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """Every state tensor of a parameter has that parameter's shape (or is a scalar such as Adam's `step`)."""
    if not (
        isinstance(saved, dict) and isinstance(saved.get("state"), dict) and isinstance(saved.get("param_groups"), list)
    ):
        raise ValueError("its optimizer state is not an optimizer's state_dict (state, param_groups)")
    groups = saved["param_groups"]
    ours = optimizer.param_groups
    if len(groups) != len(ours) or any(
        not isinstance(g, dict) or not isinstance(g.get("params"), list) or len(g["params"]) != len(o["params"])
        for g, o in zip(groups, ours, strict=False)
    ):
        raise ValueError("its optimizer state has other parameter groups than this run's optimizer")
    params = {
        pid: p for g, o in zip(groups, ours, strict=True) for pid, p in zip(g["params"], o["params"], strict=True)
    }
    for pid, entry in saved["state"].items():
        if pid not in params or not isinstance(entry, dict):
            raise ValueError(f"its optimizer state names a parameter {pid!r} the optimizer does not have")
        shape = tuple(params[pid].shape)
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                if isinstance(value, bool | int | float) and math.isfinite(value):
                    continue
                raise ValueError(f"its optimizer state '{name}' of parameter {pid} is {type(value).__name__}")
            if value.dim() > 0 and tuple(value.shape) != shape:
                raise ValueError(
                    f"its optimizer state '{name}' of parameter {pid} has shape {tuple(value.shape)}, "
                    f"the parameter {shape}"
                )
            if value.dim() == 0 and value.numel() != 1:
                raise ValueError(f"its optimizer state '{name}' of parameter {pid} is empty")
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise ValueError(f"its optimizer state '{name}' of parameter {pid} holds nan or inf")


def _check_position(state: dict, batches_per_epoch: int) -> None:
    for key, low in (("epoch", -1), ("step", 0), ("batch", 0)):
        value = state.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_COUNT):
            raise ValueError(f"its '{key}' {value!r} is not a count from {low} up")
    if state["batch"] >= max(batches_per_epoch, 1):
        raise ValueError(f"its 'batch' {state['batch']} is beyond the {batches_per_epoch} batches of an epoch")


def _check_history(history: Any) -> None:
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise ValueError("its 'history' is not a list of epoch rows")
    for row in history:
        for key, value in row.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, str | int | float)):
                raise ValueError(f"its 'history' holds a {type(value).__name__} under {key!r}, not a number")


def _check_running(running: Any) -> None:
    """The epoch's running sums: a scalar loss sum, the task's scalar sums (or, before tasks, a `correct` count)
    and a count of samples."""

    def scalar(value: Any) -> bool:
        return isinstance(value, torch.Tensor) and value.numel() == 1

    ok = isinstance(running, dict) and scalar(running.get("loss_sum"))
    sums = running.get("sums", {"correct": running.get("correct")}) if ok else None
    ok = ok and isinstance(sums, dict) and all(isinstance(k, str) and scalar(v) for k, v in sums.items())
    if not ok or not (isinstance(running.get("seen"), int) and running["seen"] >= 0):
        raise ValueError("its running metrics 'running' are not scalar sums and a count")


def _is_rng(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.numel() == _RNG_BYTES


def _walk(obj: Any, prefix: str = "tracked") -> list[tuple[str, Any]]:
    """(dotted key, value) of every entry of nested dictionaries."""
    out = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((f"{prefix}.{key}", value))
            if key not in ("best_state",):
                out += _walk(value, f"{prefix}.{key}")
    return out
