"""Cross-correlation vs convolution, window by window; stride and padding with the output-size formula."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.edges import convolve, correlation_vs_convolution, cross_correlate
from cnnlab.explain.plotting import figure
from cnnlab.files import atomic_write
from cnnlab.lab._common import Report, save_figure

# a 5×5 image with a bright upper-left corner, and an asymmetric kernel (flipping it changes the result)
IMAGE = [[9, 9, 9, 0, 0], [9, 9, 9, 0, 0], [9, 9, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
KERNEL = [[1, 2, 0], [0, 1, 0], [0, 0, -1]]
VARIANTS = ((1, 0), (1, 1), (2, 0), (2, 1), (3, 1))  # (stride, padding)


def out_size(n: int, k: int, s: int, p: int) -> int:
    """The lectures' output size ⌊(n + 2p − k) / s⌋ + 1."""
    return (n + 2 * p - k) // s + 1


def windows(image: torch.Tensor, kernel: torch.Tensor) -> list[dict]:
    """Each output cell of the 'valid' cross-correlation: its position, window, element-wise products and sum."""
    kh, kw = kernel.shape
    cells = []
    for i in range(image.shape[0] - kh + 1):
        for j in range(image.shape[1] - kw + 1):
            window = image[i : i + kh, j : j + kw]
            products = window * kernel
            cells.append({"cell": (i, j), "window": window, "products": products, "sum": float(products.sum())})
    return cells


def _grid(a: torch.Tensor) -> list[str]:
    return ["  " + " ".join(f"{v:4.0f}" for v in row) for row in a.tolist()]


def run(quick: bool = True, out: Path | str = ".", echo=print, gif: bool = False) -> dict:
    say = Report(echo)
    image, kernel = torch.tensor(IMAGE, dtype=torch.float64), torch.tensor(KERNEL, dtype=torch.float64)
    n, k = image.shape[0], kernel.shape[0]
    say(f"image {n}×{n}:")
    for line in _grid(image):
        say(line)
    say(f"kernel {k}×{k} (as written; cross-correlation slides it unflipped):")
    for line in _grid(kernel):
        say(line)
    cells = windows(image, kernel)
    say("window by window (output cell = Σ window ⊙ kernel):")
    for c in cells:
        terms = " + ".join(
            f"{w:g}·{kv:g}"
            for w, kv in zip(c["window"].flatten().tolist(), kernel.flatten().tolist(), strict=True)
            if w and kv
        )
        say(f"  out{c['cell']} = {terms or '0'} = {c['sum']:g}")
    corr = cross_correlate(image, kernel)
    conv = convolve(image, kernel)
    by_hand = torch.tensor([c["sum"] for c in cells]).view_as(corr)
    say("cross-correlation (F.conv2d):")
    for line in _grid(corr):
        say(line)
    say("convolution (kernel flipped in both axes first):")
    for line in _grid(conv):
        say(line)
    say(f"window sums == F.conv2d: {bool(torch.equal(by_hand, corr))}")
    variants = []
    say("stride s and zero padding p: output side ⌊(n + 2p − k)/s⌋ + 1")
    for s, p in VARIANTS:
        res = F.conv2d(image[None, None], kernel[None, None], stride=s, padding=p)[0, 0]
        formula = out_size(n, k, s, p)
        variants.append({"stride": s, "padding": p, "output": res, "formula": formula, "side": res.shape[0]})
        say(f"  s={s} p={p}: ⌊({n} + 2·{p} − {k})/{s}⌋ + 1 = {formula}   torch: {res.shape[0]}×{res.shape[1]}")
    say()
    say(correlation_vs_convolution())
    path = _plot(image, kernel, corr, conv, variants, out)
    say(f"figure: {path}")
    result = {
        "correlation": corr.tolist(),
        "convolution": conv.tolist(),
        "window_sums": by_hand.tolist(),
        "variants": [{k: v for k, v in d.items() if k != "output"} for d in variants],
        "figure": str(path),
    }
    if gif:
        result["gif"] = str(_gif(image, kernel, cells, out))
        say(f"animation: {result['gif']}")
    return result


def _draw(ax, a: torch.Tensor, title: str, box: tuple[int, int, int] | None = None, cmap="RdBu_r") -> None:
    lim = float(np.nanmax(np.abs(a.numpy()))) or 1.0  # NaN: a cell not computed yet (blank)
    ax.imshow(a.numpy(), cmap=cmap, vmin=-lim, vmax=lim)
    for (i, j), v in np.ndenumerate(a.numpy()):
        if np.isnan(v):
            continue
        dark = cmap == "RdBu_r" and abs(v) > 0.55 * lim  # the colour map's ends: white digits stay readable
        ax.text(j, i, f"{v + 0:g}", ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if box is not None:
        from matplotlib.patches import Rectangle

        i, j, size = box
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), size, size, fill=False, ec="lime", lw=2.5))


def _plot(image, kernel, corr, conv, variants, out) -> Path:
    fig = figure((13, 5.6))
    axes = fig.subplots(2, 5)
    _draw(axes[0, 0], image, "image, window of out(0, 1)", (0, 1, kernel.shape[0]))
    _draw(axes[0, 1], kernel, "kernel")
    _draw(axes[0, 2], image[0:3, 1:4] * kernel, f"products → out(0, 1) = {corr[0, 1]:g}")
    _draw(axes[0, 3], corr, "cross-correlation\n(what conv layers compute)", (0, 1, 1))
    _draw(axes[0, 4], conv, "convolution\n(kernel flipped)")
    n, k = image.shape[0], kernel.shape[0]
    for ax, v in zip(axes[1], variants, strict=True):
        s, p = v["stride"], v["padding"]
        _draw(ax, v["output"], f"s={s}, p={p}: ⌊({n}+2·{p}−{k})/{s}⌋+1 = {v['formula']}")
    fig.suptitle("cross-correlation window by window; stride and padding change the output size")
    return save_figure(fig, out, "conv")


def _gif(image, kernel, cells, out) -> Path:
    """The window sliding over the image, one frame per output cell (pillow writes the GIF)."""
    import io

    from PIL import Image

    frames = []
    corr = torch.full((image.shape[0] - kernel.shape[0] + 1,) * 2, float("nan"), dtype=torch.float64)
    for c in cells:
        corr[c["cell"]] = c["sum"]
        fig = figure((8.5, 3.1))
        axes = fig.subplots(1, 3)
        i, j = c["cell"]
        _draw(axes[0], image, f"window at ({i}, {j})", (i, j, kernel.shape[0]))
        _draw(axes[1], c["products"], "window ⊙ kernel")
        _draw(axes[2], corr, f"out({i}, {j}) = {c['sum']:g}", (i, j, 1))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        frames.append(Image.open(io.BytesIO(buf.getvalue())).convert("P"))
    path = Path(out) / "lab-conv.gif"
    return atomic_write(
        path,
        lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=700, loop=0),
    )
