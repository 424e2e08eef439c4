"""Learning-rate range test (Smith 2017): raise the LR exponentially step by step and watch the loss."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.train.callbacks.base import Callback


class LRRangeTest(Callback):
    """Set the LR of step k to min_lr·(max_lr/min_lr)^(k/(steps−1)); stop after `steps` steps or once the smoothed
    loss exceeds `diverge` × its minimum (checked every `check_every` steps: losses stay on the device)."""

    def __init__(self, min_lr: float, max_lr: float, steps: int, diverge: float = 4.0, check_every: int = 10):
        if not 0 < min_lr < max_lr:
            raise ValueError(f"lr-find needs 0 < --min-lr < --max-lr, got {min_lr} and {max_lr}")
        if steps < 5:
            raise ValueError(f"lr-find needs at least 5 steps, got {steps}")
        self.min_lr, self.max_lr, self.steps = min_lr, max_lr, steps
        self.diverge, self.check_every = diverge, check_every
        self.lrs: list[float] = []
        self.losses: list[torch.Tensor] = []

    def lr_at(self, k: int) -> float:
        return self.min_lr * (self.max_lr / self.min_lr) ** (k / (self.steps - 1))

    def _set_lr(self) -> None:
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = self.lr_at(self.trainer.step)

    def on_train_begin(self, logs: dict) -> None:
        self.trainer.plan(self.steps)  # the run is `steps` long (progress and its ETA count them)
        self._set_lr()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        t = self.trainer
        if t.step == len(self.losses):  # accumulating: no step yet
            return
        self.lrs.append(t.last_lr)
        self.losses.append(logs["loss"])
        if t.step >= self.steps:
            t.stop(f"range test done: {self.steps} steps")
            return
        if t.step % self.check_every == 0:
            smooth = smoothed(torch.stack(self.losses).float().cpu().numpy())
            if not np.isfinite(smooth[-1]) or smooth[-1] > self.diverge * np.nanmin(smooth):
                t.stop(f"the smoothed loss exceeded {self.diverge:g}× its minimum at lr {t.last_lr:.3g}")
                return
        self._set_lr()


def smoothed(losses: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (as fastai's LR finder)."""
    out, avg = np.empty(len(losses)), 0.0
    for i, value in enumerate(losses):
        avg = beta * avg + (1 - beta) * value
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest_lr(lrs: np.ndarray, smooth: np.ndarray) -> float:
    """The LR where the smoothed loss falls fastest against log LR, before its minimum."""
    finite = np.isfinite(smooth)
    lrs, smooth = lrs[finite], smooth[finite]
    end = int(np.argmin(smooth)) + 1
    if end < 3:
        return float(lrs[max(end - 1, 0)] / 10)
    slope = np.gradient(smooth[:end], np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slope))])
