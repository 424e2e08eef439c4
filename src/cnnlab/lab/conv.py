"""Cross-correlation vs convolution, window by window; stride and padding with the output-size formula."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.explain.edges import convolve, correlation_vs_convolution, cross_correlate
from cnnlab.explain.plotting import figure
from cnnlab.files import atomic_write
from cnnlab.lab._common import Report, save_figure
from cnnlab.lab._tables import draw_numbers, say_table, table

# a 5×5 image with a bright upper-left corner, and an asymmetric kernel (flipping it changes the result)
IMAGE = [[9, 9, 9, 0, 0], [9, 9, 9, 0, 0], [9, 9, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
KERNEL = [[1, 2, 0], [0, 1, 0], [0, 0, -1]]
VARIANTS = ((1, 0), (1, 1), (2, 0), (2, 1), (3, 1))  # (stride, padding)

# `--slide`: the deck's 10×9 ⋆ 4×4 → 7×6 example. Its pixel values are in no document we hold, so this is our own
# example with those shapes: a binary "7" (10 rows × 9 columns) and a 4×4 vertical-edge kernel (+1 on its left
# half, −1 on its right half: bright-left / dark-right edges score positive)
SLIDE_IMAGE = [
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 1, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 0],
    [0, 0, 0, 0, 0, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 1, 1, 0, 0],
    [0, 0, 0, 0, 1, 1, 0, 0, 0],
    [0, 0, 0, 0, 1, 1, 0, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
]
SLIDE_KERNEL = [[1, 1, -1, -1]] * 4


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


def run(quick: bool = True, out: Path | str = ".", echo=print, gif: bool = False, slide: bool = False) -> dict:
    """The lesson on a 5×5 example of our own; `slide`: the deck's 10×9 ⋆ 4×4 → 7×6 worked example instead."""
    if slide:
        return run_slide(out, echo)
    say = Report(echo)
    image, kernel = torch.tensor(IMAGE, dtype=torch.float64), torch.tensor(KERNEL, dtype=torch.float64)
    n, k = image.shape[0], kernel.shape[0]
    say(f"image {n}×{n}:")
    for line in table(image):
        say(line)
    say(f"kernel {k}×{k} (as written; cross-correlation slides it unflipped):")
    for line in table(kernel):
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
    for line in table(corr):
        say(line)
    say("convolution (kernel flipped in both axes first):")
    for line in table(conv):
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


def _plot(image, kernel, corr, conv, variants, out) -> Path:
    fig = figure((13, 5.6))
    axes = fig.subplots(2, 5)
    draw_numbers(axes[0, 0], image, "image, window of out(0, 1)", box=(0, 1, kernel.shape[0], kernel.shape[0]))
    draw_numbers(axes[0, 1], kernel, "kernel")
    draw_numbers(axes[0, 2], image[0:3, 1:4] * kernel, f"products → out(0, 1) = {corr[0, 1]:g}")
    draw_numbers(axes[0, 3], corr, "cross-correlation\n(what conv layers compute)", box=(0, 1, 1, 1))
    draw_numbers(axes[0, 4], conv, "convolution\n(kernel flipped)")
    n, k = image.shape[0], kernel.shape[0]
    for ax, v in zip(axes[1], variants, strict=True):
        s, p = v["stride"], v["padding"]
        draw_numbers(ax, v["output"], f"s={s}, p={p}: ⌊({n}+2·{p}−{k})/{s}⌋+1 = {v['formula']}")
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
        draw_numbers(axes[0], image, f"window at ({i}, {j})", box=(i, j, kernel.shape[0], kernel.shape[0]))
        draw_numbers(axes[1], c["products"], "window ⊙ kernel")
        draw_numbers(axes[2], corr, f"out({i}, {j}) = {c['sum']:g}", box=(i, j, 1, 1))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        frames.append(Image.open(io.BytesIO(buf.getvalue())).convert("P"))
    path = Path(out) / "lab-conv.gif"
    return atomic_write(
        path,
        lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=700, loop=0),
    )


def _terms(window: torch.Tensor, kernel: torch.Tensor) -> str:
    """'w·k + …' for the products of a window that are not zero."""
    pairs = zip(window.flatten().tolist(), kernel.flatten().tolist(), strict=True)
    return " + ".join(f"{w:g}·{k:g}" if k > 0 else f"{w:g}·({k:g})" for w, k in pairs if w and k) or "0"


