"""Activation maximization: synthesise the input that excites a channel, a neuron or a class logit most — or, with
the DeepDream objective, a whole layer.

The course's algorithm — start from noise and repeat x ← x + α ∂a/∂x — with the regularisers that make the result
readable: random jitter (the image is rolled by a few pixels before each step, so the pattern cannot rely on exact
pixel positions), a small Gaussian blur every few steps (suppresses high-frequency noise), L2 decay towards the
data mean (x = 0 in the model's input space, also where the ascent starts) and clipping to the range real
pixels take.

Objectives: `channel` (the default) raises one channel's mean activation (a neuron, or a class logit) per image;
`layer` is DeepDream's (Mordvintsev, Olah & Tyka 2015): the mean square of the layer's whole output, all channels
and positions, so that whatever the layer already sees in the image is amplified. DeepDream starts from a photograph
(`start`) rather than from noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain._common import capture, explaining, logits_of, pixel_bounds, to_pixels
from cnnlab.explain.plotting import save, show, tile_grid
from cnnlab.io import RunMeta


@dataclass
class Maximized:
    """Result of `maximize`: images (B, H, W, C) on 0–1, and the target activation before and after, (B,).

    dead (B,): the targets no input raises: the gradient was zero at every step and the activation stayed at 0
    (a channel whose ReLU never fires, for example); their image is just the decayed starting noise.
    origins (B, H, W, C): the images the ascent started from, when they were given (DeepDream on a photo)."""

    images: np.ndarray
    start: np.ndarray
    end: np.ndarray
    labels: list[str]
    dead: np.ndarray | None = None
    origins: np.ndarray | None = None


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Depthwise 3×3 Gaussian blur of (B, C, H, W), same size (reflect padding)."""
    t = torch.arange(-1, 2, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k1[:, None] * k1[None, :]) / k1.sum() ** 2
    c = x.shape[1]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k.expand(c, 1, 3, 3).contiguous(), groups=c)


def _activation(model: nn.Module, x: torch.Tensor, layer: str | None, index: torch.Tensor) -> torch.Tensor:
    """Per image b the target a_b: channel index[b] of `layer` (spatial mean of a conv map, or one neuron of a
    vector output), or logit index[b] when layer is None. Shape (B,)."""
    if layer is None:
        out = logits_of(model, x)
    else:
        out = capture(model, layer, x)
    out = out.float()
    if index.max() >= out.shape[1]:
        raise ValueError(
            f"{'class' if layer is None else 'channel'} {int(index.max())} is out of range: "
            f"{'the model' if layer is None else repr(layer)} has {out.shape[1]}"
        )
    picked = out.gather(1, index.view(-1, *([1] * (out.ndim - 1))).expand(-1, 1, *out.shape[2:]))
    return picked.flatten(1).mean(1)  # (B,): a conv channel's mean over positions, a neuron itself


