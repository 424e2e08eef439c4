"""Every lesson of `cnnlab lab` in quick mode (generated data, tiny sizes), its numbers checked against closed forms
or torch, and its figure written."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.lab import LESSONS, run_lesson
from tests.helpers import run_cli


def _run(name, tmp_path, **kw):
    result = run_lesson(name, quick=True, out=tmp_path, echo=None, **kw)
    assert (tmp_path / f"lab-{name}.png").stat().st_size > 5000
    return result


@pytest.mark.slow
def test_conv_window_by_window_and_output_sizes(tmp_path):
    from cnnlab.lab.conv import IMAGE, KERNEL

    r = _run("conv", tmp_path, gif=True)
    image, kernel = torch.tensor(IMAGE, dtype=torch.float64), torch.tensor(KERNEL, dtype=torch.float64)
    torch_corr = F.conv2d(image[None, None], kernel[None, None])[0, 0]
    assert r["window_sums"] == r["correlation"] == torch_corr.tolist()
    assert r["correlation"][0][1] == 9 * 1 + 9 * 2 + 9 * 1 + 0 * -1  # the window of out(0, 1), by hand
    flipped = F.conv2d(image[None, None], kernel.flip(0, 1)[None, None])[0, 0]
    assert r["convolution"] == flipped.tolist() != r["correlation"]
    for v in r["variants"]:  # ⌊(n + 2p − k)/s⌋ + 1 beside torch's own size
        s, p = v["stride"], v["padding"]
        assert v["formula"] == v["side"] == math.floor((5 + 2 * p - 3) / s) + 1
    assert (tmp_path / "lab-conv.gif").stat().st_size > 1000


@pytest.mark.slow
def test_xo_ceil_pool_and_votes(tmp_path):
    r = _run("xo", tmp_path)
    assert r["pool_out"] == [3, 4, 4]  # 7×7 → 4×4 with ceil mode (3×3 in floor mode)
    v = r["variants"]
    assert v["X"]["right"] and v["O"]["right"] and v["X shifted 1 px"]["right"]
    assert v["X"]["similarity"][0] == pytest.approx(1.0)


@pytest.mark.slow
def test_invariance(tmp_path):
    stages = []
    r = _run("invariance", tmp_path, status=stages.append)
    assert stages == [  # a line as each model starts training (not in the lesson's report)
        f"lab: training the {net}, 2 epochs of 400 images …"
        for net in ("CNN", "CNN on shuffled pixels", "MLP", "MLP on shuffled pixels")
    ]
    assert max(r["equivariance_error"]) < 1e-5  # a conv layer commutes with shifts (away from the borders)
    assert r["pooled_change"][0] == 0 and r["pooled_change"][-1] > 0
    assert set(r["accuracy"]) == {"CNN", "CNN shuffled", "MLP", "MLP shuffled"}
    for accs in r["shift_accuracy"].values():
        assert len(accs) == 5 and all(0 <= a <= 1 for a in accs)


@pytest.mark.slow
def test_depth_sigmoid_gradients_vanish(tmp_path):
    r = _run("depth", tmp_path)["runs"]
    # 8 sigmoid layers: each multiplies the backward signal by at most 1/4 (σ' ≤ 1/4)
    assert r["plain sigmoid"]["ratio"] < 1e-2 < r["plain relu"]["ratio"]
    assert r["plain sigmoid"]["ratio"] < r["plain tanh"]["ratio"]
    assert {"ResNet with shortcuts", "ResNet without shortcuts"} <= set(r)


@pytest.mark.slow
def test_fgsm_lowers_accuracy(tmp_path):
    r = _run("adversarial", tmp_path)
    assert r["epsilons"][0] == 0
    assert r["accuracy"][-1] < r["accuracy"][0]


def test_gd_stops_and_gradient_check(tmp_path):
    r = _run("gd", tmp_path)
    d = r["descent"]
    assert d["right"]["stop"].startswith("|Δθ| <") and d["too large"]["stop"] == "diverged"
    for name in ("too small", "right"):
        assert d[name]["closed_form_gap"] < 1e-9  # θ_k = θ₀ (1 − 2·lr·a)^k on the quadratic
    assert r["gradient_check"]["max_relative_error"] < 1e-4


def test_signal_1d(tmp_path):
    r = _run("signal", tmp_path)
    assert r["smooth_len"] == 128 - 5 + 1
    assert 37 <= r["rise"] <= 40 and 87 <= r["fall"] <= 90
    # Conv1d MACs: C_out·C_in·k·L_out per layer, plus the classifier
    assert r["macs"] == 8 * 1 * 7 * 128 + 16 * 8 * 5 * 32 + 16 * 3
    assert 0 <= r["accuracy"] <= 1


def test_every_lesson_is_tested():
    # test functions named test_<lesson>_… in any test file of this folder (the newer lessons have their own files)
    names = re.findall(
        r"^def test_([a-z0-9]+)[_(]", "".join(f.read_text() for f in Path(__file__).parent.glob("test_*.py")), re.M
    )
    assert set(LESSONS) <= set(names) | {"adversarial"}  # test_fgsm_… covers it
    from cnnlab.cli.lab import LESSONS as listed  # the CLI's copy, kept without importing torch

    assert set(listed) == set(LESSONS)


def test_cli_runs_a_lesson(tmp_path):
    out = run_cli("lab", "gd", "--quick", "--out", tmp_path).stdout
    assert "largest relative error vs autograd" in out and (tmp_path / "lab-gd.png").exists()
    assert "xo" in run_cli("lab", "list").stdout


@pytest.mark.slow
def test_cli_says_each_training_stage_on_stderr(tmp_path):
    proc = run_cli("lab", "depth", "--quick", "--out", tmp_path)
    stages = proc.stderr.splitlines()
    names = ["plain sigmoid net", "plain tanh net", "plain relu net", "plain relu He net"]
    names += ["ResNet with shortcuts", "ResNet without shortcuts"]
    assert stages == [f"lab: training the {name}: 6 Adam steps …" for name in names]
    assert "lab: " not in proc.stdout  # the report stays the lesson's own lines


def test_cli_refuses_an_option_a_lesson_does_not_take(tmp_path):
    assert "does not take --gif" in run_cli("lab", "gd", "--quick", "--gif", "--out", tmp_path, code=2).stderr


@pytest.mark.slow
def test_lessons_restore_torch_threads(tmp_path):
    before = torch.get_num_threads()
    np.testing.assert_equal(run_lesson("gd", quick=True, out=tmp_path, echo=None)["descent"]["right"]["lr"], 0.05)
    assert torch.get_num_threads() == before
