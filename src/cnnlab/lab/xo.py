"""The X/O toy classifier: three 3×3 feature detectors → ReLU → 2×2 max-pool in ceil mode (7×7 → 4×4) → votes.

The network is the course-notation model ``CL3k3p0-MP4c-FC2`` on 9×9 inputs (pixels −1 / +1), built by
`create_model`; its weights are set by hand: the detectors are the lectures' diagonal ╲, centre ╳ and diagonal ╱
patterns, and each class's votes are the pooled maps of its clean prototype, scaled to sum to 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure
from cnnlab.lab._tables import draw_numbers, say_table, side_by_side, table
from cnnlab.models import create_model

N = 9
MODEL = "CL3k3p0-MP4c-FC2"
CLASSES = ("X", "O")
DETECTORS = {
    "diagonal ╲": [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]],
    "centre ╳": [[1, -1, 1], [-1, 1, -1], [1, -1, 1]],
    "diagonal ╱": [[-1, -1, 1], [-1, 1, -1], [1, -1, -1]],
}


def x_image(shift: int = 0, thick: bool = False) -> np.ndarray:
    img = -np.ones((N, N))
    for i in range(1, N - 1):
        for d in (0, 1) if thick else (0,):
            img[i, min(i + d, N - 1)] = img[i, max(N - 1 - i - d, 0)] = 1
    return np.roll(img, shift, axis=1)


def o_image(shift: int = 0, thick: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    r = np.hypot(yy, xx)
    img = np.where(np.abs(r - 3.0) < (1.0 if thick else 0.6), 1.0, -1.0)
    return np.roll(img, shift, axis=1)


def rotated(img: np.ndarray, degrees: float) -> np.ndarray:
    """Nearest-neighbour rotation about the centre (background −1 where the source falls outside)."""
    t = np.deg2rad(degrees)
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    sy = np.rint(np.cos(t) * yy - np.sin(t) * xx + (N - 1) / 2).astype(int)
    sx = np.rint(np.sin(t) * yy + np.cos(t) * xx + (N - 1) / 2).astype(int)
    inside = (sy >= 0) & (sy < N) & (sx >= 0) & (sx < N)
    return np.where(inside, img[sy.clip(0, N - 1), sx.clip(0, N - 1)], -1.0)


def variants() -> dict[str, tuple[np.ndarray, int]]:
    """Name → (9×9 image on −1/+1, true class index)."""
    return {
        "X": (x_image(), 0),
        "O": (o_image(), 1),
        "X shifted 1 px": (x_image(1), 0),
        "O shifted 1 px": (o_image(1), 1),
        "X shifted 2 px": (x_image(2), 0),
        "X rotated 20°": (rotated(x_image(), 20), 0),
        "X thicker": (x_image(thick=True), 0),
        "O thicker": (o_image(thick=True), 1),
        "X rotated 45° (a plus)": (rotated(x_image(), 45), 0),
    }


def build() -> torch.nn.Module:
    """The X/O network with its hand-set detectors and votes."""
    model = create_model(MODEL, num_classes=2, img_size=N).eval().requires_grad_(False)
    conv, fc = model.features[0], model.classifier[0]
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(list(DETECTORS.values()), dtype=torch.float32)[:, None] / 9)
        conv.bias.zero_()
        fc.weight.zero_()
        fc.bias.zero_()
        for k, img in enumerate((x_image(), o_image())):
            pooled = model.features(torch.tensor(img, dtype=torch.float32)[None, None]).flatten()
            fc.weight[k] = pooled / pooled.sum()  # votes: where the prototype's detectors fire, weighted
    return model


def run(quick: bool = True, out: Path | str = ".", echo=print, slide: bool = False) -> dict:
    """The X/O classifier on X, O and their variants; `slide`: the slides' feature-map tables as numbers."""
    if slide:
        return run_slide(out, echo)
    say = Report(echo)
    model = build()
    say(f"model {MODEL} on {N}×{N} inputs (−1 background, +1 strokes):")
    shapes, x = [], torch.zeros(1, 1, N, N)
    for m in model.features:
        x = m(x)
        shapes.append(f"{type(m).__name__} → {'×'.join(map(str, x.shape[1:]))}")
    say("  " + ";  ".join(shapes))
    pool = model.features[2]
    say(
        f"  max-pool 2×2/2 on 7×7: floor ⌊(7 − 2)/2⌋ + 1 = 3, ceil mode ⌈(7 − 2)/2⌉ + 1 = 4 → torch gives "
        f"{x.shape[-1]}×{x.shape[-2]} (ceil_mode={pool.ceil_mode})"
    )
    rows, results = [], {}
    for name, (img, label) in variants().items():
        t = torch.tensor(img, dtype=torch.float32)[None, None]
        with torch.no_grad():
            maps = model.features[1](model.features[0](t))
            pooled = model.features[2](maps)
            votes = model.classifier(pooled.flatten(1))[0]
        pred = int(votes.argmax())
        # why: how alike its pooled maps are to each prototype's (cosine), i.e. to the vote patterns
        agree = [float(torch.cosine_similarity(pooled.flatten(), model.classifier[0].weight[k], 0)) for k in range(2)]
        results[name] = {
            "votes": votes.tolist(),
            "pred": CLASSES[pred],
            "true": CLASSES[label],
            "right": pred == label,
            "similarity": agree,
        }
        rows.append((name, img, maps[0], pooled[0], votes, f"{CLASSES[pred]} {'✓' if pred == label else '✗'}"))
        say(
            f"  {name:<24} X {votes[0]:.3f}  O {votes[1]:.3f}  → {CLASSES[pred]} "
            f"{'✓' if pred == label else '✗'}  (pooled maps alike the X / O prototype's: "
            f"cos {agree[0]:.2f} / {agree[1]:.2f})"
        )
    say(
        "Why: a 1-px shift mostly moves a detector's peak inside its 2×2 pool window, so the cells that vote stay "
        "lit; 2 px moves the peaks into neighbouring windows, which vote for the other class as much. A small "
        "rotation or a thicker stroke keeps enough of the ╲ ╳ ╱ matches; at 45° the diagonals become a plus that "
        "none of the detectors matches."
    )
    path = _plot(rows, out)
    say(f"figure: {path}")
    return {"pool_out": list(x.shape[1:]), "variants": results, "figure": str(path)}


