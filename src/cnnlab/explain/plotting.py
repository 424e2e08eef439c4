"""Figure helpers shared by the explanation plots: grids of square tiles, images of any channel count, saving.

Every explanation figure is a `matplotlib.figure.Figure` built through the object API (`figure`): nothing is
registered with pyplot and the backend is never changed (a notebook's inline plots keep working); `save` writes
the PNG with the figure's own Agg canvas.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cnnlab.plots import save_figure

DPI = 90  # modest: the PNGs are for reading on screen and for docs/images


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for n tiles."""
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def figure(figsize: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A new figure, not known to pyplot (no global state; garbage-collected when dropped)."""
    return Figure(figsize=figsize, layout=layout)


def tile_grid(
    n: int, cols: int | None = None, tile: float = 1.2, title: str = "", extra_height: float = 0.0
) -> tuple[Figure, list[Axes]]:
    """A figure of n square tiles without ticks; the axes beyond n are hidden."""
    rows, cols = grid_shape(n, cols)
    width = max(cols * tile, 5.0)  # room for a two-line title above a narrow grid
    fig = figure((width, rows * tile + 0.5 * bool(title) + extra_height))
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, flat[:n]


def show(ax: Axes, image: np.ndarray, **kw):
    """Draw an (H, W), (H, W, 1) or (H, W, 3) image on the 0–1 scale; one channel in gray unless a cmap is given."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        kw.setdefault("cmap", "gray")
        kw.setdefault("vmin", 0.0)
        kw.setdefault("vmax", 1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.imshow(image, interpolation="nearest", **kw)


def save(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write the figure as PNG, atomically (the figure is not registered anywhere: nothing to close)."""
    return save_figure(fig, path, dpi)


def scale01(a: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """Min–max scale to 0–1 (over `axis`, e.g. per kernel); a constant array becomes zeros."""
    lo = a.min(axis=axis, keepdims=True)
    span = a.max(axis=axis, keepdims=True) - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)
