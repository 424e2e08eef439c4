"""Why inputs are standardized: the same model, initialisation, batches and plain SGD step trained on raw 0–255
pixels, on pixels scaled to 0–1, and on standardized pixels ((x − mean) / std of the training set).

Why it matters, measured: for a linear model the curvature of the loss along the weights grows with the input's
second moment E[x xᵀ]; its largest eigenvalue bounds the step size that does not diverge (2/λ_max for squared
error). Pixels that are all positive put one huge eigenvalue along the mean image; 0–255 multiplies every eigenvalue
by 255² = 65,025; subtracting the mean and dividing by the std brings the largest one down to the size of the rest."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from cnnlab.data import channel_stats
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, StepLosses, fit, lesson_data, save_figure
from cnnlab.models import create_model

MODELS = {"linear": "FC10", "CNN": "CL16k3-MP4-CL32k3-MP4-FC64-FC10"}
LR = 0.01  # plain SGD (no momentum), the same step for every scaling


def scalings(mean: float, std: float) -> dict[str, tuple[list[float], list[float]]]:
    """(mean, std) on the 0–1 scale for each input scaling: Normalize computes (x/255 − mean) / std."""
    return {"raw 0–255": ([0.0], [1 / 255]), "0–1": ([0.0], [1.0]), "standardized": ([mean], [std])}


def second_moment_eigs(images: torch.Tensor, mean: float, std: float) -> dict[str, np.ndarray]:
    """Eigenvalues of E[x xᵀ] of the flattened images (N, C·H·W) under each scaling, largest first."""
    x01 = images.flatten(1).double() / 255
    out = {}
    for name, (m, s) in scalings(mean, std).items():
        x = (x01 - m[0]) / s[0]
        out[name] = torch.linalg.eigvalsh(x.T @ x / len(x)).flip(0).numpy()
    return out


def _train_all(train, test, classes: int, size: int, epochs: int, stats) -> dict:
    runs = {}
    for model_name, text in MODELS.items():
        for name, (m, s) in stats.items():
            steps = StepLosses()
            torch.manual_seed(0)
            model = create_model(text, num_classes=classes, img_size=size)
            trained = fit(model, train, epochs, batch_size=64, lr=LR, optimizer="gd", stats=(m, s), steps=steps)
            losses = np.array(steps.losses)
            finite = bool(np.isfinite(losses).all())
            runs[f"{model_name}, {name}"] = {
                "steps": losses,
                "first_epoch_loss": float(trained.history[0]["loss"]) if finite else math.inf,
                "diverged": not finite,
                "accuracy": trained.accuracy(test) if finite else float("nan"),
            }
    return runs


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, n_test, epochs = (512, 256, 1) if quick else (10000, 2000, 2)
    train, test = lesson_data(quick, data, n_train, n_test)
    (mean,), (std,) = channel_stats(train.images)
    size, classes = train.images.shape[-1], len(train.classes)
    say(f"data: {len(train)} training / {len(test)} test images of {size}×{size}; pixel mean {mean:.3f}, std {std:.3f}")
    eigs = second_moment_eigs(train.images, mean, std)
    say("eigenvalues of E[x xᵀ] (the curvature of a linear model's loss, up to a constant), largest / mean of all:")
    for name, e in eigs.items():
        say(f"  {name:<13} λ_max {e[0]:12.4g}   mean λ {e.mean():10.4g}   ratio {e[0] / e.mean():8.1f}")
    runs = _train_all(train, test, classes, size, epochs, scalings(mean, std))
    say(f"plain SGD, lr {LR}, batch 64, {epochs} epoch(s), the same initial weights and batches for every scaling:")
    for name, r in runs.items():
        status = (
            "diverged (loss not finite)"
            if r["diverged"]
            else (f"first-epoch loss {r['first_epoch_loss']:.3f}, test accuracy {r['accuracy']:.2%}")
        )
        say(f"  {name:<26} {status}")
    raw, unit, std_ = (eigs[k] for k in ("raw 0–255", "0–1", "standardized"))
    say(
        f"Why, in numbers: 0–255 pixels multiply every curvature by 255² = 65,025 (λ_max {raw[0]:.3g} against "
        f"{std_[0]:.3g} standardized), so a step that suits standardized inputs lands far beyond the stable "
        f"2/λ_max for raw ones and the loss blows up. Pixels that are all positive make one eigenvalue "
        f"{unit[0] / unit.mean():.0f}× the mean one, along the mean image; centring brings it to "
        f"{std_[0] / std_.mean():.0f}×, and one step size then suits more directions at once."
    )
    path = _plot(runs, eigs, out)
    say(f"figure: {path}")
    summary = {k: {f: v[f] for f in ("first_epoch_loss", "diverged", "accuracy")} for k, v in runs.items()}
    return {"runs": summary, "lambda_max": {k: float(v[0]) for k, v in eigs.items()}, "figure": str(path)}


def _plot(runs, eigs, out) -> Path:
    fig = figure((14, 4))
    axes = fig.subplots(1, 3)
    for ax, model_name in zip(axes[:2], MODELS, strict=True):
        for k, (name, r) in enumerate(runs.items()):
            if not name.startswith(model_name):
                continue
            steps = np.where(np.isfinite(r["steps"]), r["steps"], np.nan)
            label = name.split(", ")[1] + (" (diverged)" if r["diverged"] else f": {r['accuracy']:.1%} test")
            ax.plot(steps, color=f"C{k % 3}", lw=1, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("training loss (log scale)")
        ax.set_title(f"{model_name} ({MODELS[model_name]}), lr {LR}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.axhline(math.log(10), color="0.5", ls=":", lw=1)  # ln 10: guessing uniformly among 10 classes
    for k, name in ((1, "0–1"), (2, "standardized")):
        e = eigs[name]
        label = "raw 0–255 and 0–1 (the same shape, 255² apart)" if name == "0–1" else name
        axes[2].semilogy(np.arange(1, 51), e[:50] / e.mean(), "o-", ms=2, color=f"C{k}", label=label)
    axes[2].set_xlabel("eigenvalue rank")
    axes[2].set_ylabel("eigenvalue of E[x xᵀ] / their mean")
    axes[2].set_title("input second moment: centring lowers the top eigenvalue", fontsize=9)
    axes[2].legend(fontsize=7)
    axes[2].grid(alpha=0.3)
    fig.suptitle("standardizing the inputs: the same model and SGD step on raw, 0–1 and standardized pixels")
    return save_figure(fig, out, "standardize")
