"""Why convolution and not a full matrix: the edge-detection example of Goodfellow, Bengio & Courville, *Deep
Learning* (2016), section 9.2 (figure 9.6). Each output pixel of a 320×280 image's edge map is a pixel minus its
left neighbour, the 2-tap kernel [−1, 1]: the 319×280 output takes 319·280·3 = 267,960 operations (two
multiplications and one addition each), while the same linear map written as a matrix has 320·280·319·280 > 8
billion entries, all but 2 per row zero.

The book shows a photograph; we hold no copy of it, so the image here is a generated scene of the same size. The
counts do not depend on the pixels."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure

WIDTH, HEIGHT = 320, 280  # the book's image: 320 wide, 280 tall
KERNEL = [[-1.0, 1.0]]  # cross-correlation: out[i, j] = x[i, j + 1] − x[i, j], a pixel minus its left neighbour


def counts(width: int = WIDTH, height: int = HEIGHT) -> dict[str, int]:
    """The book's numbers for a width×height image and the 2-tap kernel."""
    outputs = (width - 1) * height
    return {
        "outputs": outputs,
        "conv_ops": outputs * 3,  # 2 multiplications + 1 addition per output pixel
        "dense_entries": width * height * outputs,  # the matrix: one row per output, one column per input pixel
        "dense_flops": 2 * width * height * outputs,  # a multiply and an add per entry
        "sparse_nonzeros": 2 * outputs,  # two taps per row
    }


