"""`summary`: shapes, parameters, MACs and receptive fields against published figures and hand computation."""

import pytest
import torch
from torch import nn

from cnnlab.inspect import Field, format_summary, summary, tracing_fields
from cnnlab.models import create_model
from cnnlab.models.hooks import record
from cnnlab.models.notation import COURSE_LENET5


def _row(info: dict, name: str) -> dict:
    """The row of `name`'s last call (a ReLU module can run several times)."""
    return [r for r in info["layers"] if r["name"] == name][-1]


@pytest.fixture(scope="module")
def resnet50_info():
    return summary(create_model("resnet50", num_classes=1000, in_chans=3), (3, 224, 224))


@pytest.mark.slow
def test_alexnet_conv1_and_receptive_field():
    info = summary(create_model("alexnet", num_classes=1000, in_chans=3), (3, 227, 227))
    conv1 = info["layers"][0]
    assert conv1["output"] == [96, 55, 55] and conv1["params"] == 34_944  # 96·(11·11·3 + 1)
    assert conv1["macs"] == 11 * 11 * 3 * 96 * 55 * 55 and (conv1["rf"], conv1["jump"]) == (11, 4)
    assert info["params"] == 62_378_344
    # pool5 sees 195×195 input pixels (Araujo et al., "Computing receptive fields of CNNs", Distill 2019)
    assert (_row(info, "features.12")["rf"], _row(info, "features.12")["jump"]) == (195, 32)


@pytest.mark.parametrize(
    "model",
    [nn.Sequential(nn.Conv2d(3, 20, 5)), create_model("CL20p0-FC10", num_classes=10, in_chans=3, img_size=32)],
    ids=["torch", "notation"],
)
def test_32x32x3_through_20_filters_5x5(model):
    first = summary(model, (3, 32, 32))["layers"][0]
    assert first["output"] == [20, 28, 28]  # (32 − 5)/1 + 1 = 28
    assert first["params"] == 20 * (5 * 5 * 3 + 1) == 1_520 and first["macs"] == 5 * 5 * 3 * 20 * 28 * 28
    assert (first["kernel"], first["stride"], first["padding"]) == ([5, 5], [1, 1], [0, 0])


def test_resnet50_macs_and_field(resnet50_info):
    assert resnet50_info["macs"] == pytest.approx(4.1e9, rel=0.02)  # He et al. 2016, table 1: 3.8 × 10⁹ FLOPs (v1)
    assert resnet50_info["params"] == 25_557_032
    # by hand, torchvision's layout ("v1.5", stride on the 3×3): stem 7/2 → r 7 (jump 2), max-pool 3/2 → 11 (jump 4);
    # each 3×3 adds 2·(jump at its input): 11 + 3·8 + (8 + 3·16) + (16 + 5·32) + (32 + 2·64) = 427. (The paper's v1,
    # stride on the first 1×1, gives the 483 of Araujo et al.)
    last = _row(resnet50_info, "layer4.2.act")
    assert (last["rf"], last["jump"]) == (427, 32)


@pytest.mark.slow
def test_resnet18_and_vgg16_macs():
    assert summary(create_model("resnet18", num_classes=1000, in_chans=3), (3, 224, 224))["macs"] == pytest.approx(
        1.8e9, rel=0.02
    )
    info = summary(create_model("vgg16", num_classes=1000, in_chans=3), (3, 224, 224))
    assert info["macs"] == pytest.approx(15.5e9, rel=0.02) and info["params"] == 138_357_544
    # conv5_3 and pool5 fields 196 and 212 (Araujo et al., Distill 2019: VGG-16 212)
    assert (_row(info, "features.28")["rf"], _row(info, "features.30")["rf"]) == (196, 212)
    assert info["notation"].startswith("CL64k3-CL64k3-MP4-CL128k3") and info["notation"].endswith("FC4096-D0.5-FC1000")


def test_lenet5_totals_by_hand():
    info = summary(create_model("lenet5"), (1, 28, 28))
    assert info["params"] == 61_706 and info["trainable"] == 61_706 and info["frozen"] == 0
    convs = 5 * 5 * 1 * 6 * 28 * 28 + 5 * 5 * 6 * 16 * 10 * 10
    assert info["macs"] == convs + 400 * 120 + 120 * 84 + 84 * 10 == 416_520
    # distinct outputs (in-place ReLUs and the flatten view share memory): conv, pool, conv, pool, 3 FCs
    floats = 6 * 28 * 28 + 6 * 14 * 14 + 16 * 10 * 10 + 16 * 5 * 5 + 120 + 84 + 10
    assert info["activation_bytes"] == 4 * floats
    fields = [(r["rf"], r["jump"]) for r in info["layers"][:6]]
    assert fields == [(5, 1), (5, 1), (6, 2), (14, 2), (14, 2), (16, 4)]
    assert info["layers"][6]["rf"] is None  # FC: every output sees the whole input
    assert info["notation"] == "CL6-MP4-CL16p0-MP4-FC120-FC84-FC10"


