"""The notation's upsampling (UT, UR) and skip connections (SK, CC): the worked U-Net against a hand-written torch
module, round trips, the per-pixel classifier, the summary through the way up, and the caret errors."""

import pytest
import torch
from torch import nn

from cnnlab.inspect import summary
from cnnlab.io import load_model, save_model
from cnnlab.models import create_model
from cnnlab.models.notation import UNET_EXAMPLE, PixelClassifier, format_notation, parse, to_notation
from tests.models.notation_errors import assert_points_at_token


class HandUNet(nn.Module):
    """UNET_EXAMPLE written out in torch, for 1×64×64 inputs and 11 classes."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.down1 = nn.Sequential(*block(1, 16))  # kept: 16×64×64
        self.down2 = nn.Sequential(nn.MaxPool2d(2), *block(16, 32))  # kept: 32×32×32
        self.bottom = nn.Sequential(nn.MaxPool2d(2), *block(32, 64))  # 64×16×16
        self.up2 = nn.ConvTranspose2d(64, 32, 2, stride=2)  # 32×32×32
        self.dec2 = nn.Sequential(*block(64, 32))  # after the concatenation: 32 + 32 channels in
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)  # 16×64×64
        self.dec1 = nn.Sequential(*block(32, 16))
        self.out = nn.Conv2d(16, 11, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(a)
        y = self.dec2(torch.cat([self.up2(self.bottom(b)), b], 1))
        y = self.dec1(torch.cat([self.up1(y), a], 1))
        return self.out(y)


def test_the_worked_unet_counts_and_matches_a_hand_written_module():
    model = create_model(UNET_EXAMPLE, num_classes=11, img_size=64).eval()
    ref = HandUNet().eval()
    assert isinstance(model, PixelClassifier) and model.default_cfg["per_pixel"]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters()) == 57_179
    torch.manual_seed(0)
    for m in ref.modules():  # BN statistics away from 0 / 1, so that a BN in the wrong place shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    mine, theirs = model.state_dict(), ref.state_dict()
    assert [t.shape for t in mine.values()] == [t.shape for t in theirs.values()]
    for a, b in zip(mine.values(), theirs.values(), strict=True):
        a.copy_(b)
    x = torch.randn(2, 1, 64, 64)
    out = model(x)
    assert out.shape == (2, 11, 64, 64)
    torch.testing.assert_close(out, ref(x))
    assert model.forward_features(x).shape == (2, 16, 64, 64)
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), out)


@pytest.mark.parametrize(
    "text,canonical",
    [
        (UNET_EXAMPLE, UNET_EXAMPLE),
        ("CL8k3-SK-MPk2s2-CL16k3-UR8-BN-CC-CL8k3-CL3k1", "CL8k3-SK-MP4-CL16k3-UR8-BN-CC-CL8k3-CL3k1"),
        ("CL8k3-SK-SK-MP4-UT8-CC-CC-CL3k1p0", "CL8k3-SK-SK-MP4-UT8-CC-CC-CL3k1"),
        ("CL8k3-SK-MP4-UT8-CC-GAP-FC3", "CL8k3-SK-MP4-UT8-CC-GAP-FC3"),  # skips in a classifier
        ("CL8k3-MP4-CL8k3-UT4-CL3k1", "CL8k3-MP4-CL8k3-UT4-CL3k1"),  # the way up without skips
        ("CL3k3", "CL3k3"),  # one conv: a class per pixel already
    ],
)
def test_round_trip(text, canonical):
    assert format_notation(parse(text)) == canonical
    k = parse(canonical)[-1].size  # the classes written last, so that the string comes back as it is
    model = create_model(text, num_classes=k, img_size=32)
    assert to_notation(model, strict=True) == canonical
    rebuilt = create_model(canonical, num_classes=k, img_size=32)
    rebuilt.load_state_dict(model.state_dict(), strict=True)  # the same module names and shapes


def test_the_per_pixel_classifier_takes_num_classes_and_a_model_file_rebuilds_it(tmp_path):
    model = create_model("CL8k3-BN-SK-MP4-CL16k3-UR8-CC-CL8k3-CL5k1", num_classes=4, img_size=32).eval()
    assert model.classifier.out_channels == 4 and to_notation(model) == "CL8k3-BN-SK-MP4-CL16k3-UR8-CC-CL8k3-CL4k1"
    model.reset_classifier(3)
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, 3, 32, 32) and model.model_args["num_classes"] == 3
    classes = ["background", "a", "b"]
    path = save_model(tmp_path / "m.safetensors", model, classes=classes, input_size=[1, 32, 32], task="segment")
    loaded, meta = load_model(path)
    assert isinstance(loaded, PixelClassifier) and meta.task == "segment"
    torch.testing.assert_close(loaded(x), model(x))


def test_summary_follows_shapes_macs_and_fields_through_the_way_up():
    info = summary(create_model(UNET_EXAMPLE, num_classes=11, img_size=64), (1, 64, 64))
    rows = {r["name"]: r for r in info["layers"]}
    assert info["output"] == [11, 64, 64] and info["params"] == 57_179 and info["notation"] == UNET_EXAMPLE
    up = rows["features.13"]  # UT32: 64×16×16 → 32×32×32, each input cell once per 2×2 output block
    assert up["type"] == "ConvTranspose2d" and up["output"] == [32, 32, 32] and up["macs"] == 64 * 32 * 4 * 16 * 16
    # down: 3 (conv) → 4 (pool, jump 2) → 8 → 10 (jump 4) → 18; the 2×2/2 up-conv keeps the field, halves the jump
    assert (rows["features.10"]["rf"], rows["features.10"]["jump"]) == (18, 4)
    assert (up["rf"], up["jump"]) == (18, 2) and (rows["features.14"]["rf"], rows["features.14"]["jump"]) == (18, 2)
    assert rows["features.14"]["output"] == [64, 32, 32]  # CC: 32 + 32 channels
    assert (rows["classifier"]["rf"], rows["classifier"]["jump"]) == (18 + 2 * 2 + 2 * 1, 1)  # two 3×3 convs up
    resize = summary(create_model("CL8k3-MP4-UR8-CL3k1", num_classes=3), (1, 28, 28))["layers"]
    assert [(r["type"], r["rf"], r["jump"]) for r in resize[3:6]] == [
        ("Upsample", 4 + 2, 1),  # bilinear: 2 input cells of jump 2 per output cell
        ("Conv2d", 6 + 2, 1),
        ("Conv2d", 8, 1),  # the 1×1 classifier
    ]


def test_each_task_takes_the_net_it_can_train():
    from cnnlab.tasks import make_task

    net = create_model("CL8k3-SK-MP4-CL16k3-UT8-CC-CL3k1", num_classes=3, img_size=32)
    assert make_task("segment", ["bg", "a", "b"], (1, 32, 32)).build(net) is net  # no decoder on top
    with pytest.raises(ValueError, match="no decoder to choose"):
        make_task("segment", ["bg", "a", "b"], (1, 32, 32), decoder="fcn").build(net)
    with pytest.raises(ValueError, match=r"gives 3×16×16 outputs .* upsample \(UT, UR\) back"):
        make_task("segment", ["bg", "a", "b"], (1, 32, 32)).build(create_model("CL8k3-MP4-CL3k1", num_classes=3))
    with pytest.raises(ValueError, match="a class per pixel, not one per image: train it with --task segment"):
        make_task("classify", ["bg", "a", "b"], (1, 32, 32)).build(net)


@pytest.mark.parametrize(
    "text,index,message",
    [
        ("CL8k3-CC-CL3k1", 1, "no SK before it is left to join"),
        ("CL8k3-SK-MP4-CL3k1", 1, "never joined: add a CC"),
        ("CL8-SK-MP4-SK-MP4-UT8-CC-CL3k1", 1, "never joined"),  # the inner SK is joined, the outer one is not
        ("CL8-SK-MP4-CL8-SK-MP4-CL8-SK-MP4-CL8-UT8-CC-UT8-CC-UT8-CC-CL3k1", 11, "7×7, this one is 6×6"),
        ("CL8-SK-MP4-CL8-SK-MP4-CL8-SK-MP4-CL8-UT8-CC-UT8-CC-UT8-CC-CL3k1", 11, "multiples of 8"),
        ("CL8k3-SK-MP4-UT8-UT8-CC-CL3k1", 5, "doubles the map more often"),
        ("CL8-FC10-UT4-FC3", 2, "flattened at 'FC10'"),
        ("CL8-GAP-SK-FC3", 2, "flattened at 'GAP'"),
        ("CL8-SK-MP4-UT8-CC", 4, "CL<classes> (a class per pixel"),
        ("CL8-UT0-CL3k1", 1, "'UT0' has no filters"),
        ("CL8-UX4-CL3k1", 1, "UT<filters>, UR<filters>, SK or CC"),
    ],
)
def test_errors_point_at_the_token(text, index, message):
    assert_points_at_token(text, index, message)


def test_one_dimensional_networks_have_no_upsampling():
    with pytest.raises(ValueError, match="for images, not 1-D"):
        create_model("CL8k3-SK-MP4-UT8-CC-CL3k1", dims=1, img_size=64)
