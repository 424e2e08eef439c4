"""Shards of a global batch (no process group needed): disjoint, together the single process's batch."""

from __future__ import annotations

import torch

from cnnlab.data import ImageSet, InMemoryLoader
from cnnlab.data.loader import num_batches, shard_bounds


def _set(n: int) -> ImageSet:
    return ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n) % 10, list("0123456789"))


def test_shard_bounds_split_each_global_batch():
    for n, b, world in ((100, 32, 2), (101, 32, 3), (7, 4, 2), (64, 64, 4)):
        for i in range(num_batches(n, b, world=world)):
            parts = [shard_bounds(i, b, n, r, world) for r in range(world)]
            assert parts[0][0] == i * b and parts[-1][1] == min((i + 1) * b, n)
            assert all(parts[r][1] == parts[r + 1][0] for r in range(world - 1))
            sizes = [stop - start for start, stop in parts]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_a_last_batch_smaller_than_the_rank_count_is_dropped_only_with_several_ranks():
    assert num_batches(65, 32) == 3 and num_batches(65, 32, world=2) == 2 and num_batches(66, 32, world=2) == 3


def test_sharded_loaders_draw_the_single_process_batches():
    data = _set(100)
    one = InMemoryLoader(data, 32, shuffle=True, seed=5)
    ranks = [InMemoryLoader(data, 32, shuffle=True, seed=5, rank=r, world=2) for r in range(2)]
    assert len(one) == len(ranks[0]) == 4 and ranks[0].num_samples == 100
    for whole, *parts in zip(one.batches(), *(r.batches() for r in ranks), strict=True):
        assert torch.equal(whole[0], torch.cat([p[0] for p in parts]))
        assert torch.equal(whole[1], torch.cat([p[1] for p in parts]))
