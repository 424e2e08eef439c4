"""Does a source fit the task? The features of trained weights against those of a fresh network, before fine-tuning.

A fine-tune starts from the source's body; where that body's features separate the new task's classes less well than
the untrained network's own random ones, the fine-tune starts behind training from scratch and, with few images,
stays behind (LeNet-5 from 1,297 scanned digits to Fashion-MNIST lost 1.1–1.9 points to scratch at 10 to 500 images
per class: BENCHMARKS.md, "Fine-tuning defaults"). `check_fit` measures that before any step: a class-balanced sample of the
training images (at most `CHECK_IMAGES`) goes through both networks once, and each set of codes — the input of the
first layer that starts new, i.e. the body's output — is scored by how well it separates the classes without any
training (`separability`: leave-one-out nearest neighbour and nearest class mean on centred, unit-length codes).
The source is used unless it scores more than `MARGIN` below the fresh network.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.train.transfer import fc_layers

CHECK_IMAGES = 1_000  # images in the check at most, class-balanced
MARGIN = 0.01  # the source is used unless it scores this much (a fraction of the images) below a fresh network
_BATCH = 256


@dataclass(frozen=True)
class FitCheck:
    """The check's scores (fractions of the sample separated correctly) and what it decided."""

    source: float  # the source's features
    fresh: float  # a fresh network's (this run's own initialization)
    images: int  # images in the sample
    margin: float = MARGIN

    @property
    def fits(self) -> bool:
        return self.source >= self.fresh - self.margin

    def line(self) -> str:
        scores = (
            f"the source's features separate {self.images:,} training images' classes "
            f"{100 * self.source:.1f} % against a fresh network's {100 * self.fresh:.1f} %"
        )
        if self.fits:
            return f"fit check: {scores}: fine-tuning from the source"
        return f"fit check: {scores}: the source does not fit, training from scratch (--init-always keeps it)"

    def to_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits}


def separability(codes: torch.Tensor, labels: torch.Tensor) -> float:
    """How well `codes` (N, D) separate `labels` (N,) with no training: the mean of the leave-one-out accuracies of
    the nearest neighbour and of the nearest class mean, on codes centred and scaled to unit length (cosine)."""
    flat = codes.float().flatten(1)
    z = F.normalize(flat - flat.mean(0), dim=1)
    y = labels.long()
    n, classes = len(y), int(y.max()) + 1
    sim = z @ z.T
    sim.fill_diagonal_(-float("inf"))
    nearest = (y[sim.argmax(1)] == y).float().mean()
    sums = torch.zeros(classes, z.shape[1]).index_add_(0, y, z)
    counts = torch.bincount(y, minlength=classes).float()
    dist = torch.cdist(z, sums / counts.clamp(min=1)[:, None]).square()
    dist[:, counts == 0] = float("inf")
    own = (sums[y] - z) / (counts[y] - 1).clamp(min=1)[:, None]  # each image's own class mean without it
    dist[torch.arange(n), y] = torch.where(counts[y] > 1, (z - own).square().sum(1), float("inf"))
    centroid = (dist.argmin(1) == y).float().mean()
    return float((nearest + centroid) / 2)


def balanced_sample(labels: torch.Tensor, limit: int = CHECK_IMAGES, seed: int = 0) -> torch.Tensor:
    """Indices of at most `limit` images, the same number from each class where the classes allow (seeded)."""
    labels = labels.long()
    classes = int(labels.max()) + 1 if len(labels) else 0
    per = max(1, limit // max(classes, 1))
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(classes):
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per]])
    out = torch.cat(picks) if picks else labels.new_zeros(0)
    return out.sort().values[:limit]


@contextmanager
def _batch_statistics(model: nn.Module):
    """Eval mode (no dropout), batch norm on the batch's own statistics; running statistics restored after."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    for m in norms:
        m.train()
    try:
        yield
    finally:
        for m, buffers in zip(norms, saved, strict=True):
            for k, v in buffers.items():
                getattr(m, k).copy_(v)
        for m, mode in modes:
            m.training = mode


def code_layer(model: nn.Module, new_fc: bool = True) -> nn.Module:
    """The layer whose input the check scores: the first fully connected layer below the classifier where those
    start new (`new_fc`; LeNet-5's classifier.0), else the classifier itself — the output of what is transferred."""
    modules = dict(model.named_modules())
    fc = fc_layers(model) if new_fc else []
    return modules[fc[0] if fc else model.default_cfg["classifier"]]


def layer_codes(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The inputs of `layer` (flattened) for `images` (what `transform` turns into batches the model takes, e.g.
    uint8 images and their normalization), in batches, no gradient.

    Batch norm uses each batch's statistics (as training will on these images; a fresh network's running statistics
    mean nothing yet), and the model's buffers are as before afterwards."""
    got: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda m, args, out: got.append(args[0].detach().flatten(1).float().cpu()))
    try:
        with torch.no_grad(), _batch_statistics(model):
            # batches of equal size (none of one image, which batch norm in training mode cannot normalize)
            for batch in torch.tensor_split(images, max(1, -(-len(images) // _BATCH))):
                model(transform(batch))
    finally:
        hook.remove()
    return torch.cat(got)


def check_fit(
    model: nn.Module,
    load: Callable[[], object],
    images: torch.Tensor,
    labels: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    new_fc: bool = True,
    seed: int = 0,
    margin: float = MARGIN,
) -> tuple[FitCheck, object]:
    """Score a fresh `model` and the same model after `load()` (which copies the source into it and returns its
    report) on `balanced_sample` of `images` / `labels` (`transform` makes model inputs of them), at the input of
    `code_layer(model, new_fc)`. Where the source does not fit, the model gets its fresh weights back. Returns (the
    check, load's report)."""
    pick = balanced_sample(labels, seed=seed)
    images, labels, layer = images[pick], labels[pick], code_layer(model, new_fc)
    fresh_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fresh = separability(layer_codes(model, layer, images, transform), labels)
    report = load()
    source = separability(layer_codes(model, layer, images, transform), labels)
    check = FitCheck(source, fresh, len(labels), margin)
    if not check.fits:
        model.load_state_dict(fresh_state)
    return check, report
