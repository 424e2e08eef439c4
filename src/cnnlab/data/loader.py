"""What the Trainer reads batches from (the `BatchLoader` protocol), and its in-memory implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import torch

from cnnlab.data.dataset import ImageSet


@runtime_checkable
class BatchLoader(Protocol):
    """The loader contract of `Trainer.fit` (training and validation data alike).

    An epoch is `len(loader)` batches of (x, y): x float model input (B, C, H, W) already transformed, y the batch's
    targets — labels (B,), soft targets (B, classes), or the boxes or masks of a task (data/targets.py).
    `batches(start)` yields one epoch's batches from batch `start` on; after `load_state_dict(state_dict())` taken
    mid-epoch, `batches(start)` replays the rest of that epoch exactly.
    A streaming (DataLoader-backed) or sharded source implements the same five members.
    """

    batch_size: int

    def __len__(self) -> int: ...

    @property
    def num_samples(self) -> int: ...

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def shard_bounds(i: int, batch_size: int, n: int, rank: int = 0, world: int = 1) -> tuple[int, int]:
    """Positions [start, stop) in the epoch's order of rank `rank`'s share of global batch `i` (of `world` ranks).

    The global batch is split into `world` contiguous parts whose sizes differ by at most one (like
    `tensor_split`); with one rank it is the whole batch. Every rank draws the same order (same seed), so the
    ranks' shares of a batch are disjoint and together the batch a single process would use."""
    first, last = i * batch_size, min((i + 1) * batch_size, n)
    if world == 1:
        return first, last
    size = last - first
    start = first + rank * (size // world) + min(rank, size % world)
    return start, start + size // world + (rank < size % world)


def num_batches(n: int, batch_size: int, drop_last: bool = False, world: int = 1) -> int:
    """Global batches per epoch; with several ranks a last batch smaller than the rank count is dropped (a rank
    would have no sample)."""
    full, rest = divmod(n, batch_size)
    return full + (0 < rest and not drop_last and rest >= world)


class ShardedBatches:
    """What every cnnlab loader shares: the epoch's seeded order, its rank's share of each global batch, the
    on-device finish of a batch (transform, channels_last) and the resume state. A subclass sets how many samples
    there are (`n`) and yields its batches from `batches(start)` through `_epoch(start)` and `_finish(x)`.

    shuffle: a new seeded permutation each epoch; `state_dict()` holds the generator as at the start of the epoch
    in progress (or of the next one), so a resumed run draws the same order.
    rank, world: a distributed run's shard — every rank draws the same order and yields its part of each global
    batch of `batch_size` (see `shard_bounds`); `len()` and `num_samples` stay those of the global batches.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
        seed: int,
        drop_last: bool,
        channels_last: bool,
        rank: int,
        world: int,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
        self.n = n
        self.batch_size, self.shuffle, self.transform = batch_size, shuffle, transform
        self.drop_last, self.channels_last = drop_last, channels_last
        self.rank, self.world = rank, world
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_start: torch.Tensor | None = None  # generator state the epoch in progress drew its order from

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last, self.world)

    @property
    def num_samples(self) -> int:
        return min(len(self) * self.batch_size, self.n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def _epoch(self, start: int) -> tuple[torch.Tensor | None, list[tuple[int, int]]]:
        """Draw the epoch's order (None without shuffle: the stored order) and this rank's [a, b) positions in it
        of the batches from `start` on. The generator's state before the draw is kept for `state_dict`."""
        self._epoch_start = self.generator.get_state()
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        bounds = [shard_bounds(i, self.batch_size, self.n, self.rank, self.world) for i in range(start, len(self))]
        return order, bounds

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as the model takes it: transformed on the device, in channels_last when asked."""
        if self.transform is not None:
            x = self.transform(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _epoch_done(self) -> None:
        self._epoch_start = None  # the epoch is whole: the generator now holds the next epoch's start

    def state_dict(self) -> dict:
        """The order's random state: the start of the epoch in progress, else of the next epoch."""
        return {"generator": self._epoch_start if self._epoch_start is not None else self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._epoch_start = None


class InMemoryLoader(ShardedBatches):
    """Iterate (x, y) batches of an ImageSet that lives on `device` as uint8.

    transform: batched callable applied on the device to each uint8 batch (e.g. Normalize + augmentation).
    pair_transform: applied before `transform` to (images, targets) → (images, targets), for augmentation that
    moves boxes or masks with the pixels (e.g. `functools.partial(augment.transform, kind="box")`).
    Order, shards and resume state: `ShardedBatches`.
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
        rank: int = 0,
        world: int = 1,
        pair_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        super().__init__(
            data.images.shape[0], batch_size, shuffle, transform, seed, drop_last, channels_last, rank, world
        )
        self.pair_transform = pair_transform
        self.device = torch.device(device)
        self.images = data.images.to(self.device, non_blocking=True)
        self.labels = data.labels.to(self.device, non_blocking=True)
        self.classes = data.classes

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's batches from batch `start` on: the epoch's order is drawn whole, the first `start` skipped.

        With the generator set back to its state at the start of an epoch, this replays the rest of that epoch
        (exact resume), without transforming the skipped batches.
        """
        order, bounds = self._epoch(start)
        order = order.to(self.device) if order is not None else None
        for a, b in bounds:
            if order is None:
                x, y = self.images[a:b], self.labels[a:b]
            else:
                idx = order[a:b]
                x, y = self.images[idx], self.labels[idx]
            if self.pair_transform is not None:
                x, y = self.pair_transform(x, y)
            yield self._finish(x), y
        self._epoch_done()
