"""Likelihood and the loss: maximum likelihood for a coin, the likelihood of a classifier's labels (the product of
the probabilities it gives the true classes), and why training minimises its negative logarithm, the cross-entropy;
a Gaussian likelihood gives the squared error the same way.

The deck's own likelihood example is in no document we hold; these examples are ours, with numbers small enough to
check by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure
from cnnlab.lab._tables import draw_numbers

FLIPS = "HHTHHHTHTH"  # 7 heads in 10 flips
CLASSES = ("T-shirt", "trouser", "bag")
# logits of a classifier for four images, and their true classes (the third is confidently wrong)
LOGITS = [[2.0, 0.5, -1.0], [0.2, 3.0, 0.1], [2.5, 0.0, 0.4], [0.0, 0.3, 0.6]]
LABELS = [0, 1, 2, 2]


def coin_likelihood(theta: np.ndarray, heads: int, n: int) -> np.ndarray:
    """L(θ) = θ^h (1 − θ)^(n − h): the probability of the observed flips (in their order) if P(heads) = θ."""
    return theta**heads * (1 - theta) ** (n - heads)


def classifier_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Softmax probabilities, the probability of each true label, their product (the likelihood) and the mean
    negative log-likelihood, computed by hand."""
    probs = logits.softmax(1)
    p_true = probs[torch.arange(len(labels)), labels]
    return {
        "probs": probs,
        "p_true": p_true,
        "likelihood": float(p_true.prod()),
        "nll": float(-p_true.log().sum()),
        "mean_nll": float(-p_true.log().mean()),
    }


def _coin(say) -> dict:
    heads, n = FLIPS.count("H"), len(FLIPS)
    say(f"a coin flipped {n} times: {' '.join(FLIPS)} → {heads} heads")
    say(f"likelihood of P(heads) = θ: L(θ) = θ^{heads} · (1 − θ)^{n - heads}")
    say("     θ   L(θ)        log L(θ)")
    grid = np.round(np.arange(0.1, 1.0, 0.1), 1)
    for t in grid:
        value = coin_likelihood(t, heads, n)
        say(f"   {t:.1f}   {value:.3e}   {math.log(value):8.3f}")
    fine = np.linspace(0.001, 0.999, 999)
    best = float(fine[np.argmax(coin_likelihood(fine, heads, n))])
    say(
        f"maximum on a grid of 999 values of θ: θ = {best:.3f}; the closed form (d log L/dθ = h/θ − (n − h)/(1 − θ) "
        f"= 0) gives θ = h/n = {heads / n:g}: the maximum-likelihood estimate is the observed frequency"
    )
    return {"heads": heads, "n": n, "argmax": best, "closed_form": heads / n}


def _classifier(say) -> dict:
    logits, labels = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS)
    r = classifier_likelihood(logits, labels)
    say(f"a classifier's softmax outputs for 4 images (classes {', '.join(CLASSES)}):")
    for i, (row, y) in enumerate(zip(r["probs"].tolist(), LABELS, strict=True)):
        cells = "  ".join(f"{p:.3f}" for p in row)
        say(f"  image {i}: {cells}   true {CLASSES[y]:<8} p = {row[y]:.3f}   −log p = {-math.log(row[y]):.3f}")
    p = r["p_true"].tolist()
    say(f"likelihood of the 4 labels = {' · '.join(f'{v:.3f}' for v in p)} = {r['likelihood']:.5f}")
    say(f"negative log-likelihood = Σ −log p = {r['nll']:.4f}; mean over the images = {r['mean_nll']:.4f}")
    torch_ce = float(F.cross_entropy(logits, labels))
    say(f"F.cross_entropy(logits, labels) = {torch_ce:.4f}: the cross-entropy loss is the mean negative log-likelihood")
    say(f"the confidently wrong image 2 (p = {p[2]:.3f}) contributes {-math.log(p[2]):.2f} of the {r['nll']:.2f}")
    many = torch.full((10_000,), 0.9)
    say(
        f"why the logarithm: 10,000 images each given p = 0.9 have likelihood 0.9^10000 = {float(many.prod()):g} in "
        f"float32 (underflow), while Σ log p = {float(many.log().sum()):.1f} is an ordinary number"
    )
    return {**r, "torch_cross_entropy": torch_ce, "underflow": float(many.prod())}