def _plot(rows, out) -> Path:
    fig = figure((12, 1.45 * len(rows) + 0.6))
    axes = fig.subplots(len(rows), 8)
    for r, (name, img, maps, pooled, votes, verdict) in enumerate(rows):
        panels = [(img, f"{name}", -1, 1)]
        panels += [(maps[k].numpy(), f"{d} map 7×7", 0, 1) for k, d in enumerate(DETECTORS)]
        panels += [(pooled[k].numpy(), "pooled 4×4", 0, 1) for k in range(3)]
        for ax, (a, title, lo, hi) in zip(axes[r], panels, strict=False):
            ax.imshow(a, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
        ax = axes[r, 7]
        ax.barh([1, 0], votes.numpy(), color=["C0", "C1"])
        ax.set_yticks([1, 0], CLASSES)
        ax.set_xlim(0, 1)
        ax.set_title(f"votes → {verdict}", fontsize=8)
    fig.suptitle("X/O: 3 detectors → ReLU → 2×2 max-pool, ceil mode (7×7 → 4×4) → fully connected votes")
    return save_figure(fig, out, "xo")


def run_slide(out: Path | str = ".", echo=print) -> dict:
    """The slides' X/O tables: the 9×9 X, each 3×3 filter, its 7×7 feature map (mean of the 9 products), and the
    4×4 map after ReLU and the 2×2 max-pool in ceil mode; then the votes for X and O."""
    say = Report(echo)
    model = build()
    say(
        "The X/O example as published in Brandon Rohrer's 'How convolutional neural networks work' (2016), the "
        "public version of the deck's X/O tables: a 9×9 X on −1 (background) / +1 (stroke), three 3×3 filters of ±1, each map cell the mean of the "
        "9 products (Σ/9). Every value below is computed here; 7/9 = 0.777… is shown truncated to 0.77, as the "
        "slides show it."
    )
    x = torch.tensor(x_image(), dtype=torch.float32)[None, None]
    say_table(say, "image 9×9:", x[0, 0], "+.0f")
    with torch.no_grad():
        maps = model.features[0](x)[0]
        pooled = model.features[2](model.features[1](maps[None].clone()))[0]  # the ReLU works in place
    for k, (name, filt) in enumerate(DETECTORS.items()):
        say_table(say, f"filter {name}:", filt, "+.0f")
        say_table(say, f"feature map {name}, 7×7 (Σ window ⊙ filter / 9):", maps[k], "t2")
    blocks = [(f"{name}: ReLU → max-pool 4×4", table(pooled[k], "t2")) for k, name in enumerate(DETECTORS)]
    for line in side_by_side(blocks):
        say(line)
    votes = {}
    for name, img in (("X", x_image()), ("O", o_image())):
        with torch.no_grad():
            votes[name] = model(torch.tensor(img, dtype=torch.float32)[None, None])[0].tolist()
        say(f"votes for the {name} image: X {votes[name][0]:.2f}, O {votes[name][1]:.2f}")
    path = _plot_slide(x[0, 0], maps, pooled, out)
    say(f"figure: {path}")
    return {"maps": maps.tolist(), "pooled": pooled.tolist(), "votes": votes, "figure": str(path)}


def _plot_slide(image, maps, pooled, out) -> Path:
    fig = figure((15, 10.5))
    grid = fig.add_gridspec(3, 4, width_ratios=[9, 3, 7, 4])
    draw_numbers(fig.add_subplot(grid[:, 0]), image, "image 9×9 (−1 / +1)", "+.0f", fontsize=9)
    for k, name in enumerate(DETECTORS):
        filt = torch.tensor(DETECTORS[name], dtype=torch.float32)
        draw_numbers(fig.add_subplot(grid[k, 1]), filt, f"filter {name}", "+.0f", fontsize=9)
        draw_numbers(fig.add_subplot(grid[k, 2]), maps[k], "feature map 7×7 (Σ/9)", "t2", fontsize=8, lim=1)
        draw_numbers(fig.add_subplot(grid[k, 3]), pooled[k], "ReLU → max-pool 2×2, ceil: 4×4", "t2", lim=1)
    fig.suptitle("X/O: the slides' feature maps as numbers (7/9 shown truncated as 0.77)")
    return save_figure(fig, out, "xo-slide")
