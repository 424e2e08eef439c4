"""Figures written by the verbs: training curves and confusion matrices.

Built with matplotlib's object API (`matplotlib.figure.Figure`, drawn by its own Agg canvas when saved): no display
is needed, nothing is registered with pyplot and the backend is never changed, so importing this module keeps a
notebook's inline plots working.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_history(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train and validation, side by side."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], "o-", label=f"train {label}")
        if history and f"val_{key}" in history[0]:  # an epoch cut short has no validation point
            ax.plot(epochs, [h.get(f"val_{key}", np.nan) for h in history], "s-", label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        if epochs:
            ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(epochs[0], epochs[-1], 10).round())
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return Path(path)


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
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_title(title or "confusion matrix")
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_lr_find(lrs, losses, smooth, suggestion: float, path: str | Path, title: str = "") -> Path:
    """Learning-rate range test: loss per step against the LR (log axis), smoothed, with the suggested LR marked."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(lrs, losses, color="0.75", lw=1, label="loss per step")
    ax.plot(lrs, smooth, lw=2, label="smoothed")
    ax.axvline(suggestion, color="C3", ls="--", label=f"suggested lr {suggestion:.2g}")
    finite = np.asarray(smooth)[np.isfinite(smooth)]
    if finite.size:  # keep the diverging tail from squashing the interesting part
        ax.set_ylim(max(finite.min() - 0.1 * abs(finite.min()), 0), min(finite.max(), 4 * finite[0]) * 1.05)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "learning-rate range test")
    fig.savefig(path, dpi=110)
    return Path(path)
