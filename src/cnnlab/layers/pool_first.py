"""A model's forward pass with each ReLU that feeds a max pool moved after the pool: what the Trainer runs, and what
a `TorchClassifier` (evaluate, predict, serve) runs on its prepared copy.

Max pooling commutes with ReLU (ReLU is monotone: max(relu(a), relu(b)) = relu(max(a, b)), also in bf16), so
``conv → ReLU → 2×2 max`` and ``conv → 2×2 max → ReLU`` give the same values and the same gradients (the pool picks
the same element, or one the ReLU zeroes either way), while the second runs the ReLU and its backward on a quarter
of the values. On a CPU the element-wise work on the large first maps is much of a small net's step: the fast
recipe's bf16 step ran 1.08–1.09× as fast, its whole 30-second runs took 1.06–1.14× the steps (BENCHMARKS.md, "ReLU
after the pooling").

The user's model is left as it is — its layers, names, hooks and feature maps keep the course's order; only the
Trainer's (and a classifier's) forward pass runs a torch.fx trace of it that shares its modules and parameters.
Where the trace would not be the same computation it is not used: a model fx cannot trace, a ReLU whose input is
read elsewhere (an in-place ReLU changes that input), a hook on a moved ReLU or on a module the trace runs through
(segmentation's taps), and each pattern of training flags gets its own trace (forward passes that branch on
``self.training``).
"""

from __future__ import annotations

import torch
from torch import fx, nn

_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_RELU_FUNCTIONS = (torch.relu, torch.relu_, nn.functional.relu)


def _relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules[node.target]) is nn.ReLU
    return node.op == "call_function" and node.target in _RELU_FUNCTIONS


def _pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    m = modules.get(node.target) if node.op == "call_module" else None
    return isinstance(m, _POOLS) and not m.return_indices


def move_relus(gm: fx.GraphModule) -> list[str]:
    """Rewrite `gm` so that each ReLU feeding only a max pool runs after it; returns the moved ReLU modules' names
    (functional ReLUs count as ''). A ReLU is moved only where its input has no other reader and its output only
    the pool."""
    modules = dict(gm.named_modules())
    moved = []
    for relu in list(gm.graph.nodes):
        if not _relu(relu, modules) or len(relu.users) != 1:
            continue
        pool = next(iter(relu.users))
        source = relu.args[0] if relu.args else None
        if not _pool(pool, modules) or pool.args[0] is not relu or not isinstance(source, fx.Node):
            continue
        if len(source.users) != 1:  # the input is read elsewhere too (and an in-place ReLU would have changed it)
            continue
        pool.replace_all_uses_with(relu)
        pool.update_arg(0, source)
        relu.update_arg(0, pool)
        pool.append(relu)  # moves the ReLU node right after the pool
        moved.append(relu.target if relu.op == "call_module" else "")
    if moved:
        gm.graph.lint()
        gm.recompile()
    return moved


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks)


class PoolFirst:
    """Calls `model` as it is, or the equivalent trace with its ReLUs after their pools where that is the same."""

    def __init__(self, model: nn.Module):
        self.model = model
        # one trace per (module, training flag) pattern: a replaced module or a forward that branches on
        # self.training is traced again; None where nothing moved or fx could not trace the model
        self._traces: dict[tuple, tuple[fx.GraphModule, set[str]] | None] = {}
        self._moved: set[nn.Module] = set()  # the ReLU modules some trace runs after their pool

    def _trace(self, modules: list[tuple[str, nn.Module]]) -> tuple[fx.GraphModule, set[str]] | None:
        key = tuple((id(m), m.training) for _, m in modules)
        if key not in self._traces:
            try:
                gm = fx.symbolic_trace(self.model)
                moved = move_relus(gm)
            except Exception:  # noqa: BLE001 — anything fx cannot trace runs as it is
                gm, moved = None, []
            called = {n.target for n in gm.graph.nodes if n.op == "call_module"} if moved else set()
            self._traces[key] = (gm, called) if moved else None
            self._moved |= {self.model.get_submodule(name) for name in moved if name}
        return self._traces[key]

    def trace(self) -> None:
        """Trace now, for the model's modules and training flags as they are (a call with the same pattern reuses
        it). Tracing patches torch.nn.Module.__call__ for its duration: where other threads run models, trace
        before they start rather than on a first call."""
        self._trace(list(self.model.named_modules()))

    def __call__(self, x: torch.Tensor):
        modules = list(self.model.named_modules())  # one walk of the modules per step (microseconds)
        traced = self._trace(modules)
        if traced is None or self._unsafe(modules, traced[1]):
            return self.model(x)
        return traced[0](x)

    def _unsafe(self, modules: list[tuple[str, nn.Module]], called: set[str]) -> bool:
        """A hook the trace would not honour: on a moved ReLU (it would see the pooled map) or on a module the
        trace does not call as one (the model itself, a block it runs through)."""
        if torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks:
            return True
        return any(_hooked(m) and (name not in called or m in self._moved) for name, m in modules)


def pool_first(model: nn.Module) -> nn.Module | PoolFirst:
    """The forward pass of `model` to run: `PoolFirst(model)` where a ReLU feeds a max pool, else `model` itself."""
    has_pool = any(isinstance(m, _POOLS) for m in model.modules())
    return PoolFirst(model) if has_pool else model
