"""Pooling, window by window: the 4×4 → 2×2 max-pool example, the same windows averaged, where the gradient goes
(max-pool routes it to each window's maximum), overlapping 3×3/2 windows and ceil mode, and what a 1-pixel shift
of the input does to the pooled output."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure
from cnnlab.lab._tables import draw_numbers, say_table, side_by_side, table
from cnnlab.models._notation_parse import pooled_side

# the 4×4 of the Stanford CS231n course notes' max-pooling figure (a widely reproduced public example; the deck's
# own 4×4 → 2×2 example may use other numbers): 2×2 windows, stride 2 → [[6, 8], [3, 4]]
IMAGE = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
SOURCE = "the 4×4 of the Stanford CS231n notes' max-pooling figure (public; the deck's own numbers may differ)"


def pool_windows(x: torch.Tensor, k: int = 2, s: int = 2) -> list[dict]:
    """Every k×k window at stride s of a 2-D map: its cell, values, max, mean and where the max is."""
    out = []
    for i in range(pooled_side(x.shape[0], k, s)):
        for j in range(pooled_side(x.shape[1], k, s)):
            w = x[i * s : i * s + k, j * s : j * s + k]
            r, c = divmod(int(w.argmax()), w.shape[1])
            out.append({"cell": (i, j), "window": w, "max": float(w.max()), "mean": float(w.mean()), "at": (r, c)})
    return out


def max_pool_gradient(x: torch.Tensor, k: int = 2, s: int = 2) -> torch.Tensor:
    """∂(Σ max-pool(x))/∂x by autograd: 1 at each window's maximum, 0 elsewhere."""
    x = x.clone().requires_grad_(True)
    F.max_pool2d(x[None, None], k, s).sum().backward()
    return x.grad


def _say_windows(say, cells: list[dict]) -> None:
    for c in cells:
        values = ", ".join(f"{v:g}" for v in c["window"].flatten().tolist())
        say(f"  out{c['cell']}: window [{values}] → max {c['max']:g}, mean {c['mean']:g}")


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    x = torch.tensor(IMAGE, dtype=torch.float64)
    say(f"input: {SOURCE}")
    say_table(say, "input 4×4:", x)
    cells = pool_windows(x)
    say("2×2 windows, stride 2: output side ⌊(4 − 2)/2⌋ + 1 = 2")
    _say_windows(say, cells)
    mx, avg = F.max_pool2d(x[None, None], 2)[0, 0], F.avg_pool2d(x[None, None], 2)[0, 0]
    grad = max_pool_gradient(x)
    for line in side_by_side(
        [("max-pool 2×2 (F.max_pool2d)", table(mx)), ("average-pool 2×2", table(avg)), ("∂Σmax/∂x", table(grad))]
    ):
        say(line)
    same = torch.tensor([[c["max"] for c in cells]]).view(2, 2)
    say(f"window maxima == F.max_pool2d: {bool(torch.equal(same, mx))}; no weights to learn (0 parameters)")
    say("backward: each output's gradient goes to its window's maximum only (1s above); the other 12 pixels get 0")
    sizes = {
        f"{k}×{k}/{s}{' ceil' if c else ''} on {n}×{n}{note}": pooled_side(n, k, s, 0, c)
        for n, k, s, c, note in (
            (4, 2, 2, False, ""),
            (7, 2, 2, False, ""),
            (7, 2, 2, True, " (the X/O example)"),
            (55, 3, 2, False, " (AlexNet's overlapping pools)"),
            (13, 3, 2, False, ""),
        )
    }
    say("output sides, ⌊(n − k)/s⌋ + 1 (ceil mode: ⌈(n − k)/s⌉ + 1, a partial window kept):")
    for name, side in sizes.items():
        say(f"  {name}: {side}")
    shifted = torch.roll(x, 1, 1)
    shifted[:, 0] = 0
    smx = F.max_pool2d(shifted[None, None], 2)[0, 0]
    kept = int((smx == mx).sum())
    say(
        f"input shifted right by 1 px: {kept} of 4 pooled values unchanged. A window keeps its value while its "
        "maximum stays inside it: max-pooling absorbs some shifts smaller than its window, not every shift."
    )
    path = _plot(x, cells, mx, avg, grad, shifted, smx, out)
    say(f"figure: {path}")
    return {
        "max": mx.tolist(),
        "mean": avg.tolist(),
        "gradient": grad.tolist(),
        "sizes": sizes,
        "shift_kept": kept,
        "figure": str(path),
    }


def _plot(x, cells, mx, avg, grad, shifted, smx, out) -> Path:
    fig = figure((15, 3.6))
    axes = fig.subplots(1, 6, width_ratios=[4, 2, 2, 4, 4, 2])
    draw_numbers(axes[0], x, "input 4×4, 2×2 windows", cmap="Blues", lim=float(x.max()))
    for c in cells:
        i, j = c["cell"]
        r, q = c["at"]
        axes[0].add_patch(_rect(2 * i - 0.5, 2 * j - 0.5, 2, f"C{1 + 2 * i + j}"))
        axes[0].add_patch(_rect(2 * i + r - 0.45, 2 * j + q - 0.45, 0.9, f"C{1 + 2 * i + j}", lw=1.2, ls="--"))
    draw_numbers(axes[1], mx, "max-pool", cmap="Blues", lim=float(x.max()))
    draw_numbers(axes[2], avg, "average-pool", cmap="Blues", lim=float(x.max()))
    draw_numbers(axes[3], grad, "gradient of Σ max:\nto each window's max", cmap="Blues", lim=1)
    draw_numbers(axes[4], shifted, "input shifted 1 px right", cmap="Blues", lim=float(x.max()))
    draw_numbers(axes[5], smx, "its max-pool", cmap="Blues", lim=float(x.max()))
    fig.suptitle("max-pooling 2×2 / stride 2: 4×4 → 2×2 (CS231n's example numbers); average pooling; the backward pass")
    return save_figure(fig, out, "pool")


def _rect(top: float, left: float, size: float, color: str, lw: float = 3, ls: str = "-"):
    from matplotlib.patches import Rectangle

    return Rectangle((left, top), size, size, fill=False, ec=color, lw=lw, ls=ls)
