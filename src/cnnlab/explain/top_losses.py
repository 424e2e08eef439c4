"""The images the model gets most confidently wrong: highest cross-entropy first (fastai's plot_top_losses)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.dataset import ImageSet
from cnnlab.evaluate import check_compatible
from cnnlab.explain.plotting import save, show, tile_grid
from cnnlab.infer import predict_logits
from cnnlab.io import RunMeta


@dataclass
class TopLosses:
    """Per shown image (highest loss first): index in the split, loss, predicted and true class, and the
    probabilities the model gave the predicted and the true class."""

    indices: np.ndarray
    losses: np.ndarray
    preds: np.ndarray
    labels: np.ndarray
    pred_probs: np.ndarray
    true_probs: np.ndarray


def top_losses(model: nn.Module, meta: RunMeta, data: ImageSet, k: int = 16) -> TopLosses:
    """The `k` images of `data` with the highest cross-entropy under `model` (fp32, the training normalization)."""
    check_compatible(meta, data.image_shape, len(data.classes))
    logits = predict_logits(model, data.images, meta.mean, meta.std, "cpu", "fp32")
    losses = F.cross_entropy(logits, data.labels, reduction="none")
    order = losses.argsort(descending=True)[:k]
    probs = logits[order].softmax(1)
    preds = probs.argmax(1)
    labels = data.labels[order]
    return TopLosses(
        order.numpy(),
        losses[order].numpy(),
        preds.numpy(),
        labels.numpy(),
        probs.gather(1, preds[:, None])[:, 0].numpy(),
        probs.gather(1, labels[:, None])[:, 0].numpy(),
    )


def plot_top_losses(
    result: TopLosses, images: torch.Tensor, classes: list[str], path: str | Path, title: str = ""
) -> Path:
    """Grid of the images (uint8 N×C×H×W of the whole split), each titled predicted / true / loss / probability."""
    fig, axes = tile_grid(
        len(result.indices),
        tile=1.9,
        title=title or "top losses: predicted (probability) / true class / loss and p(true)",
    )
    for ax, i, loss, p, t, pp, tp in zip(
        axes,
        result.indices,
        result.losses,
        result.preds,
        result.labels,
        result.pred_probs,
        result.true_probs,
        strict=True,
    ):
        show(ax, images[i].permute(1, 2, 0).float().div(255).numpy())
        ax.set_title(
            f"pred {classes[p]} ({pp:.2f})\ntrue {classes[t]}\nloss {loss:.2f}, p(true) {tp:.3f}", fontsize=7, pad=2
        )
    return save(fig, path)
