"""The decks' worked examples in `cnnlab lab`: every printed number checked against torch or a closed form.

The lesson functions are checked directly (fast); each whole lesson, which also draws its figure, is `slow`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.cli import main
from cnnlab.lab import run_lesson


def _run(name, tmp_path, figure=None, **kw):
    result = run_lesson(name, quick=True, out=tmp_path, echo=None, **kw)
    assert (tmp_path / f"lab-{figure or name}.png").stat().st_size > 5000
    return result


# ---- conv --slide: 10×9 ⋆ 4×4 → 7×6


@pytest.mark.slow
def test_conv_slide_10x9_by_4x4_is_7x6_and_torchs(tmp_path):
    from cnnlab.lab.conv import SLIDE_IMAGE, SLIDE_KERNEL, run_slide

    image, kernel = torch.tensor(SLIDE_IMAGE, dtype=torch.float64), torch.tensor(SLIDE_KERNEL, dtype=torch.float64)
    assert image.shape == (10, 9) and kernel.shape == (4, 4)
    lines = []
    r = run_slide(tmp_path, lines.append)
    torch_out = F.conv2d(image[None, None], kernel[None, None])[0, 0]
    assert r["output_shape"] == [7, 6] == list(torch_out.shape)
    assert r["correlation"] == r["window_sums"] == torch_out.tolist()
    assert r["strided"] == F.conv2d(image[None, None], kernel[None, None], stride=2)[0, 0].tolist()
    assert len(r["strided"]) == 4 and len(r["strided"][0]) == 3  # ⌊6/2⌋ + 1 × ⌊5/2⌋ + 1
    assert r["padded_shape"] == [9, 8]
    i, j = r["best"]["cell"]
    assert r["best"]["sum"] == torch_out.max() == torch_out[i, j]
    assert any("not in any document we hold" in line for line in lines)  # says where the numbers come from
    assert (tmp_path / "lab-conv-slide.png").exists()


# ---- xo --slide: the feature-map tables


@pytest.mark.slow
def test_xo_slide_tables_are_the_mean_of_products(tmp_path):
    from cnnlab.lab.xo import DETECTORS, run_slide, x_image

    lines = []
    r = run_slide(tmp_path, lines.append)
    x = torch.tensor(x_image(), dtype=torch.float64)[None, None]
    w = torch.tensor(list(DETECTORS.values()), dtype=torch.float64)[:, None]
    maps = F.conv2d(x, w)[0] / 9
    np.testing.assert_allclose(r["maps"], maps.numpy(), atol=1e-6)
    np.testing.assert_allclose(r["pooled"], F.max_pool2d(F.relu(maps), 2, ceil_mode=True).numpy(), atol=1e-6)
    assert np.array(r["maps"]).shape == (3, 7, 7) and np.array(r["pooled"]).shape == (3, 4, 4)
    assert r["maps"][0][0][0] == pytest.approx(7 / 9)  # the slides' 0.77 (truncated)
    assert "0.77" in "\n".join(lines) and "0.78" not in "\n".join(lines)
    assert r["votes"]["X"][0] > r["votes"]["X"][1] and r["votes"]["O"][1] > r["votes"]["O"][0]
    assert (tmp_path / "lab-xo-slide.png").exists()


def test_tables_truncate_as_the_slides_and_print_no_negative_zero():
    from cnnlab.lab._tables import cell, table, terms

    assert [cell(7 / 9, "t2"), cell(5 / 9, "t2"), cell(-1 / 9, "t2"), cell(-0.0)] == ["0.77", "0.55", "-0.11", "0"]
    assert table([[1, -1]]) == ["   1 -1"]
    assert terms([-1, 3, -2]) == "-1 + 3 + (-2)"


# ---- pool: 4×4 → 2×2


def test_pool_4x4_to_2x2_and_where_the_gradient_goes():
    from cnnlab.lab.pool import IMAGE, max_pool_gradient, pool_windows

    x = torch.tensor(IMAGE, dtype=torch.float64)
    cells = pool_windows(x)
    assert [c["max"] for c in cells] == [6, 8, 3, 4] == F.max_pool2d(x[None, None], 2).flatten().tolist()
    assert [c["mean"] for c in cells] == [3.25, 5.25, 2, 2] == F.avg_pool2d(x[None, None], 2).flatten().tolist()
    grad = max_pool_gradient(x)
    assert grad.sum() == 4 and all(
        grad[2 * c["cell"][0] + c["at"][0], 2 * c["cell"][1] + c["at"][1]] == 1 for c in cells
    )


@pytest.mark.slow
def test_pool_lesson(tmp_path):
    r = _run("pool", tmp_path)
    assert r["max"] == [[6, 8], [3, 4]]
    assert r["sizes"]["2×2/2 ceil on 7×7 (the X/O example)"] == 4 and r["sizes"]["2×2/2 on 7×7"] == 3
    assert r["sizes"]["3×3/2 on 55×55 (AlexNet's overlapping pools)"] == 27
    assert 0 <= r["shift_kept"] <= 4


# ---- channels: M kernels of depth N


def test_channels_sum_over_input_channels_is_conv2d():
    from cnnlab.lab.channels import PAD, STRIDE, example, per_channel

    x, w, b = example()
    parts = per_channel(x, w)
    assert parts.shape == (2, 3, 3, 3)  # (M, N, H', W')
    torch.testing.assert_close(parts.sum(1) + b.view(-1, 1, 1), F.conv2d(x[None], w, b, stride=STRIDE, padding=PAD)[0])


@pytest.mark.slow
def test_channels_lesson(tmp_path):
    r = _run("channels", tmp_path)
    assert r["summed"] == r["output"]
    assert r["params"] == r["torch_params"] == 2 * 3 * 3 * 3 + 2
    assert np.array(r["output"]).shape == (2, 3, 3)


# ---- sparse: the Deep Learning book's 320×280 edge example


def test_sparse_counts_are_the_books():
    from cnnlab.lab.sparse import counts

    c = counts()
    assert c["conv_ops"] == 319 * 280 * 3 == 267_960
    assert c["dense_entries"] == 320 * 280 * 319 * 280 > 8_000_000_000
    assert c["dense_flops"] > 16_000_000_000 and round(c["dense_flops"] / c["conv_ops"], -3) == 60_000
    assert c["sparse_nonzeros"] == 2 * 319 * 280


def test_sparse_matrix_is_the_convolution():
    from cnnlab.lab.sparse import edge_map, edge_matrix, scene

    image = scene(40, 30)
    product = torch.sparse.mm(edge_matrix(40, 30), image.reshape(-1, 1)).view(30, 39)
    torch.testing.assert_close(product, edge_map(image))
    dense = edge_matrix(5, 4, dense=True)
    assert dense.shape == (4 * 4, 5 * 4) and int((dense != 0).sum()) == 2 * 4 * 4
    small = image[:4, :5]
    torch.testing.assert_close((dense @ small.reshape(-1)).view(4, 4), small[:, 1:] - small[:, :-1])


@pytest.mark.slow
def test_sparse_lesson(tmp_path):
    r = _run("sparse", tmp_path)
    assert r["conv_ops"] == 267_960 and r["sparse_equals_conv"] and r["dense_equals_conv"]


# ---- likelihood


def test_likelihood_functions():
    from cnnlab.lab.likelihood import classifier_likelihood, coin_likelihood

    theta = np.linspace(0.01, 0.99, 99)
    assert theta[np.argmax(coin_likelihood(theta, 7, 10))] == pytest.approx(0.7)
    logits, labels = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    r = classifier_likelihood(logits, labels)
    assert r["mean_nll"] == pytest.approx(float(F.cross_entropy(logits, labels)))
    assert r["likelihood"] == pytest.approx(math.exp(-r["nll"]))


@pytest.mark.slow
def test_likelihood_lesson(tmp_path):
    r = _run("likelihood", tmp_path)
    coin = r["coin"]
    assert coin["argmax"] == pytest.approx(coin["heads"] / coin["n"], abs=1e-3) and coin["closed_form"] == 0.7
    c = r["classifier"]
    assert c["mean_nll"] == pytest.approx(c["torch_cross_entropy"], abs=1e-12)
    assert c["likelihood"] == pytest.approx(math.exp(-c["nll"]))
    assert c["likelihood"] == pytest.approx(np.prod(c["p_true"]))
    assert c["underflow"] == 0.0  # 0.9^10000 in float32
    assert r["gaussian_nll"] == pytest.approx(r["half_sse_plus_const"])


# ---- perceptron


def test_perceptron_converges_within_novikoffs_bound():
    from cnnlab.lab.perceptron import TRUE_W, novikoff_bound, separable_points, train

    for seed in range(5):
        x, y = separable_points(60, margin=0.1, seed=seed)
        r = train(x, y)
        assert r["converged"] and len(r["updates"]) <= novikoff_bound(x, y, TRUE_W)[2]
        assert np.all(y * (np.hstack([x, np.ones((len(x), 1))]) @ r["w"]) > 0)  # every point on its side


def test_perceptron_rule_and_gates():
    from cnnlab.lab.perceptron import CORNERS, GATES, rule_is_sgd_step, train

    assert rule_is_sgd_step(np.array([0.5, -1.0, 1.0]), -1.0, np.array([1.0, 0.2, 0.3]))
    for gate in ("AND", "OR"):
        r = train(CORNERS, np.array(GATES[gate], float))
        assert r["converged"]
    xor = train(CORNERS, np.array(GATES["XOR"], float), max_epochs=50)
    assert not xor["converged"] and min(xor["mistakes"]) > 0


@pytest.mark.slow
def test_perceptron_lesson(tmp_path):
    r = _run("perceptron", tmp_path)
    assert r["converged"] and r["updates"] <= r["bound"] and r["sgd_step"]
    assert r["gates"]["AND"]["outputs"] == [-1, -1, -1, 1] and not r["gates"]["XOR"]["converged"]
    assert r["gates"]["XOR with x₁·x₂"]["outputs"] == [-1, 1, 1, -1]


# ---- the command line


@pytest.mark.slow
def test_cli_slide_variants(tmp_path, capsys):
    assert main(["lab", "conv", "--slide", "--out", str(tmp_path)]) == 0
    assert "10×9" in capsys.readouterr().out and (tmp_path / "lab-conv-slide.png").exists()
    assert main(["lab", "pool", "--slide", "--out", str(tmp_path)]) == 2  # only conv and xo have one
    assert "does not take --slide" in capsys.readouterr().err
