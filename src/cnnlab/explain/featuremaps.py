"""The activation maps a layer produces for one image, drawn as a grid beside the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.explain._common import explaining, first_conv, spatial_output, to_input
from cnnlab.explain.plotting import figure, grid_shape, save, show
from cnnlab.tasks.segment import DecoderHead


def default_layer(model: nn.Module) -> str:
    """The first conv; for a segment model the decoder's last map, at the input's size (`head.to_input`: the maps
    its class layer reads in a U-Net, the upsampled class scores in an FCN)."""
    if isinstance(getattr(model, "head", None), DecoderHead):
        return "head.to_input"
    return first_conv(model)


def feature_maps(model: nn.Module, meta: dict, image: torch.Tensor, layer: str | None = None) -> tuple[str, np.ndarray]:
    """(layer name, activation maps (C, h, w)) of `layer` (default: `default_layer`) for one uint8 (C, H, W)
    image."""
    layer = layer or default_layer(model)
    with explaining(model), torch.no_grad():
        out = spatial_output(model, layer, to_input(image[None], meta))
    return layer, out[0].float().cpu().numpy()


def plot_feature_maps(
    maps: np.ndarray, image: np.ndarray, path: str | Path, layer: str = "", max_maps: int = 64
) -> Path:
    """The input (H, W, C on 0–1) on the left, the first `max_maps` maps on one colour scale on the right."""
    c, h, w = maps.shape
    n = min(c, max_maps)
    rows, cols = grid_shape(n)
    tile = 1.0 if cols <= 8 else 0.75
    fig = figure((2.8 + cols * tile + 0.8, max(2.8, rows * tile + 0.7)))
    left, right = fig.subfigures(1, 2, width_ratios=(2.8, cols * tile + 0.8))
    ax = left.subplots()
    show(ax, image)
    ax.set_title("input")
    axes = right.subplots(rows, cols, squeeze=False).ravel()
    lo, hi = float(maps[:n].min()), float(maps[:n].max())
    for i, ax in enumerate(axes):
        if i >= n:
            ax.axis("off")
            continue
        im = show(ax, maps[i], cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(str(i), fontsize=7, pad=2)
    right.colorbar(im, ax=axes.tolist(), shrink=0.8, label="activation")
    shown = f"first {n} of {c}" if n < c else f"{c}"
    right.suptitle(f"{layer}: {shown} maps of {h}×{w}")
    return save(fig, path)
