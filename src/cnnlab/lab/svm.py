"""Hand-crafted features + an SVM, the pipeline learned features replaced, against LeNet-5 trained end to end.

The features are histograms of oriented gradients in the manner of Dalal & Triggs (2005), written here with torch:
image gradients by [−1, 0, 1], their unsigned orientation (0–180°) voted into 9 bins (centres 0°, 20°, …, 160°,
each vote split linearly between the two nearest bins and weighted by the gradient's magnitude) over 4×4-pixel
cells, each 2×2 block of cells L2-normalised, clipped at 0.2 and normalised again (L2-Hys). On 28×28 images: 7×7
cells, 6×6 blocks, 6·6·2·2·9 = 1,296 features. scikit-learn's SVMs classify them (a linear one, and one with an RBF
kernel), and raw pixels too, beside `lenet5` trained with `Trainer`."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data import ImageSet
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, fit, lesson_data, save_figure
from cnnlab.models import create_model

BINS, CELL, BLOCK = 9, 4, 2


def gradient_histograms(images: torch.Tensor, cell: int = CELL, bins: int = BINS) -> torch.Tensor:
    """uint8 (N, 1, H, W) → per-cell orientation histograms (N, bins, H // cell, W // cell)."""
    x = images.float() / 255
    gx = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate"), torch.tensor([[[[-1.0, 0.0, 1.0]]]]))
    gy = F.conv2d(F.pad(x, (0, 0, 1, 1), mode="replicate"), torch.tensor([[[[-1.0], [0.0], [1.0]]]]))
    magnitude = torch.hypot(gx, gy)
    position = torch.atan2(gy, gx).remainder(math.pi) / (math.pi / bins)  # 0 … bins: which bin centre, fractional
    low = position.floor()
    upper = position - low  # the share of the vote that goes to the next bin up
    votes = torch.zeros(x.shape[0], bins, *x.shape[2:])
    votes.scatter_add_(1, low.long() % bins, magnitude * (1 - upper))
    votes.scatter_add_(1, (low.long() + 1) % bins, magnitude * upper)
    return F.avg_pool2d(votes, cell) * cell * cell  # sums over each cell


def hog(images: torch.Tensor, cell: int = CELL, bins: int = BINS, block: int = BLOCK) -> torch.Tensor:
    """HOG-like features (N, D): the cell histograms of each block×block group of cells (stride one cell),
    L2-Hys normalised, concatenated."""
    hist = gradient_histograms(images, cell, bins)
    blocks = F.unfold(hist, block)  # (N, bins·block², blocks)
    blocks = blocks / (blocks.norm(dim=1, keepdim=True) + 1e-6)
    blocks = blocks.clamp(max=0.2)
    blocks = blocks / (blocks.norm(dim=1, keepdim=True) + 1e-6)
    return blocks.transpose(1, 2).flatten(1)


def _svm(kind: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict:
    try:
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, LinearSVC
    except ImportError as e:
        raise RuntimeError("lab svm needs scikit-learn: pip install 'cnnlab[explain]'") from e
    # the dual solver converges in seconds here; the primal one (dual="auto" picks it when samples outnumber
    # features) took minutes on 3,000 images
    model = LinearSVC(C=0.01, dual=True, max_iter=2000) if kind == "linear" else SVC(kernel="rbf", C=10)
    scaler = StandardScaler().fit(train_x)
    start = time.perf_counter()
    model.fit(scaler.transform(train_x), train_y)
    seconds = time.perf_counter() - start
    accuracy = float((model.predict(scaler.transform(test_x)) == test_y).mean())
    return {"accuracy": accuracy, "seconds": seconds}


def _lenet(train: ImageSet, test: ImageSet, epochs: int) -> dict:
    size = train.images.shape[-1]
    model = create_model("lenet5", num_classes=len(train.classes), img_size=size) if size == 28 else None
    if model is None:  # lenet5 expects 28×28: quick mode's 16×16 shapes get the same layout, smaller
        model = create_model("CL6-MP4-CL16p0-MP4-FC120-FC84-FC10", num_classes=len(train.classes), img_size=size)
    start = time.perf_counter()
    trained = fit(model, train, epochs)
    return {"accuracy": trained.accuracy(test), "seconds": time.perf_counter() - start}


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    # an RBF SVM's fit grows as n², so the SVMs get a subset; LeNet-5 also trains on the whole training set
    n_train, n_test, n_all, epochs = (400, 200, 800, 3) if quick else (6000, 2000, 60000, 5)
    train, test = lesson_data(quick, data, n_train, n_test)
    start = time.perf_counter()
    f_train, f_test = hog(train.images).numpy(), hog(test.images).numpy()
    say(
        f"{len(train)} training / {len(test)} test images; HOG-like features: {f_train.shape[1]:,} per image "
        f"({time.perf_counter() - start:.1f} s for all)"
    )
    pixels = (train.images.flatten(1).numpy(), test.images.flatten(1).numpy())
    y_train, y_test = train.labels.numpy(), test.labels.numpy()
    rbf = _svm("rbf", f_train, y_train, f_test, y_test)
    full, _ = lesson_data(quick, data, n_all, n_test)
    results = {
        "linear SVM, raw pixels": _svm("linear", pixels[0], y_train, pixels[1], y_test),
        "linear SVM, HOG features": _svm("linear", f_train, y_train, f_test, y_test),
        "RBF SVM, HOG features": rbf,
        f"LeNet-5, {epochs} epochs": _lenet(train, test, epochs),
        f"LeNet-5, {epochs} epochs, {len(full):,} images": _lenet(full, test, epochs),
    }
    say(f"test accuracy on {len(test)} images, and the time to fit on this CPU:")
    for name, r in results.items():
        say(f"  {name:<38} {r['accuracy']:.2%}   {r['seconds']:6.1f} s")
    scale = (len(full) / len(train)) ** 2
    say(
        f"On the same {len(train):,} images the best is {max(list(results)[:4], key=lambda n: results[n]['accuracy'])}."
        f" With all {len(full):,} images LeNet-5 reaches {results[list(results)[-1]]['accuracy']:.1%}; the RBF SVM's "
        f"fit, growing as n², would take about {scale:.0f}× its {rbf['seconds']:.0f} s (an estimate, not run). "
        "Learned features keep improving with more images at a cost linear in their number. (LeCun et al. 1998 "
        "compared LeNet-5 with SVMs, among others, on MNIST.)"
    )
    path = _plot(train, results, out)
    say(f"figure: {path}")
    return {"features": int(f_train.shape[1]), "results": results, "figure": str(path)}


def _plot(train: ImageSet, results, out) -> Path:
    fig = figure((14, 4))
    grid = fig.add_gridspec(2, 5, width_ratios=[1, 1, 1, 1, 3.5])
    hist = gradient_histograms(train.images[:4])
    angles = np.arange(BINS) * math.pi / BINS
    for i in range(4):
        img = train.images[i, 0].numpy()
        ax = fig.add_subplot(grid[i // 2, (i % 2) * 2])
        ax.imshow(img, cmap="gray")
        ax.set_title(train.classes[int(train.labels[i])], fontsize=8)
        ax = fig.add_subplot(grid[i // 2, (i % 2) * 2 + 1])
        _draw_hog(ax, hist[i].numpy(), angles)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[:, 4])
    names = list(results)
    ax.barh(range(len(names)), [results[n]["accuracy"] for n in names], color=["C7", "C0", "C0", "C2", "C2"])
    for i, n in enumerate(names):
        ax.text(
            results[n]["accuracy"] + 0.005,
            i,
            f"{results[n]['accuracy']:.1%}, {results[n]['seconds']:.1f} s",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel(f"test accuracy (time to fit); SVMs and the first LeNet-5 on {len(train):,} images")
    fig.suptitle("hand-crafted gradient histograms (HOG) + SVM against LeNet-5's learned features")
    return save_figure(fig, out, "svm")


def _draw_hog(ax, hist: np.ndarray, angles: np.ndarray) -> None:
    """Each cell's histogram as line segments across the cell, one per bin, oriented along the edge (perpendicular
    to the gradient) and as bright as its vote."""
    ax.set_facecolor("black")
    ch, cw = hist.shape[1:]
    top = hist.max() or 1.0
    for r in range(ch):
        for c in range(cw):
            for k, a in enumerate(angles):
                dx, dy = 0.45 * math.cos(a + math.pi / 2), 0.45 * math.sin(a + math.pi / 2)
                ax.plot([c - dx, c + dx], [r - dy, r + dy], color="white", lw=1.2, alpha=float(hist[k, r, c] / top))
    ax.set_xlim(-0.5, cw - 0.5)
    ax.set_ylim(ch - 0.5, -0.5)
    ax.set_aspect("equal")
