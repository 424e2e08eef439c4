"""Gradient descent on a 2-D function with the |Δθ| < ε stop; step sizes too small, right and too large; and a
finite-difference check of a small conv net's gradient against autograd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure

A = np.array([1.0, 10.0])  # f(θ) = θ₁² + 10 θ₂²: curvatures 2 and 20, so GD converges for step sizes below 2/20
THETA0 = np.array([-4.0, 1.5])
STEPS = {"too small": 0.005, "right": 0.05, "too large": 0.11}


def f(theta: np.ndarray) -> float:
    return float((A * theta**2).sum())


def grad(theta: np.ndarray) -> np.ndarray:
    return 2 * A * theta


def descend(lr: float, eps: float = 1e-4, max_steps: int = 200) -> tuple[np.ndarray, str]:
    """θ ← θ − lr·∇f(θ) until |Δθ| < eps (or max_steps, or divergence); the path and why it stopped."""
    path = [THETA0.copy()]
    for _ in range(max_steps):
        step = lr * grad(path[-1])
        path.append(path[-1] - step)
        if np.linalg.norm(step) < eps:
            return np.array(path), f"|Δθ| < {eps:g}"
        if not np.isfinite(path[-1]).all() or np.linalg.norm(path[-1]) > 1e6:
            return np.array(path), "diverged"
    return np.array(path), f"the {max_steps}-step cap"


def closed_form(lr: float, k: int) -> np.ndarray:
    """θ after k steps on this quadratic: each coordinate shrinks by (1 − 2·lr·a) per step."""
    return THETA0 * (1 - 2 * lr * A) ** k


class SmallConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def gradient_check(h: float = 1e-6, seed: int = 0) -> dict:
    """Central differences (L(w + h) − L(w − h)) / 2h for every weight of a small conv net (float64) vs autograd."""
    torch.manual_seed(seed)
    model = SmallConvNet().double()
    x, y = torch.randn(5, 1, 8, 8, dtype=torch.float64), torch.randint(0, 4, (5,))

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(model(x), y)

    model.zero_grad()
    loss().backward()
    worst, count = 0.0, 0
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + h
                up = loss().item()
                flat[i] = old - h
                down = loss().item()
                flat[i] = old
                numeric, analytic = (up - down) / (2 * h), p.grad.view(-1)[i].item()
                worst = max(worst, abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-8))
                count += 1
    return {"parameters": count, "max_relative_error": worst}


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    say(f"f(θ) = θ₁² + 10·θ₂², θ₀ = {THETA0.tolist()}; GD converges for step sizes below 2/20 = 0.1")
    paths, results = {}, {}
    for name, lr in STEPS.items():
        path, why = descend(lr)
        paths[name] = (path, why)
        k = len(path) - 1
        gap = float(np.abs(path[-1] - closed_form(lr, k)).max()) if why != "diverged" else float("nan")
        results[name] = {
            "lr": lr,
            "steps": k,
            "stop": why,
            "theta": path[-1].tolist(),
            "f": f(path[-1]),
            "closed_form_gap": gap,
        }
        say(
            f"  {name:<10} lr={lr:<6g} {k:4d} steps, stopped by {why:<12} θ = ({path[-1][0]:.3g}, {path[-1][1]:.3g}), "
            f"f = {f(path[-1]):.3g}; |θ − θ₀(1 − 2·lr·a)^k| = {gap:.1e}"
        )
    check = gradient_check()
    say(
        f"finite-difference check of a small conv net ({check['parameters']} weights, float64, central differences "
        f"h = 1e-6): largest relative error vs autograd {check['max_relative_error']:.1e}"
    )
    path = _plot(paths, out)
    say(f"figure: {path}")
    return {"descent": results, "gradient_check": check, "figure": str(path)}


def _plot(paths, out) -> Path:
    fig = figure((12, 4))
    axes = fig.subplots(1, 3)
    g1, g2 = np.meshgrid(np.linspace(-5, 5, 200), np.linspace(-2.5, 2.5, 200))
    for ax, (name, (path, why)) in zip(axes, paths.items(), strict=True):
        ax.contour(g1, g2, A[0] * g1**2 + A[1] * g2**2, levels=15, cmap="Greys", linewidths=0.7)
        shown = path[np.all(np.abs(path) < 6, axis=1)][:60]
        ax.plot(shown[:, 0], shown[:, 1], "o-", ms=3, color="C3")
        ax.set_xlim(-5, 5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_title(f"{name}: lr {STEPS[name]:g}, {len(path) - 1} steps ({why})", fontsize=9)
        ax.set_xlabel("θ₁")
        ax.set_ylabel("θ₂")
    fig.suptitle("gradient descent on θ₁² + 10·θ₂² with the |Δθ| < ε stop")
    return save_figure(fig, out, "gd")
