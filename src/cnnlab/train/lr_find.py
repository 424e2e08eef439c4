"""Learning-rate range test (Smith 2017): raise the LR exponentially step by step and watch the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.plots import plot_lr_find
from cnnlab.train.callbacks.base import Callback
from cnnlab.train.config import TrainConfig


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
        self._set_lr()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        t = self.trainer
        if t.step == len(self.losses):  # accumulating: no step yet
            return
        self.lrs.append(t.last_lr)
        self.losses.append(logs["loss"])
        if t.step >= self.steps:
            t.stop_training = True
            return
        if t.step % self.check_every == 0:
            smooth = smoothed(torch.stack(self.losses).float().cpu().numpy())
            if not np.isfinite(smooth[-1]) or smooth[-1] > self.diverge * np.nanmin(smooth):
                t.stop_training = True
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


def lr_find(
    cfg: TrainConfig, min_lr: float = 1e-7, max_lr: float = 10.0, steps: int = 100, out: str | Path = ".", log=print
) -> dict:
    """Run the range test on `cfg`'s model and data; writes `out`/lr_find.png and returns lrs, losses, suggestion."""
    from cnnlab.train.run import build  # run imports the whole toolbox; keep this module light to import

    test = LRRangeTest(min_lr, max_lr, steps)
    setup = build(cfg, [test], log)
    setup.trainer.fit(setup.train_loader, epochs=steps)  # every epoch has ≥ 1 step; the test stops the run
    if len(test.losses) < 3:
        raise ValueError(f"lr-find stopped after {len(test.losses)} steps; lower --min-lr or use more data")
    lrs = np.array(test.lrs)
    losses = torch.stack(test.losses).float().cpu().numpy()
    smooth = smoothed(losses)
    suggestion = suggest_lr(lrs, smooth)
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    png = plot_lr_find(lrs, losses, smooth, suggestion, path / "lr_find.png", f"{cfg.model} on {setup.splits.name}")
    return {"lrs": lrs.tolist(), "losses": losses.tolist(), "suggested_lr": suggestion, "png": str(png)}