def _gaussian(say) -> dict:
    y = torch.tensor([1.0, 2.0, 2.5, 4.0], dtype=torch.float64)
    pred = torch.tensor([1.2, 1.7, 2.9, 3.6], dtype=torch.float64)
    nll = float(-torch.distributions.Normal(pred, 1.0).log_prob(y).sum())
    half_sse = float(0.5 * ((y - pred) ** 2).sum())
    const = len(y) / 2 * math.log(2 * math.pi)
    say(
        f"regression with Gaussian noise (σ = 1): −Σ log N(y | ŷ, 1) = {nll:.4f} = ½ Σ (y − ŷ)² + (n/2) log 2π = "
        f"{half_sse:.4f} + {const:.4f}: maximising this likelihood is minimising the squared error"
    )
    return {"gaussian_nll": nll, "half_sse_plus_const": half_sse + const}


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    say("Our own examples: the deck's likelihood example is in no document we hold.")
    coin = _coin(say)
    classifier = _classifier(say)
    gaussian = _gaussian(say)
    path = _plot(coin, classifier, out)
    say(f"figure: {path}")
    p_true = classifier.pop("p_true").tolist()
    probs = classifier.pop("probs").tolist()
    return {
        "coin": coin,
        "classifier": {**classifier, "p_true": p_true, "probs": probs},
        **gaussian,
        "figure": str(path),
    }


def _plot(coin, classifier, out) -> Path:
    fig = figure((15, 3.8))
    axes = fig.subplots(1, 4, width_ratios=[1.2, 1.2, 1.1, 1.2])
    theta = np.linspace(0.001, 0.999, 500)
    like = coin_likelihood(theta, coin["heads"], coin["n"])
    for ax, values, label in ((axes[0], like, "L(θ)"), (axes[1], np.log(like), "log L(θ)")):
        ax.plot(theta, values)
        ax.axvline(coin["closed_form"], color="C3", ls="--", label=f"θ = h/n = {coin['closed_form']:g}")
        ax.set_xlabel("θ = P(heads)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"{coin['heads']} heads in {coin['n']} flips: likelihood", fontsize=9)
    axes[1].set_title("log-likelihood: the same maximum", fontsize=9)
    axes[1].set_ylim(-25, 0)
    probs = classifier["probs"]
    draw_numbers(axes[2], probs, "softmax p(class | image)\n(true class boxed)", ".2f", cmap="Blues", lim=1)
    for i, y in enumerate(LABELS):
        _outline(axes[2], i, y)
    axes[2].set_xticks(range(len(CLASSES)), CLASSES, fontsize=8)
    axes[2].set_yticks(range(len(LABELS)), [f"image {i}" for i in range(len(LABELS))], fontsize=8)
    p = np.linspace(0.01, 1, 200)
    axes[3].plot(p, -np.log(p))
    for i, v in enumerate(classifier["p_true"].tolist()):
        axes[3].plot(v, -math.log(v), "o", color="C3")
        axes[3].annotate(
            f"image {i}", (v, -math.log(v)), textcoords="offset points", xytext=(-12, 6 + 10 * (i % 2)), fontsize=8
        )
    axes[3].set_xlabel("p(true class)")
    axes[3].set_ylabel("−log p: its share of the loss")
    axes[3].grid(alpha=0.3)
    axes[3].set_title(f"cross-entropy = mean −log p = {classifier['mean_nll']:.3f}", fontsize=9)
    fig.suptitle(
        "maximum likelihood: a coin, and a classifier whose loss is the negative log-likelihood (our examples)"
    )
    return save_figure(fig, out, "likelihood")


def _outline(ax, row: int, col: int) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, ec="C3", lw=2.5))
