import numpy as np
import torch

from cnnlab.data import ImageSet, InMemoryLoader, Normalize, channel_stats


def test_normalize_matches_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    want = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(Normalize(mean, std)(x), want)


def test_channel_stats_match_numpy():
    x = torch.randint(0, 256, (50, 3, 6, 6), dtype=torch.uint8)
    mean, std = channel_stats(x)
    arr = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, arr.mean((0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(std, arr.std((0, 2, 3)), rtol=1e-8)


def test_loader_covers_every_sample_once_per_epoch():
    data = ImageSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10), ["a"])
    loader = InMemoryLoader(data, 3, shuffle=True, seed=1)
    assert len(loader) == 4
    epoch1 = torch.cat([y for _, y in loader])
    epoch2 = torch.cat([y for _, y in loader])
    assert sorted(epoch1.tolist()) == list(range(10)) and not torch.equal(epoch1, epoch2)
    again = InMemoryLoader(data, 3, shuffle=True, seed=1)
    assert torch.equal(torch.cat([y for _, y in again]), epoch1)  # seeded
