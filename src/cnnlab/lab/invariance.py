"""Shift equivariance of conv layers, the partial invariance pooling adds, and the inductive-bias experiment:
an MLP and a CNN trained on the images as they are and with one fixed shuffle of their pixels."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, as01, fit, lesson_data, save_figure
from cnnlab.models import create_model

SHIFTS = (0, 1, 2, 3, 4)
CNN = "CL16k3-MP4-CL32k3-MP4-FC64-FC10"
MLP = "FC256-FC10"


def shift(x: torch.Tensor, dx: int, dy: int = 0) -> torch.Tensor:
    """Images (B, C, H, W) moved dx pixels right and dy down, zeros (black) filling in."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


def equivariance_error(conv: torch.nn.Conv2d, x: torch.Tensor, dx: int) -> tuple[float, float]:
    """Relative difference between conv(shift(x)) and shift(conv(x)) inside the borders, and between the
    globally max-pooled features (invariance) of x and of shift(x)."""
    with torch.no_grad():
        a, b = conv(shift(x, dx)), shift(conv(x), dx)
        k = conv.kernel_size[1]
        inner = (..., slice(dx + k, -k))  # off the columns the zeros came in at and the padded right border
        equi = ((a - b)[inner].norm() / b[inner].norm()).item()
        pa, pb = F.relu(a).amax((2, 3)), F.relu(conv(x)).amax((2, 3))
        inv = ((pa - pb).norm() / pb.norm()).item()
    return equi, inv


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, n_test, epochs = (400, 200, 2) if quick else (12000, 2000, 2)
    train, test = lesson_data(quick, data, n_train, n_test)
    classes, size = len(train.classes), train.images.shape[-1]
    say(f"data: {len(train)} training / {len(test)} test images of {size}×{size}, {classes} classes")

    def make(name: str):
        return create_model(name, num_classes=classes, img_size=size)

    torch.manual_seed(0)
    perm = torch.randperm(size * size)

    def shuffle(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)[..., perm].view_as(x)

    runs, acc = {}, {}
    for net, name in (("CNN", CNN), ("MLP", MLP)):
        for shuffled in (False, True):
            key = f"{net}{' shuffled' if shuffled else ''}"
            label = f"the {net}{' on shuffled pixels' if shuffled else ''}"
            runs[key] = fit(make(name), train, epochs, lr=1e-3, transform=shuffle if shuffled else None, label=label)
            x01 = as01(test)
            logits = runs[key].logits01(x01) if not shuffled else _shuffled_logits(runs[key], x01, shuffle)
            acc[key] = (logits.argmax(1) == test.labels).float().mean().item()
    say("inductive bias: test accuracy with the pixels as they are / after one fixed shuffle (train and test):")
    for net in ("CNN", "MLP"):
        say(f"  {net} ({CNN if net == 'CNN' else MLP}): {acc[net]:.2%} / {acc[net + ' shuffled']:.2%}")
    say("  the MLP does not care about the order of its inputs; the CNN's local windows lose their meaning.")

    x01 = as01(test)
    conv = runs["CNN"].model.features[0]
    equi, inv = zip(*(equivariance_error(conv, runs["CNN"].normalize(x01[:64]), d) for d in SHIFTS), strict=True)
    say(
        "first conv layer: ‖conv(shift x) − shift(conv x)‖ / ‖shift(conv x)‖ inside the borders (equivariance) "
        "and the change of its globally max-pooled features (invariance), per shift:"
    )
    for d, e, i in zip(SHIFTS, equi, inv, strict=True):
        say(f"  {d} px: equivariance error {e:.2e}   pooled features change {i:.3f}")
    shifted = {net: [runs[net].accuracy01(shift(x01, d), test.labels) for d in SHIFTS] for net in ("CNN", "MLP")}
    say("test accuracy on images shifted right by 0–4 px (trained on unshifted images):")
    for net, accs in shifted.items():
        say(f"  {net}: " + "  ".join(f"{d} px {a:.1%}" for d, a in zip(SHIFTS, accs, strict=True)))
    say("  the CNN's pooling absorbs small shifts partly; its FC layers still see where things are.")
    path = _plot(x01, shifted, acc, shuffle, out)
    say(f"figure: {path}")
    return {
        "accuracy": acc,
        "shift_accuracy": shifted,
        "equivariance_error": list(equi),
        "pooled_change": list(inv),
        "figure": str(path),
    }


def _shuffled_logits(trained, x01: torch.Tensor, shuffle) -> torch.Tensor:
    from cnnlab import infer

    batches = (shuffle(trained.normalize(c)) for c in x01.split(500))
    return infer.run(trained.model, batches, "cpu", "fp32", fold_bn=False)


def _plot(x01, shifted, acc, shuffle, out) -> Path:
    fig = figure((12, 3.6))
    axes = fig.subplots(1, 4, width_ratios=[1, 1, 2.2, 1.8])
    axes[0].imshow(x01[0, 0].numpy(), cmap="gray")
    axes[0].set_title("test image", fontsize=9)
    axes[1].imshow(shuffle(x01[:1])[0, 0].numpy(), cmap="gray")
    axes[1].set_title("fixed pixel shuffle", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    for net, accs in shifted.items():
        axes[2].plot(SHIFTS, accs, "o-", label=net)
    axes[2].set_xlabel("shift (pixels right)")
    axes[2].set_ylabel("test accuracy")
    axes[2].set_xticks(SHIFTS)
    axes[2].grid(alpha=0.3)
    axes[2].legend()
    axes[2].set_title("accuracy on shifted test images", fontsize=9)
    keys = list(acc)
    axes[3].bar(range(len(keys)), [acc[k] for k in keys], color=["C0", "C0", "C1", "C1"], alpha=0.8)
    axes[3].set_xticks(range(len(keys)), [k.replace(" ", "\n") for k in keys], fontsize=8)
    axes[3].set_ylim(0, 1)
    axes[3].set_ylabel("test accuracy")
    for i, k in enumerate(keys):
        axes[3].text(i, acc[k] + 0.02, f"{acc[k]:.1%}", ha="center", fontsize=8)
    axes[3].set_title("pixels as they are / shuffled", fontsize=9)
    fig.suptitle("shift equivariance and invariance; the CNN's inductive bias (MLP vs CNN, pixel shuffle)")
    return save_figure(fig, out, "invariance")
