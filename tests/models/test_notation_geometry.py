"""The lectures' geometry in the notation: ceil-mode pools, an activation choice, 1-D networks, non-square inputs;
and `cnnlab summary` with --model-arg and such inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import summary
from cnnlab.models import create_model
from cnnlab.models._notation_parse import pooled_side
from cnnlab.models.notation import parse, to_notation
from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("text", "side"),
    [("CL3k3p0-MP4c-FC2", 9), ("CL8-MPk3s2c-FC10", 10), ("CL8-APk3s2p1c-FC10", 10), ("CL8-MP9c-FC10", 10)],
)
def test_ceil_pool_tokens_round_trip(text, side):
    assert "-".join(t.text() for t in parse(text)) == text
    model = create_model(text, img_size=side)
    assert any(getattr(m, "ceil_mode", False) for m in model.modules())
    assert to_notation(model, (1, side, side)) == text.replace("FC2", "FC10")
    # also where rounding up changes nothing at this size: the string must rebuild the same model at every size
    assert to_notation(create_model("CL8-MPk3s2c-FC10", img_size=9)) == "CL8-MPk3s2c-FC10"


def test_ceil_pool_7_to_4():
    assert pooled_side(7, 2, 2) == 3 and pooled_side(7, 2, 2, ceil=True) == 4  # ⌊5/2⌋ + 1 vs ⌈5/2⌉ + 1
    model = create_model("CL3k3p0-MP4c-FC2", num_classes=2, img_size=9)
    assert model.features(torch.zeros(1, 1, 9, 9)).shape == (1, 3, 4, 4)


@pytest.mark.parametrize("n", range(3, 30))
@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 0), (3, 2, 1), (3, 3, 1), (5, 3, 2)])
def test_pooled_side_is_torchs(n, k, s, p):
    for ceil in (False, True):
        out = nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, n, n)).shape[-1]
        assert pooled_side(n, k, s, p, ceil) == out


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_activation_choice(act):
    model = create_model("CL8k3-CL8k3-GAP-FC10", act=act)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU"}[act] in kinds
    assert model.model_args["act"] == act
    assert (to_notation(model) is None) == (act != "relu")  # the notation writes ReLU nets only


def test_one_dimensional_network_and_its_macs():
    model = create_model("CL8k5-BN-MP2-CL16k5-MP4c-FC3", num_classes=3, img_size=128, dims=1)
    assert isinstance(model.features[0], nn.Conv1d) and isinstance(model.features[3], nn.MaxPool1d)
    assert model(torch.zeros(2, 1, 128)).shape == (2, 3)
    info = summary(model, (1, 128))
    conv = [r for r in info["layers"] if r["type"] == "Conv1d"]
    assert [r["macs"] for r in conv] == [8 * 1 * 5 * 128, 16 * 8 * 5 * 64]  # C_out·C_in·k·L_out
    assert info["macs"] == 8 * 5 * 128 + 16 * 8 * 5 * 64 + 16 * 16 * 3
    assert [r["rf"] for r in conv] == [5, 14]  # 5, then 5 + 1 (pool 2) + (5 − 1)·2
    assert parse("CL8-MP2-FC3", dims=1)[1].kernel == 2
    with pytest.raises(ValueError, match="not a square"):
        create_model("CL8-MP2-FC3")  # MP2 is a 1-D window only


def test_non_square_input():
    model = create_model("CL1k3p0-MP4-FC10", img_size=(280, 320))
    assert model(torch.zeros(1, 1, 280, 320)).shape == (1, 10)
    assert model.classifier[0].in_features == 139 * 159
    assert list(model.default_cfg["input_size"]) == [1, 280, 320]


def test_summary_of_a_non_square_input_and_model_args():
    out = run_cli("summary", "CL1k3p0-FC10", "--input", "1x280x320").stdout
    assert f"{278 * 318 * 10 + 10:,}" in out  # the FC layer, sized for 278×318 maps
    assert "Tanh" in run_cli("summary", "CL8k3-GAP-FC10", "--model-arg", "act=tanh").stdout
    assert f"{8 * 5 * 64:,}" in run_cli("summary", "CL8k5-MP4-FC3", "--input", "1x64", "--model-arg", "dims=1").stdout
    run_cli("summary", "CL8k3-FC10", "--model-arg", "act", code=2)


def test_one_dimensional_network_written_back():
    for text in ("CL8k3-BN-MP2-CL16-MP4-GAP-FC3", "CL8-MPk3s2c-D0.5-FC3"):
        model = create_model(text, num_classes=3, img_size=128, dims=1)
        assert to_notation(model) == text
        assert summary(model, (1, 128))["notation"] == text
