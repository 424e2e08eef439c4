"""Activations, normalization layers and pooling picked by name, in one place."""

from __future__ import annotations

from torch import nn

_ACTS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "identity": nn.Identity,
}


def get_act(name: str) -> nn.Module:
    """A fresh activation module by name (relu, tanh, sigmoid, gelu, silu, leaky_relu, elu, identity)."""
    try:
        return _ACTS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation '{name}'; choose from {', '.join(_ACTS)}") from None


_NORMS = {
    "batchnorm": nn.BatchNorm2d,
    "none": None,
}


def get_norm(name: str | None, channels: int, eps: float = 1e-5) -> nn.Module:
    """A fresh 2-d normalization layer by name ('batchnorm', or 'none'/None for nn.Identity)."""
    key = "none" if name is None else name.lower()
    if key not in _NORMS:
        raise ValueError(f"unknown norm '{name}'; choose from {', '.join(_NORMS)}")
    cls = _NORMS[key]
    return nn.Identity() if cls is None else cls(channels, eps=eps)


def get_pool(name: str, kernel_size: int = 2, stride: int | None = None) -> nn.Module:
    """'max' or 'avg' pooling by name."""
    if name == "max":
        return nn.MaxPool2d(kernel_size, stride)
    if name == "avg":
        return nn.AvgPool2d(kernel_size, stride)
    raise ValueError(f"unknown pooling '{name}'; choose max or avg")
