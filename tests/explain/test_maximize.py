"""Activation maximization raises its target at least tenfold and stays a valid image."""

import numpy as np
import pytest

from cnnlab.explain import format_change, maximize


@pytest.mark.fashion
def test_maximize_raises_conv_channels_tenfold(fashion_lenet):
    model, meta, _ = fashion_lenet
    result = maximize(model, meta, list(range(16)), layer="features.4")  # all 16 ReLU maps of LeNet-5's conv2
    alive = result.start > 0  # a channel that is off for the gray start has no gradient to climb (and no ratio)
    assert alive.sum() >= 12
    assert np.all(result.end[alive] >= 10 * result.start[alive]), format_change(result)
    assert result.images.shape == (16, 28, 28, 1) and result.images.min() >= 0 and result.images.max() <= 1


@pytest.mark.fashion
def test_maximize_class_logits(fashion_lenet):
    model, meta, _ = fashion_lenet
    result = maximize(model, meta, [0, 7, 9], steps=128)
    assert result.labels == ["T-shirt/top", "Sneaker", "Ankle boot"]
    assert np.all(result.end > result.start + 5)  # logits climb by several units from a gray start
    assert "T-shirt/top: activation" in format_change(result)


def test_maximize_rejects_a_channel_out_of_range(toy_lenet):
    model, meta, _ = toy_lenet
    with pytest.raises(ValueError, match="channel 6 is out of range"):
        maximize(model, meta, [6], layer="features.0", steps=1)


def test_a_dead_channel_is_named_in_the_text_and_on_its_tile(toy_lenet, tmp_path):
    import copy

    import torch

    from cnnlab.explain import plot_maximized

    model, meta, _ = toy_lenet
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.features[0].bias[2] = -1e4  # conv1 channel 2 is negative for every input: its ReLU never fires
    result = maximize(model, meta, [0, 2], layer="features.1", steps=8)
    assert result.dead.tolist() == [False, True] and result.end[1] == 0
    text = format_change(result)
    assert "channel 2: activation 0 → 0 — dead channel: no input raises it" in text
    assert "channel 0" in text.splitlines()[0] and "dead" not in text.splitlines()[0]
    png = plot_maximized(result, tmp_path / "max.png", "toy")
    assert png.stat().st_size > 1000
