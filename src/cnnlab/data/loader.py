"""Batches from an in-memory ImageSet, with the whole set moved to the device once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from cnnlab.data.dataset import ImageSet


class InMemoryLoader:
    """Iterate (x, y) batches of an ImageSet that lives on `device` as uint8.

    transform: batched callable applied on the device to each uint8 batch (e.g. Normalize + augmentation).
    shuffle: a new seeded permutation each epoch; the generator state can be saved and restored for resume.
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
