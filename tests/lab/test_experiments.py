"""The decks' claims as short experiments in `cnnlab lab`: the pieces checked against closed forms and torch (fast),
each whole lesson in quick mode (generated data, tiny sizes) with the direction of its effect (`slow`: they train)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnnlab.lab import run_lesson


def _run(name, tmp_path, **kw):
    result = run_lesson(name, quick=True, out=tmp_path, echo=None, **kw)
    assert (tmp_path / f"lab-{name}.png").stat().st_size > 5000
    return result


# ---- standardize


def test_standardize_curvature_scales_with_the_input():
    from cnnlab.lab.standardize import second_moment_eigs

    images = torch.randint(0, 256, (200, 1, 6, 6), dtype=torch.uint8)
    eigs = second_moment_eigs(images, 0.5, 0.29)
    assert eigs["raw 0–255"][0] == pytest.approx(255**2 * eigs["0–1"][0], rel=1e-9)  # every eigenvalue × 255²
    # all-positive pixels: one eigenvalue along the mean image, far above the rest; centring removes it
    assert eigs["0–1"][0] / eigs["0–1"].mean() > 5 * eigs["standardized"][0] / eigs["standardized"].mean()


@pytest.mark.slow
def test_standardize_lesson(tmp_path):
    r = _run("standardize", tmp_path)["runs"]
    for model in ("linear", "CNN"):
        raw, std = r[f"{model}, raw 0–255"], r[f"{model}, standardized"]
        assert std["first_epoch_loss"] != raw["first_epoch_loss"]  # standardization changes the first epoch
        assert std["first_epoch_loss"] < raw["first_epoch_loss"]  # 0–255 pixels overshoot (or diverge)
        assert not std["diverged"] and 0 <= std["accuracy"] <= 1


# ---- equivariance


def test_conv_commutes_with_shifts_and_isotropic_kernels_with_rot90():
    from cnnlab.lab.equivariance import equivariance_error, log_kernel

    torch.manual_seed(0)
    x = torch.randn(4, 1, 24, 24, dtype=torch.float64)
    oriented = torch.randn(6, 1, 5, 5, dtype=torch.float64)
    iso = log_kernel(5)[None, None]
    assert torch.equal(iso[0, 0], torch.rot90(iso[0, 0])) and torch.equal(iso[0, 0], iso[0, 0].T)
    assert equivariance_error(oriented, x, "shift", 3) < 1e-12
    assert equivariance_error(iso, x, "rot90", 1) < 1e-12
    assert equivariance_error(oriented, x, "rot90", 1) > 0.3
    assert equivariance_error(iso, x, "zoom", 2) > 0.1 and equivariance_error(oriented, x, "zoom", 2) > 0.1


def test_affine_rotation_matches_rot90():
    from cnnlab.lab.equivariance import affine

    x = torch.randn(2, 1, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(affine(x, degrees=90), torch.rot90(x, 1, (2, 3)), atol=1e-9, rtol=0)
    torch.testing.assert_close(affine(x), x, atol=1e-9, rtol=0)


@pytest.mark.slow
def test_equivariance_lesson(tmp_path):
    r = _run("equivariance", tmp_path)
    e = r["errors"]
    assert e["shift 3 px"]["learned"] < 1e-5 and e["rotate 90°"]["isotropic"] < 1e-5
    assert e["rotate 90°"]["learned"] > 0.1 and e["zoom 2×"]["learned"] > 0.05
    assert r["accuracy"]["shift"][0] == r["accuracy"]["rotate"][0]  # both start from the untransformed images


# ---- batch size


@pytest.mark.slow  # 150 backward passes: seconds when other jobs load the CPU
def test_gradient_noise_falls_as_one_over_b():
    from torch import nn

    from cnnlab.lab.batch import gradient_noise

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.randn(512, 1, 4, 4), torch.randint(0, 3, (512,))
    noise = gradient_noise(model, x, y, (4, 16, 64), draws=48)
    for b in (16, 64):  # the finite-population law: var ∝ (1/B)(N − B)/(N − 1)
        expected = noise[4] * (4 / b) * ((512 - b) / (512 - 4))
        assert expected / 1.5 < noise[b] < expected * 1.5


@pytest.mark.slow
def test_batch_lesson(tmp_path):
    r = _run("batch", tmp_path)
    runs = r["runs"]
    assert [runs[b]["updates"] for b in (8, 32, 128)] == [math.ceil(512 / b) for b in (8, 32, 128)]
    noise = [r["noise"][b] for b in (8, 32, 128)]
    assert noise[0] > noise[1] > noise[2]
    assert all(0 <= v["accuracy"] <= 1 and v["seconds_per_epoch"] > 0 for v in runs.values())


# ---- adversarial training


def test_fgsm_mix_doubles_the_batch_within_epsilon():
    from cnnlab.lab.advtrain import fgsm_mix
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("CL4k3-MP4-FC3", num_classes=3, img_size=8)
    mean, std = [0.3], [0.2]
    x01 = torch.rand(5, 1, 8, 8)
    x, y = (x01 - 0.3) / 0.2, torch.randint(0, 3, (5,))
    mixed, labels = fgsm_mix(model, 0.1, mean, std)(x, y)
    assert mixed.shape == (10, 1, 8, 8) and torch.equal(labels, torch.cat([y, y]))
    torch.testing.assert_close(mixed[:5], x)
    adv01 = mixed[5:] * 0.2 + 0.3
    assert (adv01 - x01).abs().max() <= 0.1 + 1e-5 and adv01.min() >= -1e-6 and adv01.max() <= 1 + 1e-6
    assert all(p.grad is None for p in model.parameters())  # making the examples leaves no parameter gradient


@pytest.mark.slow
def test_advtrain_lesson(tmp_path):
    r = _run("advtrain", tmp_path)
    k = r["epsilons"].index(r["eps_train"])
    std, adv = r["standard"], r["adversarial"]
    assert len(std["fgsm"]) == len(adv["fgsm"]) == len(r["epsilons"])
    # the direction only (quick mode is small): trained against the attack, the model resists it at least as well
    assert adv["fgsm"][k] >= std["fgsm"][k] and adv["iterated"] >= std["iterated"]


# ---- hand-crafted features + SVM


def test_gradient_histograms_vote_by_orientation():
    from cnnlab.lab.svm import BINS, gradient_histograms, hog

    vertical = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    vertical[..., 4:] = 255  # dark left, bright right: a horizontal gradient, orientation 0°
    h = gradient_histograms(vertical).sum((0, 2, 3)).tolist()
    assert h[0] > 0 and sum(h[1:]) == 0
    horizontal = vertical.transpose(2, 3)  # a vertical gradient, 90°: half-way between the bins at 80° and 100°
    h = gradient_histograms(horizontal).sum((0, 2, 3)).tolist()
    assert h[4] == pytest.approx(h[5], rel=1e-4) and h[4] > 0 and sum(h) == pytest.approx(h[4] + h[5], rel=1e-4)
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    f = hog(images)
    assert f.shape == (3, 6 * 6 * 2 * 2 * BINS)
    blocks = f.view(3, 36, -1)
    torch.testing.assert_close(blocks.norm(dim=2), torch.ones(3, 36), atol=1e-4, rtol=0)  # L2-Hys: unit blocks


@pytest.mark.slow
def test_svm_lesson(tmp_path):
    pytest.importorskip("sklearn")
    r = _run("svm", tmp_path)
    assert r["features"] == 3 * 3 * 2 * 2 * 9  # 16×16 quick images: 4×4 cells, 3×3 blocks
    assert all(0 <= v["accuracy"] <= 1 and v["seconds"] >= 0 for v in r["results"].values())


# ---- Gabor filters


def test_gabor_bank_matches_itself_and_not_noise():
    from cnnlab.lab.gabor import THETAS, bank, best_matches, gabor

    gabors, labels = bank(7)
    assert len(gabors) == len(labels) == 8 * 4 * 2 and len(set(THETAS)) == 8
    best, index = best_matches(gabor(7, 45.0, 4.5, 0.0)[None], gabors)
    assert best[0] == pytest.approx(1.0) and labels[int(index[0])] == (45.0, 4.5, "even")
    best, _ = best_matches(-gabor(7, 90.0, 6.0, math.pi / 2)[None], gabors)  # a kernel and its negative alike
    assert best[0] == pytest.approx(1.0)
    noise, _ = best_matches(torch.randn(200, 7, 7, generator=torch.Generator().manual_seed(0)), gabors)
    assert noise.mean() < 0.5


@pytest.mark.slow
def test_gabor_lesson(tmp_path):
    r = _run("gabor", tmp_path)
    assert 0 < r["mean_initial"] < 1 and 0 < r["mean_learned"] < 1 and len(r["learned_match"]) == 32


# ---- DeepDream


@pytest.mark.slow
def test_dream_lesson(tmp_path):
    r = _run("dream", tmp_path)
    assert r["layer_from_noise"][1] > r["layer_from_noise"][0]
    assert r["layer_from_image"][1] > r["layer_from_image"][0]
    assert sum(e > s for s, e in zip(r["channel_start"], r["channel_end"], strict=True)) >= 6


# ---- depth: why ReLU trails tanh with Glorot init


def test_relu_halves_the_mean_square_under_glorot_and_he_keeps_it():
    from cnnlab.lab.depth import conv_rms, per_layer_factor, plain_notation
    from cnnlab.layers import init_weights
    from cnnlab.models import create_model

    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    factors = {}
    for name, act, scheme in (("glorot", "relu", None), ("he", "relu", "he_uniform"), ("tanh", "tanh", None)):
        torch.manual_seed(0)
        model = create_model(plain_notation(16), num_classes=10, img_size=28, act=act)
        factors[name] = per_layer_factor(conv_rms(init_weights(model, scheme) if scheme else model, x))
    # 1/√2 per layer predicted for ReLU under Glorot, 1 under He; zero padding at the borders takes a few % more
    assert 0.6 < factors["glorot"] < 0.75 and 0.88 < factors["he"] < 1.02
    assert factors["he"] / factors["glorot"] == pytest.approx(math.sqrt(2), rel=0.1)
    assert factors["tanh"] > factors["glorot"] + 0.15


@pytest.mark.slow
def test_depth_lesson_measures_the_signal(tmp_path):
    r = _run("depth", tmp_path)
    s = r["signal"]
    assert s["plain relu"]["factor"] < 0.8 and s["plain relu He"]["factor"] > s["plain relu"]["factor"] + 0.1
    assert "plain relu He" in r["runs"] and np.isfinite(r["runs"]["plain relu He"]["loss_last"])


def test_the_new_experiments_are_listed():
    from cnnlab.lab import LESSONS

    for name in ("standardize", "equivariance", "batch", "advtrain", "svm", "gabor", "dream"):
        assert name in LESSONS


@pytest.mark.slow
def test_a_lesson_does_not_depend_on_what_ran_before(tmp_path):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = run_lesson("signal", quick=True, out=tmp_path, echo=None)  # its model draws from the global RNG
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left as it was
    torch.rand(1000)  # something else draws from the global RNG in between
    again = run_lesson("signal", quick=True, out=tmp_path, echo=None)
    assert {k: v for k, v in first.items() if k != "figure"} == {k: v for k, v in again.items() if k != "figure"}