def scene(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> torch.Tensor:
    """A generated grey-level scene (height, width) on 0–1: a shaded background, a house-like block, a disk, stripes
    and mild noise, so that the edge map has vertical edges of several strengths."""
    yy, xx = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    img = 0.25 + 0.3 * yy / height
    img = torch.where((xx > 40) & (xx < 150) & (yy > 120) & (yy < 250), 0.85, img)  # a wall
    img = torch.where((xx > 80) & (xx < 110) & (yy > 180) & (yy < 250), 0.35, img)  # its door
    img = torch.where(((xx - 235) ** 2 + (yy - 90) ** 2) < 45**2, 0.95, img)  # a sun
    img = torch.where((yy > 255) & ((xx // 12) % 2 == 0), 0.6, img)  # a striped fence
    g = torch.Generator().manual_seed(seed)
    return (img + 0.02 * torch.randn(height, width, generator=g, dtype=torch.float64)).clamp(0, 1)


def edge_map(image: torch.Tensor) -> torch.Tensor:
    """(H, W) → (H, W − 1) by F.conv2d with the 2-tap kernel."""
    return F.conv2d(image[None, None], torch.tensor(KERNEL, dtype=image.dtype)[None, None])[0, 0]


def edge_matrix(width: int, height: int, dense: bool = False) -> torch.Tensor:
    """The same linear map as a ((W − 1)·H) × (W·H) matrix on the row-major flattened image: row (i, j) has −1 at
    pixel (i, j) and +1 at (i, j + 1). Sparse (COO) unless `dense`."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width - 1), indexing="ij")
    rows = (i * (width - 1) + j).flatten()
    cols = (i * width + j).flatten()
    index = torch.stack([torch.cat([rows, rows]), torch.cat([cols, cols + 1])])
    values = torch.cat([-torch.ones(rows.numel()), torch.ones(rows.numel())]).double()
    shape = ((width - 1) * height, width * height)
    matrix = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()
    return matrix.to_dense() if dense else matrix


def _timed(fn, repeat: int = 5) -> tuple[torch.Tensor, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    c = counts()
    say(
        f"Deep Learning (Goodfellow, Bengio & Courville), §9.2, figure 9.6: a {WIDTH}×{HEIGHT} image (width × height), "
        "each output pixel = the pixel minus its left neighbour (kernel [−1, 1]); our image is a generated scene"
    )
    say(f"  output {WIDTH - 1}×{HEIGHT} = {c['outputs']:,} pixels")
    say(f"  convolution: {WIDTH - 1}·{HEIGHT}·3 = {c['conv_ops']:,} operations (2 multiplications + 1 addition each)")
    say(
        f"  as a dense matrix: {WIDTH}·{HEIGHT}·{WIDTH - 1}·{HEIGHT} = {c['dense_entries']:,} entries "
        f"({c['dense_entries'] * 4 / 2**30:.0f} GiB in float32), {c['dense_flops']:,} multiply-adds to apply"
    )
    say(f"  as a sparse matrix: 2 non-zeros per row, {c['sparse_nonzeros']:,} entries")
    say(
        f"  to store: 2 kernel numbers instead of {c['dense_entries']:,} matrix entries ({c['dense_entries'] // 2:,} "
        f"times fewer); to compute: the dense product is {c['dense_flops'] / c['conv_ops']:,.0f} times the work of "
        "the convolution (the book rounds these to four billion and 60,000)"
    )
    image = scene()
    edges, t_conv = _timed(lambda: edge_map(image))
    matrix = edge_matrix(WIDTH, HEIGHT)
    product, t_sparse = _timed(lambda: torch.sparse.mm(matrix, image.reshape(-1, 1)).view(HEIGHT, WIDTH - 1))
    same = bool(torch.allclose(product, edges, atol=1e-12))
    say(
        f"  sparse matrix × image == F.conv2d: {same} ({matrix._nnz():,} stored entries); time on this CPU, best "
        f"of 5: conv {t_conv * 1e3:.2f} ms, sparse product {t_sparse * 1e3:.2f} ms"
    )
    small_w, small_h = 8, 6
    dense = edge_matrix(small_w, small_h, dense=True)
    small = image[:small_h, :small_w]
    small_same = bool(torch.allclose((dense @ small.reshape(-1)).view(small_h, small_w - 1), edge_map(small)))
    say(
        f"  a {small_w}×{small_h} crop as a dense {tuple(dense.shape)} matrix: {int((dense != 0).sum())} of "
        f"{dense.numel()} entries non-zero, product == conv: {small_same} (the full one would not fit in memory)"
    )
    path = _plot(image, edges, dense, c, out)
    say(f"figure: {path}")
    return {
        **c,
        "sparse_equals_conv": same,
        "dense_equals_conv": small_same,
        "conv_seconds": t_conv,
        "sparse_seconds": t_sparse,
        "figure": str(path),
    }


def _plot(image, edges, dense, c, out) -> Path:
    fig = figure((15, 4.2))
    axes = fig.subplots(1, 4, width_ratios=[1.15, 1.15, 1.4, 1.2])
    axes[0].imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"input {WIDTH}×{HEIGHT} (generated scene)", fontsize=9)
    lim = float(edges.abs().max())
    axes[1].imshow(edges.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1].set_title(f"⋆ [−1, 1]: {WIDTH - 1}×{HEIGHT} edge map", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2].imshow(dense.numpy(), cmap="RdBu_r", vmin=-1.5, vmax=1.5, interpolation="nearest")
    axes[2].set_title(
        f"the same map as a matrix, for an 8×6 image:\n{tuple(dense.shape)}, 2 non-zeros per row", fontsize=9
    )
    axes[2].set_xlabel("input pixel")
    axes[2].set_ylabel("output pixel")
    names = ["conv\noperations", "sparse matrix\nentries", "dense matrix\nentries", "dense\nmultiply-adds"]
    values = [c["conv_ops"], c["sparse_nonzeros"], c["dense_entries"], c["dense_flops"]]
    axes[3].bar(range(4), values, color=["C2", "C0", "C3", "C3"])
    axes[3].set_yscale("log")
    axes[3].set_xticks(range(4), names, fontsize=7)
    for i, v in enumerate(values):
        axes[3].text(i, v * 1.3, f"{v:,}" if v < 1e9 else f"{v / 1e9:.1f} bn", ha="center", fontsize=7)
    axes[3].set_ylim(1e4, 1e11)
    axes[3].set_title(f"{WIDTH}×{HEIGHT} image (log scale)", fontsize=9)
    fig.suptitle(
        "sparse interactions and shared weights: 267,960 operations instead of > 8 billion matrix entries "
        "(Deep Learning, §9.2)"
    )
    return save_figure(fig, out, "sparse")
