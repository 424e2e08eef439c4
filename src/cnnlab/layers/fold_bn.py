"""Fold eval-mode BatchNorm into the convolution (or linear layer) that feeds it, keeping the model's class.

conv(x)·γ/σ + (β − μ·γ/σ) is again a convolution: new weight W·γ/σ (per output channel), new bias
(b − μ)·γ/σ + β. The BN becomes an Identity, so inference does one op instead of two, and the model keeps its
interface (forward_features, forward_head, …) — unlike a traced GraphModule.
"""

from __future__ import annotations

import copy

import torch.fx as fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

_PAIRS = ((nn.Conv2d, nn.BatchNorm2d), (nn.Conv1d, nn.BatchNorm1d), (nn.Linear, nn.BatchNorm1d))


def _pairs_by_trace(model: nn.Module) -> list[tuple[str, str]]:
    """(layer name, bn name) where the BN's only input is that layer's output and nothing else reads it."""
    graph = fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        prev = node.args[0]
        if prev.op != "call_module" or len(prev.users) > 1:
            continue
        layer, bn = modules[prev.target], modules[node.target]
        if any(isinstance(layer, a) and isinstance(bn, b) for a, b in _PAIRS):
            pairs.append((prev.target, node.target))
    return pairs


def _pairs_in_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    """Fallback for models fx cannot trace: adjacent (layer, BN) inside nn.Sequential containers."""
    pairs = []
    for name, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            items = list(seq.named_children())
            for (n1, a), (n2, b) in zip(items, items[1:], strict=False):
                if any(isinstance(a, x) and isinstance(b, y) for x, y in _PAIRS):
                    prefix = f"{name}." if name else ""
                    pairs.append((prefix + n1, prefix + n2))
    return pairs


FOLDED = "_cnnlab_bn_folded"  # set on a model fold_batchnorm returned: its BatchNorms left are not foldable


def is_folded(model: nn.Module) -> bool:
    """Whether `model` came out of `fold_batchnorm` (a BN that stays, e.g. one after a pooling, has no layer to
    merge into): folding it again would only copy and trace it once more."""
    return getattr(model, FOLDED, False)


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return `model` in eval mode with every foldable BatchNorm merged into its conv/linear layer (and marked,
    `is_folded`)."""
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    try:
        pairs = _pairs_by_trace(model)
    except Exception:  # data-dependent control flow etc.: fall back to what is certain
        pairs = _pairs_in_sequentials(model)
    for layer_name, bn_name in pairs:
        layer, bn = model.get_submodule(layer_name), model.get_submodule(bn_name)
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = (
            fuse_conv_bn_eval(layer, bn) if isinstance(layer, nn.Conv1d | nn.Conv2d) else fuse_linear_bn_eval(layer, bn)
        )
        model.set_submodule(layer_name, fused)
        model.set_submodule(bn_name, nn.Identity())
    setattr(model, FOLDED, True)
    return model
