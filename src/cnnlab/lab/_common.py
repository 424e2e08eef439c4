"""What the lessons share: their data (tiny generated images in quick mode, Fashion-MNIST otherwise), a short
training run through `cnnlab.train.Trainer`, accuracy through `cnnlab.infer`, and the printed report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab import infer
from cnnlab.data import ImageSet, InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.explain.plotting import save
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import Callback
from cnnlab.train.callbacks.progress import plural

# where a lesson says what it is doing now (`stage`): set by `run_lesson` (the CLI: stderr), none by default
_STAGES: ContextVar[Callable[[str], None] | None] = ContextVar("lab_stages", default=None)


@contextmanager
def stages_to(status: Callable[[str], None] | None) -> Iterator[None]:
    """Send the `stage` lines of the lessons run inside to `status` (None: nowhere)."""
    token = _STAGES.set(status)
    try:
        yield
    finally:
        _STAGES.reset(token)


def stage(line: str) -> None:
    """One line saying what the lesson does now, before a step that takes a while (training, mostly); it is not
    part of the lesson's report."""
    status = _STAGES.get()
    if status is not None:
        status(line)


@dataclass
class Report:
    """The lines a lesson prints (as they come, through `echo`) and the numbers it returns."""

    echo: Callable[[str], None] | None = print
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str = "") -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)


def figure_path(out: Path | str, lesson: str) -> Path:
    return Path(out) / f"lab-{lesson}.png"


def save_figure(fig, out: Path | str, lesson: str) -> Path:
    return save(fig, figure_path(out, lesson), dpi=100)


SHAPE = 8


def _shape_masks() -> list[np.ndarray]:
    """Four 8×8 shapes: filled square, ring, plus, diagonal cross."""
    masks = [np.zeros((SHAPE, SHAPE), bool) for _ in range(4)]
    masks[0][1:-1, 1:-1] = True
    masks[1][:2] = masks[1][-2:] = masks[1][:, :2] = masks[1][:, -2:] = True
    masks[2][3:5] = masks[2][:, 3:5] = True
    i = np.arange(SHAPE)
    masks[3][i, i] = masks[3][i, SHAPE - 1 - i] = True
    return masks


def toy_set(n: int, size: int = 16, seed: int = 0) -> ImageSet:
    """A tiny generated task for quick mode: the class (0–3) is a bright shape drawn near the centre on dim noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    masks = _shape_masks()
    lo, hi = (size - SHAPE) // 2 - 1, (size - SHAPE) // 2 + 2
    for img, k, (r, c) in zip(images, labels, rng.integers(lo, hi, (n, 2)), strict=True):
        img[r : r + SHAPE, c : c + SHAPE][masks[k]] = 230
    return ImageSet(torch.from_numpy(images)[:, None], torch.from_numpy(labels), ["square", "ring", "plus", "cross"])


def lesson_data(quick: bool, data: str | None, n_train: int, n_test: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(train, test): generated shapes in quick mode without `data`, else the first images of dataset `data`
    (default fashion-mnist; never downloaded: a missing dataset says how to get it)."""
    if quick and data is None:
        return toy_set(n_train, seed=seed), toy_set(n_test, seed=seed + 1)
    splits = load_dataset(data or "fashion-mnist", val_split=0, allow_download=False)
    g = torch.Generator().manual_seed(seed)
    train = splits.train.subset(torch.randperm(len(splits.train), generator=g)[:n_train])
    return train, splits.test.subset(slice(0, n_test))


@dataclass
class Trained:
    """A model trained by `fit`, with the normalisation it was trained with and its per-epoch history."""

    model: nn.Module
    mean: list[float]
    std: list[float]
    history: list[dict]

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Images on the 0–1 scale (B, C, H, W) → model input."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x01 - mean) / std

    def logits01(self, x01: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """Logits for float images on 0–1 (B, C, H, W), through `cnnlab.infer.run`."""
        return infer.run(self.model, (self.normalize(c) for c in x01.split(batch)), "cpu", "fp32", fold_bn=False)

    def accuracy01(self, x01: torch.Tensor, labels: torch.Tensor) -> float:
        return (self.logits01(x01).argmax(1) == labels).float().mean().item()

    def accuracy(self, data: ImageSet) -> float:
        logits = infer.predict_logits(self.model, data.images, self.mean, self.std, "cpu", "fp32", fold_bn=False)
        return (logits.argmax(1) == data.labels).float().mean().item()


class StepLosses(Callback):
    """Every training step's loss, as a float (the lessons that plot a first epoch step by step)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.losses.append(float(logs["loss"]))


def fit(
    model: nn.Module,
    data: ImageSet,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    transform: Callable | None = None,
    optimizer: str = "adam",
    stats: tuple[list[float], list[float]] | None = None,
    mix: Callable | None = None,
    steps: StepLosses | None = None,
    label: str | None = None,
) -> Trained:
    """Train `model` on `data` through `cnnlab.train.Trainer` (CPU, fp32); `transform` runs on the normalised batch
    (e.g. a fixed pixel shuffle).

    optimizer: a `build_optimizer` name (adam; gd is plain SGD). stats: (mean, std) on the 0–1 scale to normalise
    with instead of the data's own (mean 0, std 1/255 feeds raw 0–255 pixels). mix: the Trainer's batch hook
    (x, y) → (x, y), e.g. adversarial examples added to each batch. steps: collects every step's loss. label: what
    the stage line calls the model (default: its name)."""
    torch.manual_seed(seed)
    mean, std = stats or channel_stats(data.images)
    norm = Normalize(mean, std)
    loader = InMemoryLoader(
        data,
        batch_size,
        shuffle=True,
        seed=seed,
        transform=norm if transform is None else (lambda x: transform(norm(x))),
    )
    opt = build_optimizer(optimizer, model, lr)
    callbacks = [steps] if steps is not None else []
    trainer = Trainer(model, opt, device="cpu", precision="fp32", callbacks=callbacks, mix=mix)
    name = label or getattr(model, "model_name", type(model).__name__)
    stage(f"lab: training {name}, {plural(epochs, 'epoch')} of {len(data):,} images …")
    history = trainer.fit(loader, epochs)
    return Trained(model, list(mean), list(std), history)


def as01(data: ImageSet) -> torch.Tensor:
    return data.images.float() / 255
