"""The perceptron (Rosenblatt 1958) and its update rule: on a mistake, w ← w + y·x (labels y = ±1, the input x with
a constant 1 appended for the bias). On linearly separable data it stops after at most (R/γ)² updates (Novikoff
1962; R: the largest ‖x‖, γ: the margin of any unit-length separator); on XOR, which no line separates, it never
stops. The rule is one SGD step of size 1 on the perceptron loss max(0, −y w·x), checked here with autograd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure

GATES = {
    "AND": [-1, -1, -1, 1],
    "OR": [-1, 1, 1, 1],
    "XOR": [-1, 1, 1, -1],
}
CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
TRUE_W = np.array([1.0, -0.7, 0.2])  # the separator the 2-D points are drawn around: x₁ − 0.7·x₂ + 0.2 = 0


def augment(x: np.ndarray) -> np.ndarray:
    """(n, d) → (n, d + 1): a constant 1 appended, so the bias is the last weight."""
    return np.hstack([x, np.ones((len(x), 1))])


def train(x: np.ndarray, y: np.ndarray, max_epochs: int = 100) -> dict:
    """The perceptron rule, cycling through the points in order until an epoch without a mistake (or max_epochs).
    Returns the final weights, every update (epoch, index, w before, w after), and the mistakes of each epoch."""
    xa = augment(x)
    w = np.zeros(xa.shape[1])
    updates, mistakes = [], []
    for epoch in range(max_epochs):
        wrong = 0
        for i, (xi, yi) in enumerate(zip(xa, y, strict=True)):
            if yi * (w @ xi) <= 0:  # a mistake (or on the line)
                new = w + yi * xi
                updates.append((epoch, i, w.copy(), new.copy()))
                w, wrong = new, wrong + 1
        mistakes.append(wrong)
        if wrong == 0:
            break
    return {"w": w, "updates": updates, "mistakes": mistakes, "converged": mistakes[-1] == 0}


def separable_points(n: int = 40, margin: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points in [−1, 1]² labelled by the side of TRUE_W's line, none closer to it than `margin`."""
    rng = np.random.default_rng(seed)
    x = np.empty((0, 2))
    while len(x) < n:
        cand = rng.uniform(-1, 1, (4 * n, 2))
        dist = augment(cand) @ TRUE_W / np.linalg.norm(TRUE_W[:2])
        x = np.vstack([x, cand[np.abs(dist) >= margin]])
    x = x[:n]
    return x, np.sign(augment(x) @ TRUE_W)


