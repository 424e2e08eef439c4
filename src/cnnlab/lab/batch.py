"""Batch size: the same model trained for the same number of epochs with batches of several sizes (Adam, one
learning rate). A small batch makes many cheap, noisy updates per epoch; a large one few, accurate and, per image,
faster ones. Measured: test accuracy, updates, seconds per epoch, and the noise of the minibatch gradient, whose
variance falls as 1/B (times (N − B)/(N − 1) when drawing B of N images without replacement)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data import channel_stats
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, StepLosses, fit, lesson_data, save_figure
from cnnlab.models import create_model

MODEL = "CL16k3-MP4-CL32k3-MP4-FC64-FC10"


def gradient_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sizes, draws: int = 16, seed: int = 0) -> dict:
    """E‖g_B − g‖² over `draws` random batches of each size B (without replacement), g the gradient over all of x:
    the variance of the minibatch gradient, at the model's current weights."""

    def grad(idx: torch.Tensor) -> torch.Tensor:
        model.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    g = grad(torch.arange(len(x)))
    gen = torch.Generator().manual_seed(seed)
    out = {
        b: float(
            np.mean([(grad(torch.randperm(len(x), generator=gen)[:b]) - g).pow(2).sum().item() for _ in range(draws)])
        )
        for b in sizes
    }
    model.zero_grad()
    return out


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    sizes, n_train, n_test, epochs = ((8, 32, 128), 512, 256, 1) if quick else ((16, 64, 256, 1024), 10000, 2000, 2)
    train, test = lesson_data(quick, data, n_train, n_test)
    size, classes = train.images.shape[-1], len(train.classes)
    say(f"{MODEL}, Adam lr 1e-3 for every batch size, {epochs} epoch(s) of {len(train)} images; {len(test)} test")
    runs = {}
    for b in sizes:
        torch.manual_seed(0)
        steps = StepLosses()
        trained = fit(create_model(MODEL, num_classes=classes, img_size=size), train, epochs, batch_size=b, steps=steps)
        seconds = [h["seconds"] for h in trained.history]
        runs[b] = {
            "updates": len(steps.losses),
            "accuracy": trained.accuracy(test),
            "seconds_per_epoch": float(np.mean(seconds)),
            "images_per_s": float(np.mean([h["samples_per_s"] for h in trained.history])),
            "loss": steps.losses,
        }
        r = runs[b]
        say(
            f"  batch {b:>5}: {r['updates']:>5} updates, test accuracy {r['accuracy']:.2%}, {r['seconds_per_epoch']:.1f} s "
            f"per epoch ({r['images_per_s']:,.0f} images/s on this CPU)"
        )
    torch.manual_seed(0)
    model = create_model(MODEL, num_classes=classes, img_size=size)
    mean, std = channel_stats(train.images)
    probe = train.subset(slice(0, min(len(train), 2048)))
    x = (probe.images.float() / 255 - mean[0]) / std[0]
    noise = gradient_noise(model, x, probe.labels, sizes)
    n, b0 = len(probe), sizes[0]
    say(f"gradient noise at the initial weights, E‖g_B − g‖² over 16 batches drawn from {n} images:")
    for b, v in noise.items():
        expected = noise[b0] * (b0 / b) * ((n - b) / (n - b0))
        say(f"  batch {b:>5}: {v:.4g}   (1/B law from batch {b0}: {expected:.4g})")
    best = max(runs, key=lambda b: runs[b]["accuracy"])
    fast = min(runs, key=lambda b: runs[b]["seconds_per_epoch"])
    small, large = sizes[0], sizes[-1]
    say(
        f"Measured: the best test accuracy after {epochs} epoch(s) at batch {best} ({runs[best]['accuracy']:.1%}), "
        f"the fastest epoch at batch {fast} ({runs[fast]['seconds_per_epoch']:.1f} s). Batch {small} makes "
        f"{runs[small]['updates']} updates, each with {noise[small] / noise[large]:.0f}× the gradient variance of "
        f"batch {large}'s; batch {large} makes only {runs[large]['updates']}: at one learning rate and a fixed number "
        "of epochs too few updates cost accuracy, while very small batches cost time per image (the hardware "
        "computes a whole batch at once) and add noise."
    )
    path = _plot(runs, noise, len(train), out)
    say(f"figure: {path}")
    summary = {b: {k: v for k, v in r.items() if k != "loss"} for b, r in runs.items()}
    return {"runs": summary, "noise": noise, "figure": str(path)}


def _plot(runs, noise, n_train, out) -> Path:
    fig = figure((15, 3.9))
    axes = fig.subplots(1, 4)
    sizes = list(runs)
    for b, r in runs.items():
        seen = np.arange(1, len(r["loss"]) + 1) * b / n_train
        k = max(1, len(r["loss"]) // 40)
        smooth = np.convolve(r["loss"], np.ones(k) / k, mode="valid")
        axes[0].plot(seen[k - 1 :], smooth, label=f"batch {b}")
    axes[0].set_xlabel("epochs (images seen / training set)")
    axes[0].set_ylabel("training loss (smoothed)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("loss against images seen", fontsize=9)
    axes[1].semilogx(sizes, [runs[b]["accuracy"] for b in sizes], "o-", base=2)
    for b in sizes:
        axes[1].annotate(
            f"{runs[b]['updates']} updates",
            (b, runs[b]["accuracy"]),
            fontsize=7,
            xytext=(3, -10),
            textcoords="offset points",
        )
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title("accuracy after the same epochs", fontsize=9)
    axes[2].semilogx(sizes, [runs[b]["seconds_per_epoch"] for b in sizes], "o-", base=2, color="C1")
    axes[2].set_ylabel("seconds per epoch (this CPU)")
    axes[2].set_title("time per epoch", fontsize=9)
    axes[3].loglog(sizes, [noise[b] for b in sizes], "o-", base=2, color="C2", label="measured")
    axes[3].loglog(sizes, [noise[sizes[0]] * sizes[0] / b for b in sizes], "--", base=2, color="0.5", label="∝ 1/B")
    axes[3].set_ylabel("E‖g_B − g‖²")
    axes[3].set_title("minibatch gradient noise", fontsize=9)
    axes[3].legend(fontsize=7)
    for ax in axes[1:]:
        ax.set_xlabel("batch size")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("batch size: updates, accuracy, time and gradient noise at a fixed number of epochs")
    return save_figure(fig, out, "batch")
