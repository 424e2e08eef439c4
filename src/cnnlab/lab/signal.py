"""1-D convolution on a time series: smoothing and edge detection on a noisy signal, and a 1-D CNN (the course
notation with ``dims=1``: Conv1d, MaxPool1d) classifying synthetic signals: sine, square and sawtooth waves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab import infer
from cnnlab.data import ImageSet
from cnnlab.explain.plotting import figure
from cnnlab.inspect import summary
from cnnlab.lab._common import Report, fit, save_figure
from cnnlab.models import create_model

KINDS = ("sine", "square", "sawtooth")
MODEL = "CL8k7-MP4-CL16k5-MP4-GAP-FC3"
SMOOTH = [1 / 5] * 5  # moving average
EDGE = [1.0, 0.0, -1.0]  # x[t] − x[t + 2]: a difference, the 1-D edge detector


def waves(n: int, length: int = 128, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n noisy periodic signals (random period 16–48 samples, random phase, amplitude 1) and their kind (0–2)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    t = np.arange(length)[None] / rng.uniform(16, 48, (n, 1)) + rng.uniform(0, 1, (n, 1))
    frac = t % 1
    shapes = np.stack([np.sin(2 * np.pi * t), np.where(frac < 0.5, 1.0, -1.0), 2 * frac - 1])
    x = shapes[labels, np.arange(n)] + noise * rng.standard_normal((n, length))
    return x, labels


def to_set(x: np.ndarray, labels: np.ndarray) -> ImageSet:
    """Signals on about −2…2 → uint8 N×1×1×L, so the in-memory loader and the Trainer carry them like images."""
    u8 = np.clip(np.rint((x + 2) / 4 * 255), 0, 255).astype(np.uint8)
    return ImageSet(torch.from_numpy(u8)[:, None, None], torch.from_numpy(labels), list(KINDS))


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, L) → (B, 1, L): the batch as the 1-D network takes it."""
    return x[:, :, 0]


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    rng = np.random.default_rng(1)
    step = np.r_[np.zeros(40), np.ones(50), np.zeros(38)]
    noisy = step + 0.15 * rng.standard_normal(step.size)
    sig = torch.tensor(noisy)[None, None]
    smooth = F.conv1d(sig, torch.tensor(SMOOTH, dtype=torch.float64)[None, None])[0, 0]
    edges = F.conv1d(sig, torch.tensor(EDGE, dtype=torch.float64)[None, None])[0, 0]
    rise, fall = int(edges.argmin()), int(edges.argmax())
    say(
        f"a noisy step (128 samples, 1 from t = 40 to 89) ⋆ moving average {len(SMOOTH)}: output length "
        f"128 − {len(SMOOTH)} + 1 = {smooth.numel()}; noise std {noisy[:40].std():.3f} → {smooth[:30].std():.3f}"
    )
    say(
        f"⋆ [1, 0, −1] (x[t] − x[t+2]): most negative at t = {rise} (the rise at 40), most positive at t = "
        f"{fall} (the fall at 90)"
    )
    n_train, n_test, epochs = (192, 96, 3) if quick else (2000, 1000, 6)
    train, test = to_set(*waves(n_train, seed=0)), to_set(*waves(n_test, seed=1))
    model = create_model(MODEL, num_classes=3, img_size=128, dims=1)
    info = summary(model, (1, 128))
    say(f"1-D CNN {MODEL} (dims=1): {info['params']:,} parameters, {info['macs']:,} MACs per signal")
    trained = fit(model, train, epochs, batch_size=32, lr=3e-3, transform=squeeze)

    def predict(data: ImageSet) -> torch.Tensor:
        x01 = data.images.float() / 255
        batches = (squeeze(trained.normalize(c)) for c in x01.split(500))
        return infer.run(model, batches, "cpu", "fp32", fold_bn=False).argmax(1)

    acc = (predict(test) == test.labels).float().mean().item()
    say(f"trained {epochs} epochs on {n_train} signals: test accuracy {acc:.2%} on {n_test} (chance 33 %)")
    x, labels = waves(30, seed=5)
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(len(KINDS))]  # one example of each kind
    shown = (x[first], labels[first], predict(to_set(x[first], labels[first])).tolist())
    path = _plot(noisy, smooth.numpy(), edges.numpy(), *shown, out)
    say(f"figure: {path}")
    return {
        "smooth_len": smooth.numel(),
        "rise": rise,
        "fall": fall,
        "params": info["params"],
        "macs": info["macs"],
        "accuracy": acc,
        "figure": str(path),
    }


def _plot(noisy, smooth, edges, examples, labels, predicted, out) -> Path:
    fig = figure((12, 4))
    axes = fig.subplots(1, 2)
    axes[0].plot(noisy, color="0.6", lw=1, label="noisy step")
    axes[0].plot(np.arange(len(smooth)) + 2, smooth, lw=2, label="⋆ moving average 5")
    axes[0].plot(np.arange(len(edges)) + 1, edges, lw=1.5, label="⋆ [1, 0, −1] (edges)")
    axes[0].legend(fontsize=8)
    axes[0].set_xlabel("t")
    axes[0].set_title("1-D cross-correlation: smoothing and edge detection", fontsize=9)
    for i, (x, k, p) in enumerate(zip(examples, labels, predicted, strict=True)):
        axes[1].plot(x + 3.5 * i, lw=1)
        axes[1].text(
            len(x) + 2, 3.5 * i, f"{KINDS[k]}\nCNN: {KINDS[p]} {'✓' if p == k else '✗'}", va="center", fontsize=8
        )
    axes[1].set_xlim(-2, len(examples[0]) + 30)
    axes[1].set_yticks([])
    axes[1].set_xlabel("t")
    axes[1].set_title(f"one test wave of each kind, and the answer of\nthe 1-D CNN {MODEL}", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_figure(fig, out, "signal")
