"""Top losses: highest cross-entropy first, with the classes and probabilities the plot shows."""

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain import plot_top_losses, to_input, top_losses


def test_top_losses_are_sorted_and_consistent(toy_lenet, tmp_path):
    model, meta, test = toy_lenet
    result = top_losses(model, meta, test, k=5)
    with torch.no_grad():
        losses = F.cross_entropy(model(to_input(test.images, meta)), test.labels, reduction="none")
    np.testing.assert_allclose(result.losses, losses.sort(descending=True).values[:5].numpy(), rtol=1e-4)
    assert np.all(np.diff(result.losses) <= 0)
    np.testing.assert_allclose(result.losses, -np.log(result.true_probs), rtol=1e-3)
    assert np.all(result.pred_probs >= result.true_probs)
    png = plot_top_losses(result, test.images, test.classes, tmp_path / "t.png")
    assert png.exists()
