"""Equivariance of convolution: conv(T x) = T conv(x) holds for shifts T, not for rotations or scalings.

A trained first conv layer is checked against each transformation (a 3-px shift, a 90° and a 30° rotation, a 2×
zoom), beside an isotropic kernel (a Laplacian of Gaussian, unchanged by rotation): shifting commutes with any
kernel; rotating commutes only with a kernel that is itself rotation-symmetric (the learned ones are not: they are
oriented); zooming commutes with neither, since the kernel keeps its size in pixels while the pattern grows. The
whole trained network's accuracy on shifted, rotated and zoomed test images shows what this leaves of invariance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, as01, fit, lesson_data, save_figure
from cnnlab.lab.invariance import shift
from cnnlab.models import create_model

MODEL = "CL16k5-MP4-CL32k3-MP4-FC64-FC10"
CHECKS = {"shift 3 px": ("shift", 3), "rotate 90°": ("rot90", 1), "rotate 30°": ("rotate", 30), "zoom 2×": ("zoom", 2)}
ACCURACY = {"shift": (0, 1, 2, 3, 4), "rotate": (0, 15, 30, 45, 90), "zoom": (0.7, 0.85, 1.0, 1.15, 1.3)}


def affine(x: torch.Tensor, degrees: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """Images (B, C, H, W) rotated by `degrees` (counter-clockwise as displayed, as torch.rot90) and zoomed by `scale` about their centre
    (bilinear; zeros come in at the borders)."""
    t = math.radians(degrees)
    theta = torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]], dtype=x.dtype) / scale
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def transform(x: torch.Tensor, kind: str, amount: float) -> torch.Tensor:
    if kind == "shift":
        return shift(x, int(amount))
    if kind == "rot90":
        return torch.rot90(x, int(amount), (2, 3))
    if kind == "rotate":
        return affine(x, degrees=amount)
    if kind == "zoom":  # a whole-number zoom by pixel repetition is exact: no interpolation error in the check
        return F.interpolate(x, scale_factor=int(amount), mode="nearest") if amount >= 1 else affine(x, scale=amount)
    raise ValueError(f"unknown transformation '{kind}'")


def log_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """A Laplacian-of-Gaussian kernel (size × size): a function of the distance to the centre only."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    d2 = r[:, None] ** 2 + r[None, :] ** 2
    k = (d2 / sigma**2 - 2) * torch.exp(-d2 / (2 * sigma**2))
    return k - k.mean()


