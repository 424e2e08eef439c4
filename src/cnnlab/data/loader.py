"""What the Trainer reads batches from (the `BatchLoader` protocol), and its in-memory implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import torch

from cnnlab.data.dataset import ImageSet


@runtime_checkable
class BatchLoader(Protocol):
    """The loader contract of `Trainer.fit` (training and validation data alike).

    An epoch is `len(loader)` batches of (x, y): x float model input (B, C, H, W) already transformed, y labels (B,)
    or soft targets (B, classes). `batches(start)` yields one epoch's batches from batch `start` on; after
    `load_state_dict(state_dict())` taken mid-epoch, `batches(start)` replays the rest of that epoch exactly.
    A streaming (DataLoader-backed) or sharded source implements the same five members.
    """

    batch_size: int

    def __len__(self) -> int: ...

    @property
    def num_samples(self) -> int: ...

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class InMemoryLoader:
    """Iterate (x, y) batches of an ImageSet that lives on `device` as uint8.

    transform: batched callable applied on the device to each uint8 batch (e.g. Normalize + augmentation).
    shuffle: a new seeded permutation each epoch; `state_dict()` holds the generator as at the start of the epoch
    in progress (or of the next one), so a resumed run draws the same order.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        shuffle: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = data.images.to(self.device, non_blocking=True)
        self.labels = data.labels.to(self.device, non_blocking=True)
        self.classes = data.classes
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.transform = transform
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_start: torch.Tensor | None = None  # generator state the epoch in progress drew its order from

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else self.images.shape[0]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's batches from batch `start` on: the epoch's order is drawn whole, the first `start` skipped.

        With the generator set back to its state at the start of an epoch, this replays the rest of that epoch
        (exact resume), without transforming the skipped batches.
        """
        n = self.images.shape[0]
        self._epoch_start = self.generator.get_state()
        order = torch.randperm(n, generator=self.generator).to(self.device) if self.shuffle else None
        for i in range(start, len(self)):
            if order is None:
                x, y = (
                    self.images[i * self.batch_size : (i + 1) * self.batch_size],
                    self.labels[i * self.batch_size : (i + 1) * self.batch_size],
                )
            else:
                idx = order[i * self.batch_size : (i + 1) * self.batch_size]
                x, y = self.images[idx], self.labels[idx]
            if self.transform is not None:
                x = self.transform(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
        self._epoch_start = None  # the epoch is whole: the generator now holds the next epoch's start

    def state_dict(self) -> dict:
        """The order's random state: the start of the epoch in progress, else of the next epoch."""
        return {"generator": self._epoch_start if self._epoch_start is not None else self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._epoch_start = None
