"""Activation maximization with two objectives, on one freshly trained CNN: one channel at a time (the input that
excites a single feature detector most), and DeepDream's whole-layer objective (the mean square of every channel at
every position: whatever the layer already sees in an image is amplified), from noise and from a test image.
Both run through `cnnlab.explain.maximize` (`cnnlab explain RUN maximize --layer L [--objective layer] [--image
IMG]` on a trained run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.explain.maximize import maximize
from cnnlab.explain.plotting import figure, show
from cnnlab.io import RunMeta
from cnnlab.lab._common import Report, fit, lesson_data, save_figure
from cnnlab.models import create_model

MODEL = "CL16k5-MP4-CL32k5-MP4-FC64-FC10"
LAYER = "features.4"  # the second conv layer's ReLU: 32 maps


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, epochs, steps = (400, 2, 32) if quick else (12000, 2, 256)
    train, test = lesson_data(quick, data, n_train, 16)
    size = train.images.shape[-1]
    model = create_model(MODEL, num_classes=len(train.classes), img_size=size)
    trained = fit(model, train, epochs)
    meta = RunMeta.for_model(model, classes=tuple(train.classes), mean=tuple(trained.mean), std=tuple(trained.std))
    say(f"{MODEL} trained {epochs} epochs on {len(train)} images; layer {LAYER}, {steps} ascent steps")
    channels = maximize(model, meta, list(range(8)), LAYER, steps=steps)
    say("channel objective (each image raises one channel's mean activation):")
    for label, s, e in zip(channels.labels, channels.start, channels.end, strict=True):
        say(f"  {label}: {s:.3g} → {e:.3g}")
    noise = maximize(model, meta, [], LAYER, steps=steps, objective="layer")
    photo = trained.normalize(test.images[:1].float() / 255)
    # from a photo, no blur and no decay towards the mean: the photo itself keeps the result an image
    photo_ascent = {"steps": max(steps // 4, 8), "lr": 0.02, "blur_every": 0, "decay": 0.0}
    dreamed = maximize(model, meta, [], LAYER, objective="layer", start=photo, **photo_ascent)
    say(f"layer objective (DeepDream: the mean square of all of {LAYER}'s outputs):")
    say(f"  from noise:              {noise.start[0]:.3g} → {noise.end[0]:.3g} ({noise.end[0] / noise.start[0]:.0f}×)")
    say(
        f"  from a test image ({test.classes[int(test.labels[0])]}): {dreamed.start[0]:.3g} → {dreamed.end[0]:.3g} "
        f"({dreamed.end[0] / dreamed.start[0]:.1f}×)"
    )
    say(
        "The channel objective paints one detector's preferred pattern; the layer objective raises every detector "
        "at once, so it keeps and exaggerates what the image already has: the strokes and textures the layer found."
    )
    original = test.images[0].permute(1, 2, 0).numpy() / 255
    path = _plot(channels, noise, dreamed, original, out)
    say(f"figure: {path}")
    return {
        "channel_start": channels.start.tolist(),
        "channel_end": channels.end.tolist(),
        "layer_from_noise": [float(noise.start[0]), float(noise.end[0])],
        "layer_from_image": [float(dreamed.start[0]), float(dreamed.end[0])],
        "figure": str(path),
    }


def _plot(channels, noise, dreamed, original: np.ndarray, out) -> Path:
    fig = figure((13, 4.6))
    grid = fig.add_gridspec(2, 8)
    for k in range(8):
        ax = fig.add_subplot(grid[0, k])
        show(ax, channels.images[k])
        ax.set_title(f"{channels.labels[k]}\n{channels.start[k]:.2g} → {channels.end[k]:.2g}", fontsize=7)
    panels = [
        (original, "test image"),
        (dreamed.images[0], f"dreamed: layer {dreamed.start[0]:.2g} → {dreamed.end[0]:.2g}"),
        (dreamed.images[0][..., 0] - original[..., 0], "dreamed − original"),
        (noise.images[0], f"layer objective from noise\n{noise.start[0]:.2g} → {noise.end[0]:.2g}"),
    ]
    for k, (img, title) in enumerate(panels):
        ax = fig.add_subplot(grid[1, 2 * k : 2 * k + 2])
        if img.ndim == 2:  # the difference, centred on 0
            lim = float(np.abs(img).max()) or 1.0
            show(ax, img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        else:
            show(ax, img)
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"activation maximization of {LAYER}: one channel per image (top); DeepDream's whole-layer objective")
    return save_figure(fig, out, "dream")
