"""Figure helpers shared by the explanation plots: grids of square tiles, images of any channel count, saving."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 90  # modest: the PNGs are for reading on screen and for docs/images


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for n tiles."""
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def tile_grid(
    n: int, cols: int | None = None, tile: float = 1.2, title: str = "", extra_height: float = 0.0
) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure of n square tiles without ticks; the axes beyond n are hidden."""
    rows, cols = grid_shape(n, cols)
    width = max(cols * tile, 5.0)  # room for a two-line title above a narrow grid
    fig, axes = plt.subplots(rows, cols, figsize=(width, rows * tile + 0.5 * bool(title) + extra_height),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    flat = list(axes.ravel())
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, flat[:n]


def show(ax: plt.Axes, image: np.ndarray, **kw):
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


def save(fig: plt.Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write the figure as PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def scale01(a: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """Min–max scale to 0–1 (over `axis`, e.g. per kernel); a constant array becomes zeros."""
    lo = a.min(axis=axis, keepdims=True)
    span = a.max(axis=axis, keepdims=True) - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)