def _layer_energy(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """DeepDream's objective per image: the mean square of `layer`'s whole output (all channels and positions). (B,)"""
    return capture(model, layer, x).float().pow(2).flatten(1).mean(1)


OBJECTIVES = ("channel", "layer")


@dataclass
class Ascent:
    """The regularised gradient ascent's settings (see `maximize`)."""

    steps: int = 256
    lr: float = 0.1
    jitter: int = 2
    blur_every: int = 8
    blur_sigma: float = 0.5
    decay: float = 1e-3


def _ascend(score, x: torch.Tensor, lo, hi, ascent: Ascent, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x ← x + lr · ∂score/∂x (normalised per image) with jitter, decay, blur and clipping; returns the final x and
    which images ever had a non-zero gradient."""
    moved = torch.zeros(len(x), dtype=torch.bool)
    for step in range(ascent.steps):
        dy, dx = (int(v) for v in torch.randint(-ascent.jitter, ascent.jitter + 1, (2,), generator=gen))
        x.requires_grad_(True)
        a = score(torch.roll(x, (dy, dx), (2, 3)))
        (grad,) = torch.autograd.grad(a.sum(), x)  # images are independent in eval mode: one backward for all
        with torch.no_grad():
            moved |= grad.flatten(1).abs().amax(1) > 0
            grad /= grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x = x + ascent.lr * grad
            x = x * (1 - ascent.decay)  # L2 decay towards the data mean (0 in input space)
            if ascent.blur_every and (step + 1) % ascent.blur_every == 0:
                x = _gaussian_blur(x, ascent.blur_sigma)
            x = torch.maximum(torch.minimum(x, hi), lo)
    return x, moved


def maximize(
    model: nn.Module,
    meta: RunMeta,
    index: list[int],
    layer: str | None = None,
    steps: int = 256,
    lr: float = 0.1,
    jitter: int = 2,
    blur_every: int = 8,
    blur_sigma: float = 0.5,
    decay: float = 1e-3,
    seed: int = 0,
    objective: str = "channel",
    start: torch.Tensor | None = None,
) -> Maximized:
    """Gradient ascent from noise around the data mean on the activation of `layer`'s channels `index` (one image
    per entry), or on the class logits `index` when layer is None.

    objective: "channel" as above; "layer" raises the mean square of `layer`'s whole output (DeepDream), one image
    per start image, `index` unused. start: (B, C, H, W) images in the model's input space to start from instead
    of noise (one per entry of `index` with the channel objective).
    lr: step in input (normalised) units per step, applied to the gradient scaled to mean |g| = 1 per image, so a
    step moves a pixel by about lr whatever the size of the raw gradient. jitter: largest roll in pixels.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}'; choose from {', '.join(OBJECTIVES)}")
    if objective == "layer" and layer is None:
        raise ValueError("the layer objective needs a layer (e.g. --layer features.3)")
    target = torch.as_tensor(index, dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    if objective != "layer":  # one image first: an index out of range is refused before a batch
        with explaining(model), torch.no_grad():
            _activation(model, torch.zeros(1, *meta.input_size), layer, target.max().view(1))
    if objective == "layer":
        count = len(start) if start is not None else 1
        labels = [f"{layer}: mean a²"] * count
    else:
        count = len(target)
        labels = [meta.classes[i] if layer is None else f"channel {i}" for i in target.tolist()]
    if start is not None and len(start) != count:
        raise ValueError(f"{len(start)} start images for {count} targets: give one per target")

    def score(x: torch.Tensor) -> torch.Tensor:
        return _layer_energy(model, x, layer) if objective == "layer" else _activation(model, x, layer, target)

    with explaining(model):
        # start: the given images, or the model's neutral input, x = 0 (the data mean), plus a little noise (σ = 0.1
        # data std)
        x = start.float().clone() if start is not None else 0.1 * torch.randn(count, *meta.input_size, generator=gen)
        lo, hi = pixel_bounds(meta, x)
        x = torch.maximum(torch.minimum(x, hi), lo)
        origins = to_pixels(x, meta) if start is not None else None
        with torch.no_grad():
            first = score(x)
        ascent = Ascent(steps, lr, jitter, blur_every, blur_sigma, decay)
        x, moved = _ascend(score, x, lo, hi, ascent, gen)
        with torch.no_grad():
            end = score(x)
    dead = (~moved & (end <= 0)).numpy()
    return Maximized(to_pixels(x, meta), first.numpy(), end.numpy(), labels, dead, origins)


DEAD = "dead channel: no input raises it"


def _dead(result: Maximized) -> np.ndarray:
    return result.dead if result.dead is not None else np.zeros(len(result.labels), bool)


def format_change(result: Maximized) -> str:
    """One line per target: activation before → after (and the factor when the start is positive); a dead channel
    says so."""
    lines = []
    for label, s, e, dead in zip(result.labels, result.start, result.end, _dead(result), strict=True):
        factor = f" ({e / s:.1f}×)" if s > 0 else ""
        why = f" — {DEAD} (zero gradient at every step)" if dead else ""
        lines.append(f"{label}: activation {s:.4g} → {e:.4g}{factor}{why}")
    n_dead = int(_dead(result).sum())
    if n_dead:
        lines.append(
            f"{n_dead} of {len(result.labels)} dead: the layer's output is 0 for every input tried, so the "
            "gradient ascent cannot start (e.g. a ReLU whose input stays negative)"
        )
    return "\n".join(lines)


def plot_maximized(result: Maximized, path: str | Path, title: str = "") -> Path:
    """Grid of the synthesised inputs, each titled with its target and final activation; a dead channel's tile says
    so instead of showing the grey starting noise. Given start images (`origins`), each result follows its own."""
    n = len(result.labels)
    if result.origins is not None:
        fig, pairs = tile_grid(2 * n, cols=min(2 * n, 8), tile=1.6, title=title)
        for ax, origin in zip(pairs[0::2], result.origins, strict=True):
            show(ax, origin)
            ax.set_title("start image", fontsize=7, pad=2)
        axes = pairs[1::2]
    else:
        fig, axes = tile_grid(n, tile=1.6, title=title)
    rows = zip(axes, result.images, result.labels, result.start, result.end, _dead(result), strict=True)
    for ax, img, label, s, e, dead in rows:
        if dead:
            ax.set_facecolor("0.93")
            ax.set_box_aspect(1)  # square, as the image tiles
            ax.text(
                0.5,
                0.5,
                "dead channel:\nno input\nraises it",
                ha="center",
                va="center",
                fontsize=7,
                color="C3",
                transform=ax.transAxes,
            )
            ax.set_title(f"{label}\nalways 0", fontsize=7, pad=2)
            continue
        show(ax, img)
        ax.set_title(f"{label}\n{s:.2g} → {e:.3g}", fontsize=7, pad=2)
    return save(fig, path)
