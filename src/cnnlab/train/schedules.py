"""Learning-rate schedules as pure functions of the step (or epoch) count k: `schedule(k)` → multiplier of the base LR.

A schedule holds no state, so a resumed run gets the same LR from the same k. Reduce-on-plateau is the one stateful
rule; it lives in the LRScheduler callback as an extra scale on top of the constant shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEDULES = ("constant", "linear", "step", "cosine", "onecycle", "plateau")
UNITS = ("step", "epoch")


def linear_decay(k: float, tau: float, lr0: float, lr_tau: float) -> float:
    """The course's rule: ε_k = (1 − α) ε_0 + α ε_τ with α = k/τ, and ε_τ after step τ."""
    alpha = min(k / tau, 1.0) if tau > 0 else 1.0
    return (1.0 - alpha) * lr0 + alpha * lr_tau


def _cos(start: float, end: float, pct: float) -> float:
    """Cosine from `start` (pct 0) to `end` (pct 1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * min(max(pct, 0.0), 1.0)) + 1.0)


def make_schedule(
    name: str,
    total: int,
    warmup: int = 0,
    end_ratio: float | None = None,
    decay_length: int | None = None,
    step_size: int | None = None,
    gamma: float = 0.1,
    pct_start: float = 0.3,
) -> Callable[[int], float]:
    """Multiplier of the base LR at unit k (0-based) for a run of `total` units, `warmup` of them a linear ramp.

    end_ratio: final LR ÷ base LR (linear: ε_τ/ε_0, default 0.01; cosine: default 0; onecycle: default 1/(25·10⁴)).
    decay_length: τ of the linear decay / length of the cosine, in units after the warm-up (default: the rest of the
    run). step_size, gamma: step decay multiplies by gamma every step_size units (default: a third of the run).
    pct_start: fraction of the run one-cycle spends rising from base/25 to base (as torch's OneCycleLR).
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}'; choose from {', '.join(SCHEDULES)}")
    if warmup < 0 or total < 1:
        raise ValueError(f"schedule needs total ≥ 1 and warmup ≥ 0 units, got total={total}, warmup={warmup}")
    length = max(decay_length if decay_length is not None else total - warmup, 1)

    if name in ("constant", "plateau"):

        def shape(k: int) -> float:
            return 1.0
    elif name == "linear":
        end = 0.01 if end_ratio is None else end_ratio

        def shape(k: int) -> float:
            return linear_decay(k, length, 1.0, end)
    elif name == "step":
        every = step_size or max(length // 3, 1)

        def shape(k: int) -> float:
            return gamma ** (k // every)
    elif name == "cosine":
        end = 0.0 if end_ratio is None else end_ratio

        def shape(k: int) -> float:
            return _cos(1.0, end, k / length)
    else:  # onecycle: torch.optim.lr_scheduler.OneCycleLR's two cosine phases (anneal_strategy='cos')
        start, end = 1.0 / 25.0, (1.0 / 25.0) / 1e4 if end_ratio is None else end_ratio
        peak_at = float(pct_start * length) - 1.0
        last = length - 1.0

        def shape(k: int) -> float:
            if k <= peak_at:
                return _cos(start, 1.0, k / peak_at) if peak_at > 0 else 1.0
            return _cos(1.0, end, (k - peak_at) / (last - peak_at))

    def schedule(k: int) -> float:
        if k < warmup:
            return (k + 1) / (warmup + 1)  # linear ramp towards the base LR, never exactly 0
        return shape(k - warmup)

    return schedule
