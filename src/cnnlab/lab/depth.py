"""Vanishing gradients: per-layer gradient norms of a deep plain net with sigmoid / tanh / ReLU, and of a ResNet
with and without its shortcuts, over a few hundred training steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data import InMemoryLoader, Normalize, channel_stats
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, lesson_data, save_figure
from cnnlab.layers import BasicBlock
from cnnlab.models import create_model
from cnnlab.train import Trainer, build_optimizer

ACTS = ("sigmoid", "tanh", "relu")


class PlainBlock(BasicBlock):
    """A BasicBlock without its shortcut: act(bn2(conv2(act(bn1(conv1(x))))))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    """conv 3×3/2 (16) → `blocks` residual blocks (16 wide, BN) → global average pool → FC."""

    def __init__(self, blocks: int, num_classes: int, shortcuts: bool = True) -> None:
        super().__init__()
        block = BasicBlock if shortcuts else PlainBlock
        stem = nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False)  # stride 2, as the plain nets' first layer
        self.stem = nn.Sequential(stem, nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(*(block(16, 16) for _ in range(blocks)))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def plain_notation(depth: int, width: int = 16) -> str:
    """`depth` 3×3 conv layers, the first with stride 2 (28×28 → 14×14: a quarter of the work, as deep)."""
    return "-".join([f"CL{width}k3s2"] + [f"CL{width}k3"] * (depth - 1) + ["GAP", "FC10"])


def conv_weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def train_recording(model: nn.Module, loader: InMemoryLoader, steps: int, lr: float) -> dict:
    """`steps` Adam steps through `Trainer.train_step`, recording the loss and every conv layer's gradient norm."""
    trainer = Trainer(model, build_optimizer("adam", model, lr), device="cpu", precision="fp32")
    model.train()
    weights = conv_weights(model)
    losses, norms = [], []
    while len(losses) < steps:
        for x, y in loader.batches():
            loss = trainer.train_step(x, y, update=False)
            norms.append([w.grad.norm().item() for w in weights])
            trainer.optimizer_step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
    return {"loss": losses, "grad_norms": np.array(norms)}


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    depth, blocks, steps, n, batch = (8, 4, 6, 256, 64) if quick else (20, 10, 200, 20000, 32)
    train, _ = lesson_data(quick, data, n, 10)
    classes = len(train.classes)
    mean, std = channel_stats(train.images)
    loader = InMemoryLoader(train, batch, shuffle=True, transform=Normalize(mean, std))
    size = train.images.shape[-1]
    runs = {}
    for act in ACTS:
        torch.manual_seed(0)
        model = create_model(plain_notation(depth), num_classes=classes, img_size=size, act=act)
        runs[f"plain {act}"] = train_recording(model, loader, steps, 1e-3)
    for shortcuts in (True, False):
        torch.manual_seed(0)
        model = TinyResNet(blocks, classes, shortcuts)
        runs[f"ResNet {'with' if shortcuts else 'without'} shortcuts"] = train_recording(model, loader, steps, 1e-3)
    say(
        f"plain nets: {plain_notation(depth)} (Glorot init, no BN); ResNets: {2 * blocks + 1} BN conv layers "
        f"(stem + {blocks} blocks); {steps} Adam steps of {batch} images, lr 1e-3"
    )
    say(
        "gradient norm of the first / last conv layer at the first step, and their ratio; loss at the first and "
        "last steps:"
    )
    summary = {}
    for name, r in runs.items():
        g = r["grad_norms"][0]
        ratio = g[0] / g[-1] if g[-1] > 0 else float("inf")
        summary[name] = {
            "first_layer": float(g[0]),
            "last_layer": float(g[-1]),
            "ratio": float(ratio),
            "loss_first": r["loss"][0],
            "loss_last": float(np.mean(r["loss"][-10:])),
        }
        say(
            f"  {name:<28} ‖∇W₁‖ {g[0]:.2e}  ‖∇W_L‖ {g[-1]:.2e}  ratio {ratio:.1e}   loss {r['loss'][0]:.3f} → "
            f"{summary[name]['loss_last']:.3f}"
        )
    say(
        "Each sigmoid multiplies the backward signal by at most 1/4, so its early layers barely learn; tanh "
        "(slope ≤ 1) and ReLU (slope 1 where active) keep it; shortcuts give the gradient a path around every block."
    )
    path = _plot(runs, out)
    say(f"figure: {path}")
    return {"runs": summary, "figure": str(path)}


def _plot(runs, out) -> Path:
    fig = figure((13, 4.2))
    axes = fig.subplots(1, 3)
    for i, (name, r) in enumerate(runs.items()):
        style = "-" if name.startswith("plain") else "--"
        losses = np.array(r["loss"])
        k = max(1, len(losses) // 30)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        axes[0].plot(smooth, style, color=f"C{i}", label=name)
        ax = axes[1] if name.startswith("plain") else axes[2]
        g = r["grad_norms"][: max(1, len(r["grad_norms"]) // 10)].mean(0)
        ax.semilogy(range(1, len(g) + 1), g, "o" + style, ms=3, color=f"C{i}", label=name)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss (smoothed)")
    axes[0].legend(fontsize=7)
    for ax, title in ((axes[1], "plain nets"), (axes[2], "ResNets")):
        ax.set_xlabel("conv layer (input → output)")
        ax.set_ylabel("gradient norm (first 10 % of steps)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("vanishing gradients: per-layer gradient norms and training loss")
    return save_figure(fig, out, "depth")
