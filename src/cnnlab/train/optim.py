"""Optimizers by name, with parameter groups that keep weight decay off biases and norm parameters."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import torch
from torch import nn

# gd: full-batch gradient descent, the SGD update once per pass (the Trainer accumulates the whole set's gradient)
OPTIMIZERS = ("gd", "sgd", "adam", "adamw", "rmsprop")
FULL_BATCH = ("gd",)


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: weights that decay, and biases / norm scales (1-D tensors) that do not unless `decay_all`."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decay_all or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    name: str,
    params: nn.Module | Iterable[torch.nn.Parameter] | list[dict],
    lr: float,
    momentum: float | None = None,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    decay_all: bool = False,
) -> torch.optim.Optimizer:
    """gd / SGD (momentum, Nesterov), Adam, AdamW (decoupled decay) or RMSprop; lr per step, not scaled by batch size.

    params: a model (→ parameter groups without decay on biases / norm parameters unless `decay_all`), or parameters.
    momentum: None → 0.9 for sgd and rmsprop, 0 for gd (the plain rule).
    """
    name = name.lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}'; choose from {', '.join(OPTIMIZERS)}")
    if lr <= 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    if momentum is None:
        momentum = 0.0 if name == "gd" else 0.9
    if nesterov and (name not in ("sgd", "gd") or momentum <= 0):
        raise ValueError(f"--nesterov needs --optimizer sgd with --momentum > 0 (got {name}, momentum {momentum})")
    if isinstance(params, nn.Module):
        params = param_groups(params, weight_decay, decay_all)
    params = list(params)
    # fused kernels: one pass per parameter instead of ~10 small ops — per-step overhead dominates small models
    fused = {"fused": True} if _fusable(params) else {}
    if name in ("sgd", "gd"):
        return SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **fused)
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    return RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _eager(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """`base` with the methods a training loop calls freed of torch's dynamo guards, for eager (uncompiled) steps.

    torch.optim wraps `add_param_group`, `zero_grad`, `state_dict`, `load_state_dict` and `step` in guards that keep
    torch.compile from tracing them; their first call imports torch._dynamo: 1.3–1.9 s of a command's start on a
    2-core Zen 3 (py-spy, `cnnlab train --recipe fast --time-budget 30s`), 6 % of a 30 s budget. cnnlab never compiles
    an optimizer step, so its optimizers call the undecorated methods (the update itself, the fused kernels, step
    hooks and the profiler's record stay torch's) and `step` runs without grad, as torch's guard does. Still
    instances of `base`: LR schedulers, state dicts and checkpoints treat them as torch's own.
    """

    def plain(name: str):
        return inspect.unwrap(getattr(base, name))  # the function under torch's decorators

    update = plain("step")

    def step(self, closure=None):
        with torch.no_grad():
            return update(self, closure)

    methods = {n: plain(n) for n in ("add_param_group", "zero_grad", "state_dict", "load_state_dict")}
    methods.update(step=step, __module__=__name__, __qualname__=base.__name__, __doc__=base.__doc__)
    return type(base.__name__, (base,), methods)


SGD, Adam, AdamW, RMSprop = (
    _eager(c) for c in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)
)


def _fusable(params) -> bool:
    """Whether torch's fused optimizer kernels apply: floating-point parameters, all on CPU or all on CUDA."""
    tensors = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else list(params)
    devices = {p.device.type for p in tensors}
    return (
        bool(tensors)
        and len(devices) == 1
        and devices <= {"cpu", "cuda"}
        and all(p.is_floating_point() for p in tensors)
    )
