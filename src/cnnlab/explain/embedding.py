"""t-SNE of the penultimate-layer "CNN codes": does the network put images of one class together?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from torch import nn

from cnnlab import infer
from cnnlab.data.dataset import ImageSet
from cnnlab.explain.plotting import figure, save
from cnnlab.io import RunMeta


@dataclass
class Embedding:
    """2-D t-SNE points (N, 2), the codes they come from (N, D), and which images of the split they are."""

    points: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


def cnn_codes(
    model: nn.Module, meta: RunMeta, images: torch.Tensor, batch: int = 500, log: Callable[[str], None] | None = None
) -> np.ndarray:
    """forward_head(forward_features(x), pre_logits=True) for uint8 images (N, C, H, W) → (N, D) float32.
    log: gets a progress line every 10 s of a long pass."""
    return infer.cnn_codes(model, images, meta.mean, meta.std, batch_size=batch, log=log).numpy()


def tsne(codes: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of (N, D) codes (scikit-learn, PCA initialisation)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ValueError("t-SNE needs scikit-learn: pip install 'cnnlab[explain]'") from None
    perplexity = min(perplexity, (len(codes) - 1) / 3)  # t-SNE needs perplexity < N
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes).astype(np.float32)


def embedding(
    model: nn.Module,
    meta: RunMeta,
    data: ImageSet,
    n: int = 2000,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Embedding:
    """t-SNE of the CNN codes of `n` images drawn at random (seeded) from `data`.
    log: gets a line as each step starts (the codes, the t-SNE), and progress lines during a long pass."""
    if n < 5:
        raise ValueError(f"--n must be at least 5 for a t-SNE, got {n}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    if log is not None:
        log(f"embedding: CNN codes of {len(order):,} images …")
    codes = cnn_codes(model, meta, data.images[order], log=log)
    if log is not None:
        log(f"embedding: t-SNE of {len(codes):,} codes of {codes.shape[1]} features to 2-D …")
    return Embedding(tsne(codes, seed), codes, data.labels[order].numpy(), order.numpy())


def plot_embedding(
    emb: Embedding,
    classes: list[str],
    path: str | Path,
    title: str = "",
    images: torch.Tensor | None = None,
    thumbnails: int = 300,
) -> Path:
    """Points coloured by true class with a legend; with `images` (uint8 N×C×H×W of the same points), also the
    first `thumbnails` images themselves, framed in their class colour."""
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    fig = figure((9, 7))
    ax = fig.subplots()
    for k, name in enumerate(classes):
        sel = emb.labels == k
        ax.scatter(*emb.points[sel].T, s=6, color=cmap(k % cmap.N), label=name, alpha=0.8)
    if images is not None:
        for i in range(min(thumbnails, len(images))):
            img = images[i].permute(1, 2, 0).numpy()
            box = OffsetImage(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", zoom=0.6)
            ax.add_artist(
                AnnotationBbox(
                    box,
                    emb.points[i],
                    frameon=True,
                    pad=0.1,
                    bboxprops={"edgecolor": cmap(int(emb.labels[i]) % cmap.N), "lw": 1.5},
                )
            )
    ax.set_aspect("equal", "datalim")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3, title="true class")
    ax.set_title(title or f"t-SNE of CNN codes ({len(emb.points)} images, {emb.codes.shape[1]}-D)")
    return save(fig, path)
