"""The learned kernels of a convolutional layer, normalised per kernel and drawn as a grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.explain._common import find_layer, first_conv
from cnnlab.explain.plotting import save, scale01, show, tile_grid


def conv_filters(model: nn.Module, layer: str | None = None) -> tuple[str, np.ndarray]:
    """(layer name, kernels (out, in, kH, kW) scaled to 0–1 per kernel) of a conv layer (default: the first).

    Each output filter's kernel over all its input channels is min–max scaled as one: 0 is its most negative
    weight, 1 its most positive, so colour (RGB) kernels keep the balance between their channels.
    """
    layer = layer or first_conv(model)
    w = getattr(find_layer(model, layer), "weight", None)
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        shape = "×".join(map(str, w.shape)) if isinstance(w, torch.Tensor) else "none"
        raise ValueError(
            f"layer '{layer}' is not a 2-D convolution (weight shape {shape}); pass a conv layer "
            f"such as '{first_conv(model)}'"
        )
    return layer, scale01(w.detach().float().cpu().numpy(), axis=(1, 2, 3))


def plot_filters(
    kernels: np.ndarray, path: str | Path, layer: str = "", max_filters: int = 64, max_channels: int = 8
) -> Path:
    """Grid of kernels (out, in, kH, kW) on 0–1: RGB kernels in colour, others one row per filter, one column per input channel."""
    out_c, in_c, kh, kw = kernels.shape
    kernels = kernels[:max_filters]
    n = len(kernels)
    shown = f"first {n} of {out_c}" if n < out_c else f"{n}"
    head = f"{layer}: " if layer else ""
    tail = "\nper kernel: black = most negative weight, white = most positive"
    if in_c in (1, 3):
        fig, axes = tile_grid(n, tile=0.9, title=f"{head}{shown} filters {in_c}×{kh}×{kw}{tail}")
        for i, ax in enumerate(axes):
            show(ax, kernels[i].transpose(1, 2, 0))
            ax.set_title(str(i), fontsize=7, pad=2)
    else:
        cols = min(in_c, max_channels)
        chans = f"first {cols} of {in_c}" if cols < in_c else f"all {in_c}"
        fig, axes = tile_grid(
            n * cols, cols=cols, tile=0.8, title=f"{head}{shown} filters × {chans} input channels ({kh}×{kw}){tail}"
        )
        for i in range(n):
            for j in range(cols):
                ax = axes[i * cols + j]
                show(ax, kernels[i, j])
                if i == 0:
                    ax.set_title(f"in {j}", fontsize=7, pad=2)
                if j == 0:
                    ax.set_ylabel(f"filter {i}", fontsize=7)
    return save(fig, path)
