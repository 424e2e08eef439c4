"""Figures written by the verbs: training curves, confusion matrices, detection's precision–recall curves, the LR
range test, augmentation samples.

Built with matplotlib's object API (`matplotlib.figure.Figure`, drawn by its own Agg canvas when saved): no display
is needed, nothing is registered with pyplot and the backend is never changed, so importing this module keeps a
notebook's inline plots working.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cnnlab.files import atomic_write


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` atomically (a kill mid-write keeps the previous file), in the format of the name's suffix."""
    kind = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=kind))


def wrap_title(title: str, fig_width: float, fontsize: float = 12.0) -> str:
    """`title` broken into lines that fit a figure `fig_width` inches wide (long words such as a model written in
    the course notation are broken too, at hyphens first); at most 3 lines, the last one shortened with '…'."""
    chars = max(20, int(fig_width * 72 / (0.6 * fontsize)))
    lines = textwrap.wrap(title, chars, break_long_words=True, break_on_hyphens=True)
    if len(lines) > 3:
        lines = [*lines[:2], lines[2][: chars - 1] + "…"]
    return "\n".join(lines)


def epoch_ticks(epochs: list[float]) -> tuple[list[float], list[str]]:
    """Where the epoch axis is labelled, and how: each whole epoch (ten evenly spread past 20) as `1`, `2`, …; an
    epoch cut short (`0.916`) only when it comes first. A budget's last, partial epoch after whole ones keeps its
    point but no tick: `18.865` beside `18` ran into it even 0.865 epoch apart on a 19-epoch axis."""
    ticks = epochs if len(epochs) <= 20 else list(np.linspace(epochs[0], epochs[-1], 10).round())
    kept = [e for i, e in enumerate(ticks) if i == 0 or float(e).is_integer()]
    return kept, [f"{e:g}" for e in kept]