def novikoff_bound(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> tuple[float, float, float]:
    """(R, γ, (R/γ)²) for separator u on the augmented points: γ = min yᵢ u·xᵢ / ‖u‖."""
    xa = augment(x)
    r = float(np.linalg.norm(xa, axis=1).max())
    gamma = float((y * (xa @ u)).min() / np.linalg.norm(u))
    return r, gamma, (r / gamma) ** 2


def rule_is_sgd_step(x: np.ndarray, y: float, w: np.ndarray) -> bool:
    """On a mistake, −∂ max(0, −y w·x)/∂w (autograd) equals the rule's step y·x."""
    wt = torch.tensor(w, requires_grad=True)
    xt = torch.tensor(x)
    torch.clamp(-y * (wt @ xt), min=0).backward()
    return bool(torch.allclose(-wt.grad, y * xt))


def _gates(say) -> dict:
    results = {}
    with_product = np.hstack([CORNERS, CORNERS[:, :1] * CORNERS[:, 1:]])  # x₁, x₂ and the feature x₁·x₂
    cases = [(name, labels, CORNERS) for name, labels in GATES.items()]
    for name, labels, x in [*cases, ("XOR with x₁·x₂", GATES["XOR"], with_product)]:
        y = np.array(labels, dtype=float)
        r = train(x, y, max_epochs=50)
        out = np.sign(augment(x) @ r["w"])
        results[name] = {**r, "outputs": out.tolist()}
        verdict = (
            f"learned after {len(r['updates'])} updates, w = {np.round(r['w'], 2).tolist()}"
            if r["converged"]
            else f"no line separates it: still {r['mistakes'][-1]} mistakes in epoch 50 ({len(r['updates'])} updates)"
        )
        table = "  ".join(
            f"{int(a)}{int(b)}→{int(o):+d}" if o else f"{int(a)}{int(b)}→0"
            for (a, b), o in zip(CORNERS, out, strict=True)
        )
        say(f"  {name:<3} targets {labels}: {verdict}; outputs {table}")
    return results


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    say("perceptron: output sign(w·x + b); on a mistake (y·(w·x + b) ≤ 0), w ← w + y·x and b ← b + y")
    x, y = separable_points()
    r = train(x, y)
    for epoch, i, before, after in r["updates"][:6]:
        say(
            f"  epoch {epoch}, point {i} ({x[i, 0]:+.2f}, {x[i, 1]:+.2f}) y = {y[i]:+.0f} misclassified: "
            f"w {np.round(before, 2).tolist()} → {np.round(after, 2).tolist()}"
        )
    radius, gamma, bound = novikoff_bound(x, y, TRUE_W)
    say(
        f"{len(x)} separable points: converged after {len(r['updates'])} updates in {len(r['mistakes'])} epochs "
        f"(mistakes per epoch {r['mistakes']}); Novikoff's bound (R/γ)² = ({radius:.2f}/{gamma:.3f})² = {bound:.0f}"
    )
    _, _, w_before, _ = r["updates"][0]
    sgd = rule_is_sgd_step(augment(x)[r["updates"][0][1]], y[r["updates"][0][1]], w_before)
    say(f"the update is an SGD step of size 1 on max(0, −y·w·x) (autograd agrees): {sgd}")
    say("logic gates on the corners of the unit square (00, 01, 10, 11):")
    gates = _gates(say)
    path = _plot(x, y, r, gates, out)
    say(f"figure: {path}")
    return {
        "updates": len(r["updates"]),
        "epochs": len(r["mistakes"]),
        "converged": r["converged"],
        "bound": bound,
        "margin": gamma,
        "radius": radius,
        "sgd_step": sgd,
        "gates": {k: {"converged": v["converged"], "outputs": v["outputs"]} for k, v in gates.items()},
        "figure": str(path),
    }


def _line(ax, w: np.ndarray, style: str, **kw) -> None:
    xs = np.linspace(-1.1, 1.1, 2)
    if abs(w[1]) > 1e-9:
        ax.plot(xs, -(w[0] * xs + w[2]) / w[1], style, **kw)
    elif abs(w[0]) > 1e-9:
        ax.axvline(-w[2] / w[0], ls=style, **kw)


def _plot(x, y, r, gates, out) -> Path:
    fig = figure((14, 4))
    axes = fig.subplots(1, 3, width_ratios=[1.2, 1, 1.2])
    ax = axes[0]
    ax.scatter(*x[y > 0].T, marker="o", color="C0", label="y = +1")
    ax.scatter(*x[y < 0].T, marker="x", color="C3", label="y = −1")
    for k, (_, _, _, w) in enumerate(r["updates"][:-1]):
        _line(ax, w, "-", color="0.6", lw=0.8, alpha=0.3 + 0.7 * k / len(r["updates"]))
    _line(ax, r["w"], "-", color="C2", lw=2, label=f"final, after {len(r['updates'])} updates")
    _line(ax, TRUE_W, "--", color="k", lw=1, label="the line the data were drawn around")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("separable points: the boundary after each update (grey)", fontsize=9)
    for name, g in gates.items():
        axes[1].plot(range(1, len(g["mistakes"]) + 1), g["mistakes"], "o-", ms=3, label=name)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("mistakes in the epoch")
    axes[1].legend(fontsize=8)
    axes[1].set_title("AND and OR are learned, XOR never is; with the input x₁·x₂ it is", fontsize=9)
    ax = axes[2]
    yx = np.array(GATES["XOR"])
    ax.scatter(*CORNERS[yx > 0].T, s=120, marker="o", color="C0", label="XOR = 1", zorder=3)
    ax.scatter(*CORNERS[yx < 0].T, s=120, marker="x", color="C3", label="XOR = 0", zorder=3)
    w = gates["XOR with x₁·x₂"]["w"]  # w₁x₁ + w₂x₂ + w₃x₁x₂ + b = 0: a curve in the (x₁, x₂) plane
    g1, g2 = np.meshgrid(np.linspace(-0.3, 1.3, 200), np.linspace(-0.3, 1.3, 200))
    score = w[0] * g1 + w[1] * g2 + w[2] * g1 * g2 + w[3]
    ax.contourf(g1, g2, np.sign(score), levels=[-2, 0, 2], colors=["#f6d5d5", "#d5e3f6"])
    ax.contour(g1, g2, score, levels=[0], colors="C2")
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylim(-0.3, 1.3)
    ax.legend(fontsize=7)
    ax.set_title("XOR with a third input x₁·x₂: learned (its boundary in the plane)", fontsize=9)
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle("the perceptron rule w ← w + y·x: converges on separable data, cycles forever on XOR")
    return save_figure(fig, out, "perceptron")
