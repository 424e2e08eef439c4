"""Maximally activated patches: the dataset crops — each unit's receptive field — that excite one channel most."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.explain._common import explaining, map_field, spatial_output, to_input
from cnnlab.explain.plotting import save, show, tile_grid
from cnnlab.inspect import Field
from cnnlab.io import RunMeta


@dataclass
class Patch:
    """One crop: the dataset image it comes from, the unit's position in the layer's map, its activation, and
    the receptive field box (top, bottom, left, right; half-open, clipped to the image) with its pixels on 0–1."""

    index: int
    position: tuple[int, int]
    activation: float
    box: tuple[int, int, int, int]
    crop: np.ndarray


def receptive_field(
    model: nn.Module, meta: RunMeta, layer: str, channel: int, position: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Input box (top, bottom, left, right) that unit (channel, y, x) of `layer` can see, clipped to the image.

    From the kernel/stride/padding recurrence along the layers that lead to `layer` (`map_field`, the receptive
    fields of `cnnlab summary`), so the same for every channel; the whole image where the field is unknown.
    """
    field, _ = map_field(model, meta.input_size, lambda x: spatial_output(model, layer, x))
    return _box(field, position, meta)


def _box(field: Field | None, position: tuple[int, int], meta: RunMeta) -> tuple[int, int, int, int]:
    _, h, w = meta.input_size
    return field.box(position, (h, w)) if field is not None else (0, h, 0, w)


def top_patches(
    model: nn.Module, meta: RunMeta, images: torch.Tensor, layer: str, channel: int, top: int = 16, batch: int = 500
) -> list[Patch]:
    """The `top` images whose strongest unit of `layer`'s `channel` is highest, cropped to that unit's field.

    images: uint8 (N, C, H, W). One patch per image, so a single image cannot fill the grid.
    """
    best_val, best_pos = [], []
    with explaining(model), torch.no_grad():
        for chunk in images.split(batch):
            out = spatial_output(model, layer, to_input(chunk, meta))
            if channel >= out.shape[1]:
                raise ValueError(f"channel {channel} is out of range: layer '{layer}' has {out.shape[1]} channels")
            maps = out[:, channel].float().flatten(1)  # (B, h*w)
            val, pos = maps.max(1)
            best_val.append(val)
            best_pos.append(torch.stack((pos // out.shape[3], pos % out.shape[3]), 1))
    values, positions = torch.cat(best_val), torch.cat(best_pos)
    order = values.argsort(descending=True)[:top]
    field, _ = map_field(model, meta.input_size, lambda x: spatial_output(model, layer, x))
    patches = []
    for i in order.tolist():
        pos = tuple(int(v) for v in positions[i])
        t, b, l, r = _box(field, pos, meta)
        crop = images[i, :, t:b, l:r].permute(1, 2, 0).float().div(255).numpy()
        patches.append(Patch(i, pos, float(values[i]), (t, b, l, r), crop))
    return patches


def scale_note(patches: list[Patch]) -> str | None:
    """A note for the figure when the crops differ in size (a field clipped at the image border is smaller, and
    every crop is drawn to fill its tile, so the pixels of different tiles are drawn at different scales)."""
    sizes = sorted({p.crop.shape[:2] for p in patches})
    if len(sizes) < 2:
        return None
    (h0, w0), (h1, w1) = sizes[0], sizes[-1]
    return (
        f"crops differ in size ({h0}×{w0} to {h1}×{w1} pixels: receptive fields clipped at the image border); "
        "each fills its tile, so the tiles are at different scales (size under each)"
    )


def plot_patches(
    patches: list[Patch],
    path: str | Path,
    title: str = "",
    classes: list[str] | None = None,
    labels: torch.Tensor | None = None,
) -> Path:
    """Grid of the crops (aspect kept: a field clipped at the border stays narrower), titled with the activation (and
    class); when the crops differ in size, each tile gives its size and a note under the grid says so."""
    note = scale_note(patches)
    fig, axes = tile_grid(len(patches), tile=1.3, title=title, extra_height=0.4 if note else 0.0)
    for ax, p in zip(axes, patches, strict=True):
        show(ax, p.crop)
        name = f"\n{classes[int(labels[p.index])]}" if classes is not None and labels is not None else ""
        ax.set_title(f"#{p.index}: {p.activation:.3g}{name}", fontsize=7, pad=2)
        if note:
            ax.set_xlabel(f"{p.crop.shape[0]}×{p.crop.shape[1]}", fontsize=6, labelpad=1)
    if note:
        fig.supxlabel(textwrap.fill(note, 95), fontsize=7, color="0.3")
    return save(fig, path)
