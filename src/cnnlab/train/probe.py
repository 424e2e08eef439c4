"""The training step that the thread choice times: one forward + backward of a copy of the model on a batch.

`run.setup` times it before the Trainer exists (the time budget needs the estimate); a `Trainer` whose `threads`
is 'auto' times it on its first batch. Both hand it to `runtime.choose_threads`, the one mechanism.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from cnnlab.runtime import ThreadChoice, autocast, choose_threads

PROBE_SAMPLES = 64  # the probe's batch: enough to time a step, small enough to cost well under a second


def training_step(
    model: nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    precision: str,
    channels_last: bool,
) -> Callable[[], None]:
    """One training step (no optimizer) of a copy of `model` on the first PROBE_SAMPLES of (x, y): the model, its
    BatchNorm statistics and its gradients stay as they are."""
    net = copy.deepcopy(model).to(device).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    x, y = x[:PROBE_SAMPLES], y[:PROBE_SAMPLES]

    def step() -> None:
        with autocast(device, precision):
            loss = loss_fn(net(x), y)
        loss.backward()
        net.zero_grad(set_to_none=True)

    return step


def workload_key(model: nn.Module, x: torch.Tensor, precision: str) -> str:
    """What the thread choice of a training step depends on besides the machine: the model (class and size), the
    input shape of the probe batch and the precision."""
    params = sum(p.numel() for p in model.parameters())
    shape = "×".join(map(str, x[:PROBE_SAMPLES].shape))
    name = getattr(model, "model_name", type(model).__name__)
    return f"train {name} {params} params {shape} {precision}"


def choose_training_threads(
    model: nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    precision: str,
    channels_last: bool,
    asked: int | None = None,
) -> ThreadChoice:
    """The CPU thread count for training `model` on batches like `x` (see `runtime.choose_threads`); the copy of
    the model is made only when the count is measured."""

    made: list[Callable[[], None]] = []  # the copy is made only if the step runs (an asked or cached count: never)

    def step() -> None:
        if not made:
            made.append(training_step(model, loss_fn, x, y, device, precision, channels_last))
        made[0]()

    return choose_threads(step, workload_key(model, x, precision), asked=asked)