def test_lecture_cnn_and_course_lenet5_totals():
    info = summary(create_model("lecture_cnn"), (1, 28, 28))
    convs = 49 * 1 * 64 * 28 * 28 + 9 * 64 * 128 * 14 * 14 + 9 * 128 * 128 * 14 * 14 + 9 * 128 * 256 * 7 * 7
    convs += 9 * 256 * 256 * 7 * 7
    assert info["params"] == 1_413_834 and info["macs"] == convs + 2304 * 128 + 128 * 64 + 64 * 10 == 89_466_496
    info = summary(create_model(COURSE_LENET5), (1, 28, 28))
    assert info["params"] == 1_663_370 and _row(info, "classifier.0")["params"] == 3_136 * 512 + 512


def test_depth_collapses_blocks_and_keeps_totals():
    model = create_model("resnet18", num_classes=10, in_chans=3, img_size=64)
    full, blocks = summary(model, (3, 64, 64)), summary(model, (3, 64, 64), depth=2)
    names = [r["name"] for r in blocks["layers"]]
    assert names[:4] == ["conv1", "bn1", "act", "maxpool"] and "layer1.0" in names and "layer4.1" in names
    assert not any(n.count(".") > 1 for n in names)
    block = _row(blocks, "layer2.0")
    assert block["type"] == "BasicBlock" and block["output"] == [128, 8, 8]
    for info in (full, blocks, summary(model, (3, 64, 64), depth=1)):
        assert sum(r["macs"] for r in info["layers"]) == full["macs"]
        assert sum(r["params"] for r in info["layers"]) == full["params"]  # a ReLU run twice is counted once
    # each block's act runs twice (after bn1 and after the add): two rows
    assert [r["name"] for r in full["layers"]].count("layer1.0.act") == 2
    with pytest.raises(ValueError, match="depth must be 1 or more"):
        summary(model, (3, 64, 64), depth=0)


class _Branches(nn.Module):
    """A residual add of a 3×3→3×3 path and a 1×1 path, then a concatenation with a 5×5 branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.skip, self.wide = (
            nn.Conv2d(1, 2, 3, padding=1),
            nn.Conv2d(2, 2, 3, padding=1),
            nn.Conv2d(1, 2, 1),
            nn.Conv2d(1, 2, 5, padding=2),
        )
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        res = self.b(self.a(x)) + self.skip(x)  # longest path: r = 1 + 2 + 2 = 5
        return torch.cat([res, self.wide(x)], 1)  # r = max(5, 5)


def test_field_across_branches_and_unused_params():
    model = _Branches()
    model.a.weight.requires_grad_(False)
    info = summary(model, (1, 8, 8))
    assert [(r["name"], r["rf"]) for r in info["layers"]] == [("a", 3), ("b", 5), ("skip", 1), ("wide", 5)]
    assert info["output"] == [4, 8, 8]
    assert info["frozen"] == 18 and info["params_not_run"] == 12  # a's 2·1·3·3 weights; Linear(3, 3)
    assert "12 in modules this pass did not run" in format_summary(info)


def test_table_fits_110_columns(resnet50_info):
    for text in (
        format_summary(resnet50_info, "resnet50"),
        format_summary(summary(create_model("googlenet", num_classes=1000, in_chans=3), (3, 96, 96))),
    ):
        assert max(map(len, text.splitlines())) <= 110
    text = format_summary(resnet50_info)
    assert "4,089,184,256" in text or f"{resnet50_info['macs']:,}" in text
    assert "conv1" in text and "7/2/3" in text and "2048×7×7" in text


def test_fields_know_where_they_start_per_axis():
    # the trace behind the RF column also places the field (padding): a 3×5 conv with padding (1, 0), stride (1, 2)
    model = nn.Sequential(nn.Conv2d(1, 2, (3, 5), stride=(1, 2), padding=(1, 0)), nn.ReLU(), nn.MaxPool2d(2))
    x = torch.zeros(1, 1, 12, 12)
    with torch.no_grad(), tracing_fields(model, x) as trace:
        out = model(x)
    field = trace.field(out)
    assert field == Field(start=(-1, 0), size=(4, 7), jump=(2, 4))
    assert field.box((0, 1), (12, 12)) == (0, 3, 4, 11) and field.centre(0) == 0.5
    assert trace.field(out.flatten(1)) is None


def test_record_stops_clones_and_always_removes_its_hooks():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Conv2d(2, 2, 3))
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    with record(model, ["0"], stop=True) as rec:
        model(x)
        raise AssertionError("the forward pass should have stopped after layer 0")
    assert rec.stopped and [c.name for c in rec.calls] == ["0"] and rec.output("0").requires_grad
    with record(model, ["0"], clone=True) as rec:  # the in-place ReLU works on a copy: the recorded map keeps < 0
        model(x)
    assert (rec.output("0") < 0).any() and rec.input("0") is x
    with record(model) as rec:
        model(x)
    assert [(c.name, c.parent) for c in sorted(rec.calls, key=lambda c: c.index)] == [
        ("0", None),
        ("1", None),
        ("2", None),
    ]
    with pytest.raises(RuntimeError), record(model):
        model(torch.zeros(1, 3, 8, 8))  # wrong channel count: the forward raises
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        with record(model, ["nope"]):
            pass


def test_a_transposed_convolution_counts_its_weights_once_per_input_position():
    from torch import nn

    from cnnlab.inspect import _macs

    up = nn.ConvTranspose2d(6, 4, 2, stride=2)  # (B, 6, 5, 7) -> (B, 4, 10, 14)
    assert _macs(up, up(torch.zeros(1, 6, 5, 7))) == 6 * 4 * 2 * 2 * 5 * 7