def equivariance_error(weight: torch.Tensor, x: torch.Tensor, kind: str, amount: float) -> float:
    """‖conv(T x) − T conv(x)‖ / ‖T conv(x)‖ on the central half of the map, away from the borders where zeros came
    in (weight: (C_out, C_in, k, k); x: (B, C_in, H, W)); the convs pad 'same'."""
    pad = weight.shape[-1] // 2
    a = F.conv2d(transform(x, kind, amount), weight, padding=pad)
    b = transform(F.conv2d(x, weight, padding=pad), kind, amount)
    h, w = a.shape[-2:]
    centre = (..., slice(h // 4, h - h // 4), slice(w // 4, w - w // 4))
    return float((a - b)[centre].norm() / b[centre].norm())


def _accuracies(trained, x01: torch.Tensor, labels: torch.Tensor) -> dict[str, list[float]]:
    out = {}
    for kind, amounts in ACCURACY.items():
        if kind == "zoom":
            out[kind] = [trained.accuracy01(affine(x01, scale=a), labels) for a in amounts]
        elif kind == "rotate":
            out[kind] = [trained.accuracy01(affine(x01, degrees=a), labels) for a in amounts]
        else:
            out[kind] = [trained.accuracy01(shift(x01, a), labels) for a in amounts]
    return out


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, n_test, epochs = (400, 200, 2) if quick else (12000, 2000, 2)
    train, test = lesson_data(quick, data, n_train, n_test)
    size = train.images.shape[-1]
    trained = fit(create_model(MODEL, num_classes=len(train.classes), img_size=size), train, epochs)
    x01 = as01(test)
    x = trained.normalize(x01[:64]).double()
    learned = trained.model.features[0].weight.detach().double()
    iso = log_kernel(learned.shape[-1])[None, None].expand(1, x.shape[1], -1, -1).contiguous()
    say(
        f"{MODEL} trained {epochs} epochs on {len(train)} images; its first layer: {learned.shape[0]} learned "
        f"{learned.shape[-1]}×{learned.shape[-1]} kernels. Beside them: a Laplacian of Gaussian (rotation-symmetric)."
    )
    say("‖conv(T x) − T conv(x)‖ / ‖T conv(x)‖ on the centre of the maps, 64 test images:")
    errors = {}
    for name, (kind, amount) in CHECKS.items():
        errors[name] = {
            "learned": equivariance_error(learned, x, kind, amount),
            "isotropic": equivariance_error(iso, x, kind, amount),
        }
        say(
            f"  {name:<11} learned kernels {errors[name]['learned']:.3f}   isotropic kernel {errors[name]['isotropic']:.3f}"
        )
    say(
        "Shifts commute with every kernel (0 up to rounding). A 90° turn commutes only with a kernel that a 90° turn "
        "leaves unchanged: the isotropic one, not the learned, oriented ones. At 30° even the isotropic kernel "
        "differs a little: both sides interpolate, and a 5×5 grid is not perfectly round. A zoom commutes with "
        "neither: the kernel keeps its size in pixels while the pattern doubles."
    )
    accs = _accuracies(trained, x01, test.labels)
    say("test accuracy of the trained network on transformed test images (it never saw them transformed):")
    for kind, values in accs.items():
        say(f"  {kind:<7} " + "  ".join(f"{a:g}: {v:.1%}" for a, v in zip(ACCURACY[kind], values, strict=True)))
    say(
        "  pooling buys some tolerance to small shifts; nothing in the architecture does so for rotation or scale "
        "(only data augmentation or other architectures would)"
    )
    path = _plot(x, learned, errors, accs, out)
    say(f"figure: {path}")
    return {"errors": errors, "accuracy": accs, "figure": str(path)}


def _plot(x, learned, errors, accs, out) -> Path:
    fig = figure((14, 6.6))
    outer = fig.add_gridspec(2, 1)
    top, bottom = outer[0].subgridspec(1, 5), outer[1].subgridspec(1, 3)
    k = int(learned.flatten(1).norm(dim=1).argmax())  # the strongest kernel
    w = learned[k : k + 1]
    pad = w.shape[-1] // 2
    panels = [
        (x[0, 0], "test image x"),
        (F.conv2d(torch.rot90(x[:1], 1, (2, 3)), w, padding=pad)[0, 0], f"conv(rot90 x), kernel {k}"),
        (torch.rot90(F.conv2d(x[:1], w, padding=pad), 1, (2, 3))[0, 0], "rot90 conv(x): not the same"),
        (F.conv2d(shift(x[:1], 3), w, padding=pad)[0, 0], "conv(shift x) = shift conv(x)"),
    ]
    lim = max(float(img.abs().max()) for img, _ in panels[1:])
    for c, (img, title) in enumerate(panels):
        ax = fig.add_subplot(top[0, c])
        ax.imshow(img.numpy(), **({"cmap": "gray"} if c == 0 else {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(top[0, 4])
    names = list(errors)
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [errors[n]["learned"] for n in names], 0.4, label="learned kernels")
    ax.bar(pos + 0.2, [errors[n]["isotropic"] for n in names], 0.4, label="isotropic kernel")
    ax.set_xticks(pos, [n.replace(" ", "\n", 1) for n in names], fontsize=8)
    ax.set_ylabel("relative error")
    ax.set_title("‖conv(Tx) − T conv(x)‖ / ‖T conv(x)‖", fontsize=9)
    ax.legend(fontsize=7)
    units = {"shift": "pixels right", "rotate": "degrees", "zoom": "zoom factor"}
    for c, (kind, values) in enumerate(accs.items()):
        ax = fig.add_subplot(bottom[0, c])
        ax.plot(ACCURACY[kind], values, "o-")
        ax.set_xlabel(units[kind])
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title(f"accuracy on test images: {kind}", fontsize=9)
    fig.suptitle("convolution is shift-equivariant, not rotation- or scale-equivariant; the trained net's accuracy")
    return save_figure(fig, out, "equivariance")
