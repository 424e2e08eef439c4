"""Learned first-layer filters beside Gabor filters. A Gabor filter is a sinusoid under a Gaussian window,
g(x, y) = exp(−(x'² + γ² y'²) / 2σ²) · cos(2π x' / λ + ψ), with (x', y') the coordinates rotated by θ: an edge or bar
detector of one orientation and scale, the model of simple cells in the visual cortex. Each learned 7×7 kernel of a
trained CNN is matched against a bank of them (8 orientations, 4 wavelengths, even and odd phase) by the cosine of
the angle between the two (means removed; a kernel and its negative match alike), and so are the same kernels at
their random initialisation, the baseline a match must beat."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import torch

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, fit, lesson_data, save_figure
from cnnlab.models import create_model

MODEL = "CL32k7-MP4-CL64k3-MP4-FC128-FC10"
THETAS = tuple(k * 22.5 for k in range(8))  # degrees: 8 orientations
WAVELENGTHS = (3.0, 4.5, 6.0, 9.0)  # pixels per cycle
PHASES = (0.0, math.pi / 2)  # even (bar) and odd (edge)


def gabor(size: int, theta_deg: float, wavelength: float, phase: float, gamma: float = 0.5) -> torch.Tensor:
    """A size×size Gabor kernel; σ = 0.56·λ (a bandwidth of one octave), capped to fit the window."""
    sigma = min(0.56 * wavelength, size / 3)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    t = math.radians(theta_deg)
    xr, yr = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return torch.exp(-(xr**2 + gamma**2 * yr**2) / (2 * sigma**2)) * torch.cos(2 * math.pi * xr / wavelength + phase)


def bank(size: int) -> tuple[torch.Tensor, list[tuple[float, float, str]]]:
    """All Gabor kernels of the bank, mean-free and of unit norm (K, size, size), and their (θ, λ, phase) labels."""
    params = list(itertools.product(THETAS, WAVELENGTHS, PHASES))
    kernels = torch.stack([gabor(size, t, w, p) for t, w, p in params])
    labels = [(t, w, "even" if p == 0 else "odd") for t, w, p in params]
    return unit(kernels), labels


def unit(kernels: torch.Tensor) -> torch.Tensor:
    """(K, h, w) kernels with their mean removed and scaled to norm 1."""
    k = kernels.double().flatten(1)
    k = k - k.mean(1, keepdim=True)
    return (k / k.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(kernels).double()


def best_matches(kernels: torch.Tensor, gabors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each kernel (K, h, w): the largest |cosine| with any Gabor of the bank, and which one."""
    cos = unit(kernels).flatten(1) @ gabors.flatten(1).T
    best, index = cos.abs().max(1)
    return best, index


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, epochs = (400, 2) if quick else (12000, 2)
    train, _ = lesson_data(quick, data, n_train, 10)
    size = train.images.shape[-1]
    torch.manual_seed(0)
    model = create_model(MODEL, num_classes=len(train.classes), img_size=size)
    initial = model.features[0].weight.detach()[:, 0].clone()
    fit(model, train, epochs, seed=0)
    learned = model.features[0].weight.detach()[:, 0]
    gabors, labels = bank(learned.shape[-1])
    say(
        f"{MODEL} trained {epochs} epochs on {len(train)} images; its {len(learned)} first-layer 7×7 kernels against "
        f"{len(gabors)} Gabor filters ({len(THETAS)} orientations × {len(WAVELENGTHS)} wavelengths × even/odd)"
    )
    match_l, idx_l = best_matches(learned, gabors)
    match_0, _ = best_matches(initial, gabors)
    order = match_l.argsort(descending=True)
    say("the best-matching learned kernels (|cosine| with the closest Gabor; 1 = the same pattern):")
    for i in order[:8].tolist():
        t, w, p = labels[int(idx_l[i])]
        say(f"  kernel {i:>2}: {match_l[i]:.2f}  ~ Gabor θ = {t:g}°, λ = {w:g} px, {p}")
    say(
        f"mean best match: learned {match_l.mean():.2f} (median {match_l.median():.2f}), the same kernels at "
        f"initialisation {match_0.mean():.2f}; {int((match_l > 0.7).sum())} of {len(learned)} learned kernels above "
        f"0.7, {int((match_0 > 0.7).sum())} at initialisation"
    )
    moved = match_l.mean() - match_0.mean()
    verdict = (
        f"Training moved the kernels towards oriented edge and bar detectors (+{moved:.2f} in mean match)"
        if moved > 0.05
        else f"After this little training the kernels are hardly more Gabor-like than at random ({moved:+.2f})"
    )
    say(
        f"{verdict}. On small grey images like these many stay rough blobs; the clean Gabor-like filters of "
        "AlexNet's first layer were learned from 1.2 million natural colour images."
    )
    path = _plot(learned[order], gabors[idx_l[order]], initial[order], match_l[order], out)
    say(f"figure: {path}")
    return {
        "learned_match": match_l.tolist(),
        "initial_match": match_0.tolist(),
        "mean_learned": float(match_l.mean()),
        "mean_initial": float(match_0.mean()),
        "figure": str(path),
    }


def _plot(learned, matched, initial, match, out) -> Path:
    n = min(len(learned), 16)
    fig = figure((14, 6.2))
    axes = fig.subplots(4, n)
    rows = [
        (learned, "learned"),
        (matched, "closest Gabor"),
        (initial, "at initialisation"),
    ]
    for r, (kernels, name) in enumerate(rows):
        for c in range(n):
            k = kernels[c].numpy()
            lim = np.abs(k).max() or 1.0
            axes[r, c].imshow(k, cmap="gray", vmin=-lim, vmax=lim)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    for c in range(n):
        axes[0, c].set_title(f"{match[c]:.2f}", fontsize=8)
    gabors, _ = bank(learned.shape[-1])
    for c in range(n):  # a sample of the bank: orientations at the 4.5-px wavelength, even then odd
        axes[3, c].imshow(gabors[(c % 8) * len(WAVELENGTHS) * 2 + 2 + c // 8].numpy(), cmap="gray")
        axes[3, c].set_xticks([])
        axes[3, c].set_yticks([])
    axes[3, 0].set_ylabel("Gabor bank", fontsize=8)
    fig.suptitle("first-layer kernels sorted by their match with a Gabor filter (|cosine| above each)")
    return save_figure(fig, out, "gabor")
