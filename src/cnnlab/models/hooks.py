"""One forward-hook helper for everything that looks inside a model: `record` the calls of named modules.

    with record(model, ["features.3"], stop=True) as rec:
        model(x)                      # ends early: nothing after features.3 runs, and the with-block stops here
    a = rec.output("features.3")      # its output at its first call, still in x's autograd graph

`record` registers a forward pre-hook and a forward hook on each chosen module and always removes them on leaving
the block, also when the forward pass raises. Every call of those modules becomes a `Call` (a module run twice,
such as a shared ReLU, gives two), with its inputs and output exactly as the module returned them: in the autograd
graph when gradients are on (`detach=True` drops it), and the very tensor the next layer receives, so an in-place
operation later in the pass (ReLU(inplace=True)) can overwrite it — `clone=True` hands the rest of the network a
copy instead, and `stop=True` does not run the rest at all.

Used by cnnlab.inspect (the per-layer summary) and cnnlab.explain (layer outputs, Grad-CAM's feature map).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor inside nested tuples / lists / dicts, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in tensors(item)]
    return []


def tensor_map(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to every tensor inside nested tuples / lists / dicts; other values kept."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(tensor_map(item, fn) for item in obj)
    if isinstance(obj, dict):
        return {k: tensor_map(v, fn) for k, v in obj.items()}
    return obj


@dataclass
class Call:
    """One call of a recorded module.

    index: the order in which the call began (a block comes before the layers inside it); parent: the index of the
    recorded call it ran inside, or None; inputs: the positional arguments; output: what the module returned.
    """

    name: str
    module: nn.Module
    index: int
    parent: int | None
    inputs: tuple = ()
    output: Any = None

    @property
    def out(self) -> torch.Tensor | None:
        """The first tensor of the output (the output itself for the usual single-tensor module)."""
        found = tensors(self.output)
        return found[0] if found else None

    @property
    def leaf(self) -> bool:
        return not any(True for _ in self.module.children())


@dataclass
class Recording:
    """The calls of the recorded modules, in the order they returned (see `Call.index` for the order they began)."""

    calls: list[Call] = field(default_factory=list)
    stopped: bool = False  # True when `stop` ended the forward pass early

    def first(self, name: str) -> Call | None:
        """The first call of the module called `name`, or None when it did not run."""
        return next((c for c in self.calls if c.name == name), None)

    def output(self, name: str) -> torch.Tensor:
        """First tensor output of `name` at its first call; a module the forward pass never ran is a ValueError."""
        call = self.first(name)
        if call is None or call.out is None:
            raise ValueError(f"layer '{name}' is not used in the model's forward pass; pick another")
        return call.out

    def input(self, name: str) -> torch.Tensor:
        """First tensor input of `name` at its first call (ValueError when it did not run)."""
        call = self.first(name)
        found = tensors(call.inputs) if call is not None else []
        if not found:
            raise ValueError(f"layer '{name}' is not used in the model's forward pass; pick another")
        return found[0]


class _Stop(Exception):
    """Raised by a hook to skip the rest of the forward pass; `record` swallows it."""


@contextmanager
def record(
    model: nn.Module,
    names: Iterable[str] | None = None,
    *,
    stop: bool = False,
    detach: bool = False,
    clone: bool = False,
    on_call: Callable[[Call], None] | None = None,
) -> Iterator[Recording]:
    """Record the calls of `model`'s sub-modules called `names` (None: every named sub-module) during the block.

    stop: once each of `names` has returned, skip the rest of the forward pass — the exception that does so ends the
    with-block and is swallowed (`Recording.stopped` says it happened). detach: store outputs without their
    autograd graph. clone: give the rest of the network a copy of each tensor output, so later in-place operations
    leave the stored one intact. on_call: called with each Call as its module returns, during the forward pass.
    An unknown name is a ValueError.
    """
    modules = dict(model.named_modules())
    chosen = [n for n in modules if n] if names is None else list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in modules or not n]
    if unknown:
        raise ValueError(f"no layer named {', '.join(map(repr, unknown))}")
    rec = Recording()
    waiting = set(chosen)
    begun = 0
    open_calls: list[Call] = []  # recorded calls in progress, outermost first

    def pre(name: str, module: nn.Module, args) -> None:
        nonlocal begun
        parent = open_calls[-1].index if open_calls else None
        open_calls.append(Call(name, module, begun, parent, args))
        begun += 1

    def post(module: nn.Module, args, output):
        call = open_calls.pop()
        kept = output
        if clone and isinstance(output, torch.Tensor):
            kept, output = output, output.clone()
        call.output = tensor_map(kept, torch.Tensor.detach) if detach else kept
        if detach:
            call.inputs = tensor_map(call.inputs, torch.Tensor.detach)
        rec.calls.append(call)
        if on_call is not None:
            on_call(call)
        waiting.discard(call.name)
        if stop and not waiting:
            raise _Stop
        return output if clone else None

    handles = []
    try:
        for name in chosen:
            m = modules[name]
            handles.append(m.register_forward_pre_hook(lambda mod, args, name=name: pre(name, mod, args)))
            handles.append(m.register_forward_hook(post))
        yield rec
    except _Stop:
        rec.stopped = True
    finally:
        for h in handles:
            h.remove()