def plot_history(
    history: list[dict],
    path: str | Path,
    title: str = "",
    loss_note: str | None = None,
    metrics: tuple[str, ...] = ("accuracy",),
) -> Path:
    """Loss and each of `metrics` (a task's: accuracy, and e.g. iou) per epoch, train and validation, side by side.

    loss_note: said in the legend next to the train loss, e.g. "includes label smoothing 0.1" (a smoothed loss
    cannot fall to 0, so it sits above the validation loss)."""
    epochs = [h["epoch"] for h in history]
    keys = ("loss", *metrics)
    fig = Figure(figsize=(5 * len(keys), 4), layout="constrained")
    axes = fig.subplots(1, len(keys))
    for ax, key in zip(axes, keys, strict=True):
        note = f"\n({loss_note})" if loss_note and key == "loss" else ""
        ax.plot(epochs, [h[key] for h in history], "o-", label=f"train {key}{note}")
        if history and f"val_{key}" in history[0]:  # an epoch cut short has no validation point
            ax.plot(epochs, [h.get(f"val_{key}", np.nan) for h in history], "s-", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
        if epochs:
            ax.set_xticks(*epoch_ticks(epochs))
    if title:
        fig.suptitle(wrap_title(title, 5 * len(keys)))
    return save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Confusion matrix (rows: true class, columns: predicted), counts in cells, row-normalised colours."""
    matrix = np.asarray(matrix)
    n = len(classes)
    size = max(5.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    ax.set_title(wrap_title(title or "confusion matrix", size))  # long model names (course notation) wrap
    return save_figure(fig, path)


def plot_pr_curves(curves: list, classes: list[str], path: str | Path, title: str = "", iou: float = 0.5) -> Path:
    """Precision against recall per class (detection; `curves[k]`: precision at recall 0, 0.01, …, 1, or None for a
    class without objects), each labelled with its AP (the curve's mean)."""
    recall = np.linspace(0.0, 1.0, 101)
    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.subplots()
    for name, precision in zip(classes, curves, strict=True):
        if precision is not None:
            ax.plot(recall, precision, label=f"{name} (AP {np.mean(precision):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel(f"precision (IoU ≥ {iou:g})")
    ax.grid(alpha=0.3)
    if any(c is not None for c in curves):
        ax.legend(fontsize=8, loc="lower left")
    ax.set_title(wrap_title(title or "precision–recall", 6.5))
    return save_figure(fig, path)


def lr_find_view(lrs, losses, smooth, diverge: float = 4.0) -> tuple[int, tuple[float, float]]:
    """What `plot_lr_find` shows: the number of steps drawn and the y range.

    The curves stop before the first step where the smoothed loss
    - is not finite, or exceeds `diverge` × its minimum so far (the range test's own stopping rule; it checks every
      few steps, so a few more may have run), or
    - after its minimum, has climbed back half of its fall from the start: larger LRs only train worse, and with
      Adam a diverged classifier often plateaus near ln(classes) instead of exploding, so the 4× rule alone would
      draw on to the last LR of the range.
    The spike that ends a test therefore does not squash the rest, and the y range holds every raw and smoothed loss
    drawn, so no part of the raw curve is clipped."""
    losses, smooth = np.asarray(losses, dtype=float), np.asarray(smooth, dtype=float)
    n = len(losses)
    ok = np.isfinite(smooth) & np.isfinite(losses)
    over = ~ok | (smooth > diverge * np.minimum.accumulate(np.where(ok, smooth, np.inf)))
    if ok.any():
        best = int(np.argmin(np.where(ok, smooth, np.inf)))
        back = smooth[best] + 0.5 * max(smooth[0] - smooth[best], 0.0)
        over[best + 1 :] |= smooth[best + 1 :] > back
    end = max(int(np.argmax(over)), 2) if over.any() else n  # up to the last step within the limits
    shown = np.concatenate([losses[:end], smooth[:end]])
    shown = shown[np.isfinite(shown)] if np.isfinite(shown).any() else np.zeros(1)
    low, high = float(shown.min()), float(shown.max())
    pad = 0.05 * max(high - low, 1e-3)
    return end, (max(low - pad, 0.0) if low >= 0 else low - pad, high + pad)


def plot_lr_find(
    lrs, losses, smooth, suggestion: float, path: str | Path, title: str = "", diverge: float = 4.0
) -> Path:
    """Learning-rate range test: loss per step against the LR (log axis), smoothed, with the suggested LR marked;
    drawn up to where the smoothed loss diverges (`lr_find_view`), not on to the last LR of the range."""
    end, ylim = lr_find_view(lrs, losses, smooth, diverge)
    lrs, losses, smooth = (np.asarray(a, dtype=float)[:end] for a in (lrs, losses, smooth))
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(lrs, losses, color="0.6", lw=1, label="loss per step")
    ax.plot(lrs, smooth, lw=2, label="smoothed")
    ax.axvline(suggestion, color="C3", ls="--", label=f"suggested lr {suggestion:.2g}")
    ax.set_ylim(*ylim)
    ax.set_xscale("log")
    ax.set_xlim(lrs[0] / 1.5, lrs[-1] * 1.5)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(wrap_title(title or "learning-rate range test", 7))
    return save_figure(fig, path)


def plot_augment(originals, augmented, labels, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Each sample as a tile [original | augmented], titled with its class, under a title naming the spec.

    originals, augmented: uint8 (N, C, H, W) arrays or tensors (C = 1 or 3); labels (N,)."""
    originals, augmented = np.asarray(originals), np.asarray(augmented)
    labels = np.asarray(labels)
    n, c, h, w = originals.shape
    cols = max(1, int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / cols))
    tile_w = 2.0 * max(1.0, w / h)
    fig = Figure(figsize=(max(cols * tile_w, 6.0), rows * 1.45 + 0.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    gap = np.full((c, h, max(1, w // 14)), 255, dtype=np.uint8)
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        pair = np.concatenate([originals[i], gap, augmented[i]], axis=2).transpose(1, 2, 0)
        if c == 1:
            ax.imshow(pair[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(pair, interpolation="nearest")
        ax.set_title(classes[int(labels[i])], fontsize=8, pad=2)
        ax.set_xticks([w / 2 - 0.5, pair.shape[1] - w / 2 - 0.5], ["original", "augmented"], fontsize=6)
        ax.tick_params(length=0, pad=1)
    fig.suptitle(wrap_title(title or "augmented samples", fig.get_figwidth(), 11), fontsize=11)
    return save_figure(fig, path)
