"""The course's fixed edge filters, applied by cross-correlation (what a conv layer computes) to any image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure, save, show

# kernels as written (cross-correlation: output[i, j] = Σ kernel[u, v] · image[i + u, j + v])
EDGE_FILTERS: dict[str, list[list[float]]] = {
    "vertical edges": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],  # bright left of the edge → positive
    "horizontal edges": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],  # bright above → positive
    "diagonal edges ↘": [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]],  # bright upper-right → positive
    "diagonal edges ↗": [[1, 1, 0], [1, 0, -1], [0, -1, -1]],  # bright upper-left → positive
    "difference [1, −1]": [[1, -1]],  # x[j] − x[j + 1]: the smallest horizontal edge detector
}


def cross_correlate(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'valid' cross-correlation of a 2-D image (H, W) with a 2-D kernel (kh, kw) — exactly F.conv2d."""
    return F.conv2d(image[None, None].double(), kernel[None, None].double())[0, 0]


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'valid' convolution in the mathematical sense: cross-correlation with the kernel flipped in both axes."""
    return cross_correlate(image, kernel.flip(0, 1))


def apply_edge_filters(image: torch.Tensor) -> dict[str, np.ndarray]:
    """Each of EDGE_FILTERS cross-correlated with a grayscale image (H, W) on 0–1 → {name: response map}."""
    return {name: cross_correlate(image, torch.tensor(k)).float().numpy() for name, k in EDGE_FILTERS.items()}


def to_gray(image: torch.Tensor) -> torch.Tensor:
    """uint8 (C, H, W) → grayscale float (H, W) on 0–1 (ITU-R 601 luma for colour)."""
    x = image.double() / 255
    if x.shape[0] == 3:
        return 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    return x[0]


def correlation_vs_convolution() -> str:
    """A small printed example: a vertical step edge, the vertical-edge kernel, and both operations' outputs."""
    image = torch.tensor([[10.0, 10, 10, 0, 0, 0]] * 6)
    kernel = torch.tensor([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]])
    corr, conv = cross_correlate(image, kernel), convolve(image, kernel)

    def block(name: str, a: torch.Tensor) -> list[str]:
        return [name] + ["  " + " ".join(f"{v:5.0f}" for v in row) for row in a.tolist()]

    lines = block("image (6×6, bright left half):", image) + block("kernel (vertical edges):", kernel)
    lines += block("cross-correlation (what nn.Conv2d / F.conv2d compute; the kernel as written):", corr)
    lines += block("convolution (kernel flipped in both axes first):", conv)
    lines.append(
        "Same magnitude, opposite sign: flipping this kernel negates it. Conv layers learn their kernels, so "
        "the flip makes no difference to what they can learn, and deep-learning libraries skip it."
    )
    return "\n".join(lines)


def plot_edges(image: torch.Tensor, responses: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """The grayscale input beside each filter's response (diverging colours, one symmetric scale per map)."""
    n = len(responses) + 1
    fig = figure((3.0 * ((n + 1) // 2), 6.2))
    axes = fig.subplots(2, (n + 1) // 2)
    axes = axes.ravel()
    show(axes[0], image.numpy())
    axes[0].set_title("input (grayscale)")
    for ax, (name, r) in zip(axes[1:], responses.items(), strict=False):
        lim = float(np.abs(r).max()) or 1.0
        im = show(ax, r, cmap="RdBu_r", vmin=-lim, vmax=lim)
        kernel = np.array(EDGE_FILTERS[name])
        ax.set_title(
            f"{name}\n{kernel.shape[0]}×{kernel.shape[1]} kernel, output {r.shape[0]}×{r.shape[1]}", fontsize=9
        )
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle(title or "fixed filters by cross-correlation (red: positive response, blue: negative)")
    return save(fig, path)
