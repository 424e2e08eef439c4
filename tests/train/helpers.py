"""Small shared builders for the training tests."""

from __future__ import annotations

import torch

from cnnlab.data import ImageSet, InMemoryLoader, Normalize
from cnnlab.models import create_model
from cnnlab.train import Trainer, build_optimizer
from tests.conftest import make_images


def toy_set(n: int = 400, seed: int = 0) -> ImageSet:
    x, y = make_images(n, seed=seed)
    return ImageSet(torch.from_numpy(x)[:, None], torch.from_numpy(y).long(), [str(i) for i in range(10)])


def loaders(n: int = 400, batch_size: int = 32, transform=None) -> tuple[InMemoryLoader, InMemoryLoader]:
    data = toy_set(n)
    norm = Normalize([0.2], [0.3])
    train = InMemoryLoader(data, batch_size, shuffle=True, transform=transform or norm)
    return train, InMemoryLoader(data, 100, transform=norm)


def make_trainer(callbacks=(), lr=3e-3, precision="fp32", optimizer="adam", model=None, **kw) -> Trainer:
    model = model or create_model("lenet5")
    opt = build_optimizer(optimizer, model, lr)
    return Trainer(model, opt, device="cpu", precision=precision, callbacks=callbacks, **kw)
