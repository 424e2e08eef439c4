"""FGSM (Goodfellow et al. 2015) on a trained model: x' = clip(x + ε · sign(∇ₓ loss), 0, 1), accuracy vs ε."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, Trained, as01, fit, lesson_data, save_figure
from cnnlab.models import create_model

EPSILONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
MODEL = "CL32k3-MP4-CL64k3-MP4-FC128-FC10"


def fgsm(trained: Trained, x01: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Adversarial images on the 0–1 scale: one step of size ε along the sign of the input gradient of the loss."""
    model = trained.model.eval()
    x = x01.clone().requires_grad_(True)
    loss = F.cross_entropy(model(trained.normalize(x)), labels)
    (grad,) = torch.autograd.grad(loss, x)
    return (x01 + eps * grad.sign()).clamp(0, 1).detach()


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, n_test, epochs = (300, 100, 2) if quick else (15000, 1000, 2)
    train, test = lesson_data(quick, data, n_train, n_test)
    size = train.images.shape[-1]
    trained = fit(create_model(MODEL, num_classes=len(train.classes), img_size=size), train, epochs)
    x01, y = as01(test), test.labels
    say(f"model {MODEL}, trained on {len(train)} images for {epochs} epochs; {len(test)} test images")
    accs, adv = [], {}
    for eps in EPSILONS:
        adv[eps] = fgsm(trained, x01, y, eps) if eps else x01
        accs.append(trained.accuracy01(adv[eps], y))
        say(f"  ε = {eps:<5g} (of the 0–1 pixel range): accuracy {accs[-1]:.2%}")
    say(
        "A perturbation of a few grey levels per pixel, invisible at small ε, flips many predictions: the loss "
        "is close to linear in the input, and a step along the gradient's sign adds up over all pixels."
    )
    eps_fig = 0.1 if 0.1 in adv else EPSILONS[-1]
    before = trained.logits01(x01).argmax(1)
    after = trained.logits01(adv[eps_fig]).argmax(1)
    flipped = torch.nonzero((before == y) & (after != y)).flatten()[:4].tolist()
    path = _plot(x01, adv[eps_fig], y, before, after, flipped, eps_fig, accs, test.classes, out)
    say(f"figure: {path}")
    return {"epsilons": list(EPSILONS), "accuracy": accs, "figure": str(path)}


def _plot(x01, adv, y, before, after, idx, eps, accs, classes, out) -> Path:
    rows = max(len(idx), 1)
    fig = figure((11, 2.3 * rows + 0.6))
    grid = fig.add_gridspec(rows, 5)
    for r, i in enumerate(idx):
        delta = (adv[i, 0] - x01[i, 0]).numpy()
        for c, (img, title, kw) in enumerate(
            (
                (x01[i, 0].numpy(), f"original: {classes[before[i]]}", {"cmap": "gray", "vmin": 0, "vmax": 1}),
                (delta, f"x' − x (±{eps:g}; 0 where clipped)", {"cmap": "RdBu_r", "vmin": -eps, "vmax": eps}),
                (adv[i, 0].numpy(), f"adversarial: {classes[after[i]]}", {"cmap": "gray", "vmin": 0, "vmax": 1}),
            )
        ):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(img, interpolation="nearest", **kw)
            ax.set_title(f"{title}\n(true {classes[y[i]]})" if c == 0 else title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    ax = fig.add_subplot(grid[:, 3:])
    ax.plot(EPSILONS, accs, "o-")
    ax.set_xlabel("ε (0–1 pixel scale)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title("accuracy under FGSM", fontsize=9)
    fig.suptitle("fast gradient sign method: x' = clip(x + ε·sign(∇ₓ loss), 0, 1)")
    return save_figure(fig, out, "adversarial")
