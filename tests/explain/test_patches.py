"""Maximally activated patches and the receptive field they are cut to."""

import torch

from cnnlab.explain import receptive_field, to_input, top_patches
from cnnlab.explain.patches import plot_patches


def test_receptive_field_matches_kernel_stride_padding_arithmetic(toy_lenet):
    # LeNet-5: conv 5×5 pad 2 → max-pool 2 → conv 5×5. Unit k of conv2 sees pool rows k…k+4, i.e. input rows
    # 2k − 2 … 2k + 11: 14 pixels; at k = 0 the two padded rows fall outside the image
    model, meta, _ = toy_lenet
    assert receptive_field(model, meta, "features.3", 0, (3, 3)) == (4, 18, 4, 18)
    assert receptive_field(model, meta, "features.3", 5, (0, 9)) == (0, 12, 16, 28)
    assert receptive_field(model, meta, "features.0", 0, (10, 20)) == (8, 13, 18, 23)  # conv1 alone: 5×5


def test_top_patches_are_the_strongest_units(toy_lenet, tmp_path):
    model, meta, test = toy_lenet
    patches = top_patches(model, meta, test.images, "features.4", channel=2, top=6, batch=64)
    acts = [p.activation for p in patches]
    assert acts == sorted(acts, reverse=True) and len({p.index for p in patches}) == 6
    with torch.no_grad():
        maps = model.features[:5](to_input(test.images, meta))[:, 2].flatten(1).amax(1)
    assert torch.allclose(torch.tensor(acts), maps.sort(descending=True).values[:6], atol=1e-5)
    for p in patches:
        t, b, l, r = p.box
        assert p.crop.shape == (b - t, r - l, 1) and 0 <= p.crop.min() and p.crop.max() <= 1
    png = plot_patches(patches, tmp_path / "p.png", "top patches", test.classes, test.labels)
    assert png.stat().st_size > 0


def test_crops_of_different_sizes_get_a_scale_note(tmp_path):
    import numpy as np

    from cnnlab.explain.patches import Patch, scale_note

    rng = np.random.default_rng(0)
    same = [Patch(i, (3, 3), 1.0 - i / 10, (4, 18, 4, 18), rng.random((14, 14, 1))) for i in range(4)]
    assert scale_note(same) is None
    mixed = [*same, Patch(7, (0, 9), 0.5, (0, 12, 16, 28), rng.random((12, 12, 1)))]
    note = scale_note(mixed)
    assert "12×12 to 14×14" in note and "different scales" in note
    plain = plot_patches(same, tmp_path / "same.png", "same")
    noted = plot_patches(mixed, tmp_path / "mixed.png", "mixed")
    assert noted.stat().st_size > plain.stat().st_size > 0
