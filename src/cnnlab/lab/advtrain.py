"""Adversarial training (Goodfellow, Shlens & Szegedy 2015): train on each batch and on its FGSM examples, made
against the current weights, with equal weight (α = 0.5 in the paper's J̃ = α·J(x) + (1 − α)·J(x + ε·sign ∇ₓJ)).
The same model and data trained normally and adversarially, then attacked: FGSM at several ε, and an iterated
attack (10 FGSM steps of ε/4, kept within ε of the image) that a model which only learned to mask its gradient
would not resist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import channel_stats
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, Trained, as01, fit, lesson_data, save_figure
from cnnlab.lab.adversarial import EPSILONS, MODEL, fgsm
from cnnlab.models import create_model

EPS_TRAIN = 0.1  # of the 0–1 pixel range


def fgsm_mix(model: nn.Module, eps: float, mean: list[float], std: list[float]) -> Callable:
    """The Trainer's batch hook: (normalised x, y) → (x and its FGSM examples, y twice), the examples made against
    `model` as it is at that step. The mean loss over the doubled batch is the paper's objective with α = 0.5."""
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

    def mix(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x01 = (x * s + m).detach().requires_grad_(True)
        loss = F.cross_entropy(model((x01 - m) / s), y)
        (grad,) = torch.autograd.grad(loss, x01)  # the input gradient only: no parameter gradient accumulates
        adv = ((x01 + eps * grad.sign()).clamp(0, 1) - m) / s
        return torch.cat([x, adv.detach()]), torch.cat([y, y])

    return mix


def iterated_fgsm(trained: Trained, x01: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10) -> torch.Tensor:
    """The basic iterative method (Kurakin et al. 2017): `steps` FGSM steps of ε/4, each result clipped to within ε
    of the image and to 0–1."""
    adv = x01.clone()
    for _ in range(steps):
        adv = fgsm(trained, adv, y, eps / 4)
        adv = torch.min(torch.max(adv, x01 - eps), x01 + eps).clamp(0, 1)
    return adv


def attack_table(trained: Trained, x01: torch.Tensor, y: torch.Tensor) -> dict:
    fgsm_acc = [trained.accuracy01(fgsm(trained, x01, y, e) if e else x01, y) for e in EPSILONS]
    return {"fgsm": fgsm_acc, "iterated": trained.accuracy01(iterated_fgsm(trained, x01, y, EPS_TRAIN), y)}


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    n_train, n_test, epochs = (300, 100, 2) if quick else (10000, 1000, 2)
    train, test = lesson_data(quick, data, n_train, n_test)
    size, classes = train.images.shape[-1], len(train.classes)
    mean, std = channel_stats(train.images)
    x01, y = as01(test), test.labels
    say(f"{MODEL}, {epochs} epochs on {len(train)} images, the same initial weights; {len(test)} test images")
    torch.manual_seed(0)
    standard = fit(create_model(MODEL, num_classes=classes, img_size=size), train, epochs, stats=(mean, std))
    torch.manual_seed(0)
    model = create_model(MODEL, num_classes=classes, img_size=size)
    robust = fit(model, train, epochs, stats=(mean, std), mix=fgsm_mix(model, EPS_TRAIN, mean, std))
    results = {"standard": attack_table(standard, x01, y), "adversarial": attack_table(robust, x01, y)}
    say(f"test accuracy under FGSM at ε (of the 0–1 pixel range); adversarial training used ε = {EPS_TRAIN}:")
    say("  ε            " + "".join(f"{e:>8g}" for e in EPSILONS) + f"   iterated, ε = {EPS_TRAIN}")
    for name, r in results.items():
        say(f"  {name:<12} " + "".join(f"{a:>8.1%}" for a in r["fgsm"]) + f"   {r['iterated']:>8.1%}")
    k = EPSILONS.index(EPS_TRAIN)
    gain = results["adversarial"]["fgsm"][k] - results["standard"]["fgsm"][k]
    say(
        f"At the training ε = {EPS_TRAIN}, adversarial training changes FGSM accuracy by {100 * gain:+.1f} points; the "
        f"clean accuracy by {100 * (results['adversarial']['fgsm'][0] - results['standard']['fgsm'][0]):+.1f}. The iterated "
        "attack is the honest check: a model that resists only the one-step attack it was trained on has learned to "
        "hide its gradient rather than to be robust."
    )
    path = _plot(results, out)
    say(f"figure: {path}")
    return {"epsilons": list(EPSILONS), "eps_train": EPS_TRAIN, **results, "figure": str(path)}


def _plot(results, out) -> Path:
    fig = figure((11, 4))
    axes = fig.subplots(1, 2, width_ratios=[1.6, 1])
    for name, r in results.items():
        axes[0].plot(EPSILONS, r["fgsm"], "o-", label=f"{name} training")
    axes[0].axvline(EPS_TRAIN, color="0.5", ls=":", label=f"training ε = {EPS_TRAIN}")
    axes[0].set_xlabel("FGSM ε (0–1 pixel scale)")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    axes[0].set_title("accuracy under FGSM", fontsize=9)
    names = list(results)
    k = EPSILONS.index(EPS_TRAIN)
    for i, name in enumerate(names):
        bars = [results[name]["fgsm"][0], results[name]["fgsm"][k], results[name]["iterated"]]
        axes[1].bar([j + 0.38 * i for j in range(3)], bars, 0.38, label=name)
    axes[1].set_xticks([0.19, 1.19, 2.19], ["clean", f"FGSM ε={EPS_TRAIN}", f"iterated\nε={EPS_TRAIN}"], fontsize=8)
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    axes[1].set_title("clean, one-step and iterated attacks", fontsize=9)
    fig.suptitle("adversarial training on FGSM examples: accuracy under attack before and after")
    return save_figure(fig, out, "advtrain")