def run_slide(out: Path | str = ".", echo=print) -> dict:
    """The deck's 10×9 ⋆ 4×4 → 7×6 worked example (our own values with the slide's shapes), printed as tables."""
    say = Report(echo)
    image, kernel = torch.tensor(SLIDE_IMAGE, dtype=torch.float64), torch.tensor(SLIDE_KERNEL, dtype=torch.float64)
    (h, w), (kh, kw) = image.shape, kernel.shape
    say(
        f"the deck's worked example has a {h}×{w} image and a {kh}×{kw} kernel; its pixel values are not in any "
        "document we hold, so these are ours: a binary '7' and a vertical-edge kernel (+1 left half, −1 right half)"
    )
    say_table(say, f"image {h}×{w} (rows × columns):", image)
    say_table(say, f"kernel {kh}×{kw}:", kernel)
    oh, ow = out_size(h, kh, 1, 0), out_size(w, kw, 1, 0)
    say(f"output: rows ({h} − {kh})/1 + 1 = {oh}, columns ({w} − {kw})/1 + 1 = {ow} → {oh}×{ow}")
    cells = windows(image, kernel)
    corr = cross_correlate(image, kernel)
    best = max(cells, key=lambda c: c["sum"])
    for c in (cells[0], best):
        i, j = c["cell"]
        say(f"out({i}, {j}) = Σ window ⊙ kernel = {_terms(c['window'], kernel)} = {c['sum']:g}")
    say_table(say, f"output {oh}×{ow} (cross-correlation, what a conv layer computes):", corr)
    by_hand = torch.tensor([c["sum"] for c in cells]).view(oh, ow)
    say(f"window sums == F.conv2d: {bool(torch.equal(by_hand, corr))}")
    strided = F.conv2d(image[None, None], kernel[None, None], stride=2)[0, 0]
    say(
        f"stride 2: ⌊({h} − {kh})/2⌋ + 1 = {out_size(h, kh, 2, 0)} rows, ⌊({w} − {kw})/2⌋ + 1 = "
        f"{out_size(w, kw, 2, 0)} columns (torch: {strided.shape[0]}×{strided.shape[1]}):"
    )
    for line in table(strided):
        say(line)
    padded = F.conv2d(image[None, None], kernel[None, None], padding=1)[0, 0]
    say(
        f"padding 1: ({h} + 2 − {kh}) + 1 = {out_size(h, kh, 1, 1)} rows, {out_size(w, kw, 1, 1)} columns (torch: "
        f"{padded.shape[0]}×{padded.shape[1]})"
    )
    path = _plot_slide(image, kernel, corr, strided, best, out)
    say(f"figure: {path}")
    return {
        "output_shape": [oh, ow],
        "correlation": corr.tolist(),
        "window_sums": by_hand.tolist(),
        "strided": strided.tolist(),
        "padded_shape": list(padded.shape),
        "best": {"cell": list(best["cell"]), "sum": best["sum"]},
        "figure": str(path),
    }


def _plot_slide(image, kernel, corr, strided, best, out) -> Path:
    fig = figure((14, 4.4))
    axes = fig.subplots(1, 5, width_ratios=[9, 4, 4, 6, 3])
    (i, j), (kh, kw) = best["cell"], kernel.shape
    draw_numbers(
        axes[0], image, f"image {image.shape[0]}×{image.shape[1]}, window of out({i}, {j})", box=(i, j, kh, kw)
    )
    draw_numbers(axes[1], kernel, f"kernel {kh}×{kw}")
    draw_numbers(axes[2], best["products"], f"window ⊙ kernel\nΣ = {best['sum']:g}")
    draw_numbers(axes[3], corr, f"output {corr.shape[0]}×{corr.shape[1]} (stride 1)", box=(i, j, 1, 1))
    draw_numbers(axes[4], strided, f"stride 2: {strided.shape[0]}×{strided.shape[1]}")
    fig.suptitle(
        f"{image.shape[0]}×{image.shape[1]} ⋆ {kh}×{kw} → {corr.shape[0]}×{corr.shape[1]}: the slide's shapes, our values"
    )
    return save_figure(fig, out, "conv-slide")
