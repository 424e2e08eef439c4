"""The fixed edge filters: cross-correlation and convolution against SciPy's definitions."""

import numpy as np
import pytest
import torch

from cnnlab.explain import EDGE_FILTERS, apply_edge_filters, convolve, correlation_vs_convolution, cross_correlate


def test_cross_correlation_and_convolution_match_scipy():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(0)
    image, kernel = rng.random((9, 11)), rng.standard_normal((3, 2))
    t_img, t_k = torch.from_numpy(image), torch.from_numpy(kernel)
    np.testing.assert_allclose(cross_correlate(t_img, t_k).numpy(), signal.correlate2d(image, kernel, "valid"))
    np.testing.assert_allclose(convolve(t_img, t_k).numpy(), signal.convolve2d(image, kernel, "valid"))


def test_vertical_edge_detector_on_a_step():
    step = torch.tensor([[1.0, 1, 1, 0, 0, 0]] * 5)
    out = apply_edge_filters(step)
    assert set(out) == set(EDGE_FILTERS)
    np.testing.assert_allclose(out["vertical edges"], [[0, 3, 3, 0]] * 3)
    np.testing.assert_allclose(out["horizontal edges"], np.zeros((3, 4)))
    np.testing.assert_allclose(out["difference [1, −1]"], [[0, 0, 1, 0, 0]] * 5)


def test_printed_example_shows_the_sign_flip():
    text = correlation_vs_convolution()
    assert "     0    30    30     0" in text and "     0   -30   -30     0" in text
