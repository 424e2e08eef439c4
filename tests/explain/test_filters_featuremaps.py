"""Filters and feature maps: shapes, value ranges, grid sizes of the PNGs, and bad input."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.explain import conv_filters, feature_maps, format_layers, list_layers, plot_filters, read_image
from cnnlab.explain.featuremaps import plot_feature_maps
from cnnlab.explain.plotting import grid_shape


def test_filters_are_the_weights_scaled_per_kernel(toy_lenet, tmp_path):
    model, _, _ = toy_lenet
    layer, k = conv_filters(model)
    assert layer == "features.0" and k.shape == (6, 1, 5, 5)
    w = model.features[0].weight.detach().numpy()
    lo, hi = w.min((1, 2, 3), keepdims=True), w.max((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(k, (w - lo) / (hi - lo), atol=1e-6)
    assert k.reshape(6, -1).min(1).max() == 0 and k.reshape(6, -1).max(1).min() == 1
    _, k2 = conv_filters(model, "features.3")
    assert k2.shape == (16, 6, 5, 5)
    small, big = plot_filters(k, tmp_path / "f1.png"), plot_filters(k2, tmp_path / "f2.png")
    with Image.open(small) as a, Image.open(big) as b:
        assert a.format == "PNG" and b.height > 2 * a.height  # 16 rows × 6 input channels vs a 2×3 grid


def test_filters_of_a_layer_without_kernels(toy_lenet):
    model, _, _ = toy_lenet
    with pytest.raises(ValueError, match="not a 2-D convolution"):
        conv_filters(model, "classifier.0")


def test_featuremaps_match_the_layer_output(toy_lenet, tmp_path):
    model, meta, test = toy_lenet
    layer, maps = feature_maps(model, meta, test.images[0], "features.4")  # the ReLU after conv2
    assert maps.shape == (16, 10, 10) and maps.min() >= 0
    x = (test.images[:1].float() / 255 - meta.mean[0]) / meta.std[0]
    with torch.no_grad():
        want = model.features[:5](x)[0].numpy()
    np.testing.assert_allclose(maps, want, atol=1e-5)
    # with in-place ReLUs the conv's own output (negative values included) is still what is shown
    inplace = copy.deepcopy(model)
    for m in inplace.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = True
    _, conv = feature_maps(inplace, meta, test.images[0], "features.3")
    np.testing.assert_allclose(conv, model.features[:4](x)[0].detach().numpy(), atol=1e-5)
    assert conv.min() < 0
    png = plot_feature_maps(maps, test.images[0].permute(1, 2, 0).numpy() / 255, tmp_path / "m.png", layer)
    with Image.open(png) as im:
        assert im.width > im.height  # input on the left, a 4×4 grid on the right
    assert grid_shape(16) == (4, 4) and grid_shape(6) == (2, 3)


def test_bad_layers_are_explained(toy_lenet):
    model, meta, test = toy_lenet
    with pytest.raises(ValueError, match=r"no layer named 'features\.9'.*valid layers: features, features\.0"):
        feature_maps(model, meta, test.images[0], "features.9")
    with pytest.raises(ValueError, match="outputs 120 values per image, no spatial map"):
        feature_maps(model, meta, test.images[0], "classifier.0")


def test_layers_lists_names_and_shapes(toy_lenet):
    model, meta, _ = toy_lenet
    rows = {r["name"]: r for r in list_layers(model, meta.input_size)}
    assert rows["features.0"]["output"] == [6, 28, 28] and rows["features.5"]["output"] == [16, 5, 5]
    assert rows["classifier.4"]["output"] == [10] and rows["classifier.0"]["type"] == "Linear"
    assert "features.3    Conv2d      16×10×10" in format_layers(list(rows.values()))


def test_wrong_mode_and_size_are_converted_and_said(toy_lenet, tmp_path):
    model, meta, test = toy_lenet
    path = tmp_path / "rgb.png"
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(path)
    image, notes = read_image(path, meta)
    assert image.shape == (1, 28, 28)
    assert any("converted RGB image to grayscale" in n for n in notes) and any("resized 50×40" in n for n in notes)
    _, maps = feature_maps(model, meta, image)
    assert maps.shape == (6, 28, 28)
