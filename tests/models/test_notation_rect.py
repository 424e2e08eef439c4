"""Rectangular kernels, strides and paddings in the notation (CL8k3x5, MPk3x2s2x1): parsing, the layers and sizes
they build (checked against the output-size formula and torch), writing them back, `cnnlab summary`, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.notation import format_notation, parse, to_notation
from tests.helpers import run_cli
from tests.models.notation_errors import assert_points_at_token


def _side(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1  # ⌊(n + 2p − k)/s⌋ + 1


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("CL32k3x5", "CL32k3x5"),
        ("CL32k3x5s1x2p1x2", "CL32k3x5s1x2"),  # p1x2 is the 3×5 kernel's "same" padding
        ("CL32k3x5p1", "CL32k3x5p1"),
        ("CL8k3x3s2x2p1x1", "CL8k3s2"),  # equal sides are one number: today's strings are unchanged
        ("CL8k2x4p0", "CL8k2x4p0"),
        ("CL8k1x7s1x1", "CL8k1x7"),
        ("MPk3x2s2x1", "MPk3x2s2x1"),
        ("MPk2x1s2x1", "MPk2x1"),  # stride = kernel: no MP<n> for a rectangle, the stride is left out
        ("APk3x1s1p1x0c", "APk3x1s1p1x0c"),
        ("MPk2x2s2x2", "MP4"),
    ],
)
def test_rectangular_tokens_round_trip(text, canonical):
    tokens = parse(f"{text}-FC10")
    assert format_notation(tokens) == f"{canonical}-FC10"
    assert parse(f"{canonical}-FC10") == tokens


def test_layers_have_the_rectangles():
    model = create_model("CL8k3x5s1x2-BN-MPk3x2s2x1-APk2x1-FC10", img_size=(28, 20))
    conv, maxpool, avgpool = model.features[0], model.features[3], model.features[4]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 5), (1, 2), (1, 2))
    assert (maxpool.kernel_size, maxpool.stride, maxpool.padding) == ((3, 2), (2, 1), 0)
    assert (avgpool.kernel_size, avgpool.stride) == ((2, 1), (2, 1))
    # the square tokens build what they built before
    square = create_model("CL8k3-MPk3s2-FC10")
    assert (square.features[0].kernel_size, square.features[2].kernel_size) == ((3, 3), 3)


@pytest.mark.parametrize(("h", "w"), [(28, 20), (17, 31)])
def test_output_size_is_the_formula_and_torchs(h, w):
    text = "CL6k3x5s1x2p0x1-MPk3x2s2x1-CL4k1x3-FC10"
    model = create_model(text, img_size=(h, w)).eval()
    # by hand, axis by axis: conv 3×5/1×2/0×1, pool 3×2/2×1, conv 1×3 ("same": 0×1, keeps the size)
    oh = _side(_side(h, 3, 1, 0), 3, 2, 0)
    ow = _side(_side(w, 5, 2, 1), 2, 1, 0)
    ref = nn.Sequential(
        nn.Conv2d(1, 6, (3, 5), (1, 2), (0, 1)),
        nn.ReLU(),
        nn.MaxPool2d((3, 2), (2, 1)),
        nn.Conv2d(6, 4, (1, 3), padding=(0, 1)),
        nn.ReLU(),
    )
    x = torch.randn(2, 1, h, w)
    assert model.forward_features(x).shape == ref(x).shape == (2, 4, oh, ow)
    assert model.classifier[0].in_features == 4 * oh * ow
    assert model(x).shape == (2, 10)
    # parameters: 6·(3·5·1 + 1) + 4·(1·3·6 + 1) + 10·(4·oh·ow + 1)
    assert sum(p.numel() for p in model.parameters()) == 6 * 16 + 4 * 19 + 10 * (4 * oh * ow + 1)


def test_min_input_size_per_axis():
    # 3×5 valid conv then a 2×1 pool: H needs 3 + 1 = 4 rows, W needs 5 columns
    model = create_model("CL4k3x5p0-MPk2x1-FC2", img_size=(28, 20))
    assert model.default_cfg["min_input_size"] == (1, 4, 5)
    assert model.forward_features(torch.zeros(1, 1, 4, 5)).shape == (1, 4, 1, 1)
    # 3 rows: the conv leaves 1×1, too small for the 2×1 pool; 4 columns: too few for the 3×5 conv itself
    for size, message in (((3, 5), "a 1×1 map is too small for this 2×1 window"), ((4, 4), "a 4×4 map is too small")):
        with pytest.raises(ValueError, match=message):
            create_model("CL4k3x5p0-MPk2x1-FC2", img_size=size)


@pytest.mark.parametrize(
    "text", ["CL8k3x5s1x2-MPk3x2s2x1-FC10", "CL8k3x5-BN-APk3x1s2x1c-CL4k1x7s2x1-GAP-FC10", "CL8k2x4p0x1-MP4-FC10"]
)
def test_to_notation_round_trip(text):
    model = create_model(text, img_size=(28, 20)).eval()
    written = to_notation(model, (1, 28, 20))
    assert written == text
    rebuilt = create_model(written, img_size=(28, 20)).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)  # the same module names and shapes
    x = torch.randn(2, 1, 28, 20)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_hand_built_rectangles_written_back():
    seq = nn.Sequential(
        nn.Conv2d(1, 8, (3, 5), stride=(1, 2), padding=(1, 2)),
        nn.ReLU(),
        nn.MaxPool2d((3, 2), (2, 1)),
        nn.Conv2d(8, 4, (1, 7), padding="same"),
        nn.ReLU(),
        nn.AvgPool2d((2, 1)),
        nn.Flatten(),
        nn.Linear(4 * 6 * 9, 5),
    )
    assert seq(torch.zeros(1, 1, 28, 20)).shape == (1, 5)
    assert to_notation(seq, (1, 28, 20)) == "CL8k3x5s1x2-MPk3x2s2x1-CL4k1x7-APk2x1-FC5"
    seq[0] = nn.Conv2d(1, 8, (3, 5), dilation=(1, 2))
    with pytest.raises(ValueError, match="non-square dilation"):
        to_notation(seq, (1, 28, 20), strict=True)


def test_summary_of_a_rectangular_notation_model():
    proc = run_cli("summary", "CL8k3x5-MPk2x1-FC10", "--input", "1x28x20")
    rows = {
        line.split()[0]: line.split()
        for line in proc.stdout.splitlines()
        if line.startswith(("features", "classifier"))
    }
    # name, type, k/s/p, output, params, MACs, RF (along the height), jump
    assert rows["features.0"] == [
        "features.0",
        "Conv2d",
        "3×5/1/1×2",
        "8×28×20",
        "128",
        f"{8 * 15 * 28 * 20:,}",
        "3",
        "1",
    ]
    assert rows["features.2"][2:4] == ["2×1/2×1/0", "8×14×20"] and rows["features.2"][-2:] == ["4", "2"]
    assert rows["classifier.0"][1:5] == ["Linear", "10", f"{8 * 14 * 20 * 10 + 10:,}", f"{8 * 14 * 20 * 10:,}"]
    assert "notation: CL8k3x5-MPk2x1-FC10" in proc.stdout


@pytest.mark.parametrize(
    ("text", "index", "message"),
    [
        ("CL8k3x-FC10", 0, "'3x' in 'CL8k3x' is not a size"),
        ("CL8kx3-FC10", 0, "'x3' in 'CL8kx3' is not a size"),
        ("CL8k3x5x7-FC10", 0, "is not a size"),
        ("CL8k0x3-FC10", 0, "kernel and stride must be ≥ 1"),
        ("CL8k3s1x0-FC10", 0, "kernel and stride must be ≥ 1"),
        ("CL8-CL8k2x3-FC10", 1, "an even kernel (2×3) has no symmetric 'same' padding"),
        ("CL8-MPk2x4p1x3-FC10", 1, "padding at most half the kernel"),
        ("CL8-MP2x2-FC10", 1, "a 2x2 window is MPk2x2"),
    ],
)
def test_bad_rectangles_point_at_the_token(text, index, message):
    assert_points_at_token(text, index, message)


def test_one_dimensional_networks_refuse_rectangles():
    for text, index in (("CL8k3x5-FC3", 0), ("CL8k3-MPk2s2x1-FC3", 1)):
        with pytest.raises(ValueError, match="a 1-D network's windows have one side") as err:
            create_model(text, dims=1, img_size=64)
        assert f"token {index + 1} of" in str(err.value) and "^" in str(err.value)
    assert create_model("CL8k3-MPk2s2-FC3", dims=1, img_size=64)(torch.zeros(1, 1, 64)).shape == (1, 10)
