"""The learning-rate range test on a run's set-up: loss against LR, a plot and a suggested LR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.plots import plot_lr_find
from cnnlab.run.setup import build, check
from cnnlab.runtime import resolve_device
from cnnlab.train import distributed
from cnnlab.train.callbacks import ProgressBar
from cnnlab.train.config import TrainConfig
from cnnlab.train.lr_find import LRRangeTest, smoothed, suggest_lr


def lr_find(
    cfg: TrainConfig, min_lr: float = 1e-7, max_lr: float = 10.0, steps: int = 100, out: str | Path = ".", log=print
) -> dict:
    """Run the range test on `cfg`'s model and data; writes `out`/lr_find.png and returns lrs, losses, suggestion."""
    if distributed.launched():
        raise ValueError("lr-find runs in one process; start it without torchrun or --nproc")
    check(cfg)
    test = LRRangeTest(min_lr, max_lr, steps)
    setup = build(
        cfg, resolve_device(cfg.device), [test, ProgressBar(verbose=cfg.verbose, metrics=("loss",), lr=True)], log
    )
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
