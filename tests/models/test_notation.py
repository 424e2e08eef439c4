"""The course notation: parameter counts by hand, layers against hand-built torch stacks, round trips, errors."""

import pytest
import torch
from torch import nn

from cnnlab.io import load_model, save_model
from cnnlab.models import create_model, is_model
from cnnlab.models.notation import COURSE_LENET5, format_notation, parse, to_notation


def test_course_lenet5_counts():
    model = create_model(COURSE_LENET5, num_classes=10, in_chans=1)
    fc512 = model.classifier[0]
    assert fc512.in_features == 7 * 7 * 64 == 3_136
    # conv 32·(5·5·1+1) + conv 64·(5·5·32+1) + FC 512·(3136+1) + FC 10·(512+1)
    assert sum(p.numel() for p in model.parameters()) == 832 + 51_264 + 1_606_144 + 5_130 == 1_663_370
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.forward_features(torch.zeros(2, 1, 28, 28)).shape == (2, 64, 7, 7)


def _reference() -> nn.Sequential:
    """CL8k3s2-BN-MP4-CL16p0-AP9-FC32-BN-D0.25-FC10 written out by hand in torch, for 1×28×28 input."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),  # 'same' padding 1 at stride 2: 28 → 14 = ⌈28/2⌉
        nn.BatchNorm2d(8),  # BN right after a conv goes before its ReLU
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7×7
        nn.Conv2d(8, 16, 5),  # p0: 3×3
        nn.ReLU(),
        nn.AvgPool2d(3),  # AP9: 1×1
        nn.Flatten(),
        nn.Linear(16, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(32, 10),
    )


def test_layers_match_hand_built_torch_stack():
    model = create_model("CL8k3s2-BN-MP4-CL16p0-AP9-FC32-BN-D0.25-FC10").eval()
    ref = _reference().eval()
    mine = [m for m in model.modules() if not list(m.children())]
    theirs = [m for m in ref if not isinstance(m, nn.Flatten)]
    assert [type(m) for m in mine] == [type(m) for m in theirs]
    assert [repr(m).replace("inplace=True", "") for m in mine] == [repr(m) for m in theirs]
    # same weights → same outputs; BN statistics away from their 0 / 1 start so that BN's place matters
    torch.manual_seed(0)
    for m in ref:
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    ref_params = [t for m in theirs for t in m.state_dict().values()]
    my_params = [t for m in mine for t in m.state_dict().values()]
    for a, b in zip(my_params, ref_params, strict=True):
        a.copy_(b)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(model(x), ref(x))


def test_gap_and_interface():
    model = create_model("CL8k3-BN-GAP-D0.5-FC10", num_classes=4, in_chans=3, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 8, 1, 1) and isinstance(model.features[-1], nn.AdaptiveAvgPool2d)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 8)
    torch.testing.assert_close(model.forward_head(feats), model(x))
    assert model.default_cfg["classifier"] == "classifier.1" and model.default_cfg["input_size"] == (3, 32, 32)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and to_notation(model) == "CL8k3-BN-GAP-D0.5-FC7"


@pytest.mark.parametrize("text", [COURSE_LENET5, "CL8k3s2-BN-MP4-CL16p0-AP9-FC32-BN-D0.25-FC10", "BN-CL4k1-GAP-FC3"])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_backward(text, in_chans):
    model = create_model(text, num_classes=7, in_chans=in_chans)
    out = model(torch.randn(2, in_chans, 28, 28))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_last_fc_takes_num_classes():
    model = create_model("CL4-FC10", num_classes=3)
    assert model.classifier[-1].out_features == 3 and to_notation(model) == "CL4-FC3"


def test_same_padding_and_min_input_size():
    # 'same' = kernel // 2: at stride 2 it gives ⌈H/2⌉ like Keras (27 → 14), at stride 1 H×W is kept
    model = create_model("CL4k3s2-CL4k7-FC2", img_size=27)
    assert model.forward_features(torch.zeros(1, 1, 27, 27)).shape == (1, 4, 14, 14)
    # CL4p0 (5×5 valid) then MP4 need at least 6×6: 6 → 2 → 1
    assert create_model("CL4p0-MP4-FC2", img_size=12).default_cfg["min_input_size"] == (1, 6, 6)


@pytest.mark.parametrize(
    "text,canonical",
    [
        (COURSE_LENET5, COURSE_LENET5),
        ("CL32k5s1p2-MPk2s2-FC10", "CL32-MP4-FC10"),
        ("CL8k3s2-BN-MP4-CL16p0-AP9-FC32-BN-D0.25-FC10", "CL8k3s2-BN-MP4-CL16p0-AP9-FC32-BN-D0.25-FC10"),
        ("BN-CL8k4p1-MPk3s2p1-D.5-CL8k1-GAP-BN-FC16-FC10", "BN-CL8k4p1-MPk3s2p1-D0.5-CL8k1-GAP-BN-FC16-FC10"),
        ("CL8-AP16-FC10", "CL8-AP16-FC10"),
        ("FC64-FC10", "FC64-FC10"),
    ],
)
def test_round_trip_notation_model_notation(text, canonical):
    assert format_notation(parse(text)) == canonical
    assert to_notation(create_model(text, img_size=32)) == canonical


@pytest.mark.parametrize(
    "name,expected",
    [
        ("lenet5", "CL6-MP4-CL16p0-MP4-FC120-FC84-FC10"),
        ("lecture_cnn", "CL64k7-MP4-CL128k3-CL128k3-MP4-CL256k3-CL256k3-MP4-FC128-D0.5-FC64-D0.5-FC10"),
    ],
)
def test_registered_model_to_notation_and_back(name, expected):
    model = create_model(name).eval()
    assert to_notation(model) == expected
    rebuilt = create_model(expected).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)  # the same module names and shapes
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_models_without_notation_say_why():
    assert to_notation(create_model("resnet18")) is None
    with pytest.raises(ValueError, match=r"'0' \(BasicBlock\) has its own forward"):
        to_notation(create_model("resnet18").layer1, strict=True)
    with pytest.raises(ValueError, match="not a plain chain"):
        to_notation(create_model("resnet18"), strict=True)
    with pytest.raises(ValueError, match="followed by Tanh"):
        to_notation(create_model("lenet5_classic"), strict=True)


def test_plain_sequential_to_notation():
    seq = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(8 * 10 * 10, 5)
    )
    assert to_notation(seq, (3, 30, 30)) == "CL8k3-MP9-FC5"
    seq[0] = nn.Conv2d(3, 8, 3, bias=False)
    with pytest.raises(ValueError, match="no bias"):
        to_notation(seq, (3, 30, 30), strict=True)


@pytest.mark.parametrize(
    "text,index,message",
    [
        ("CL32-XP4-FC10", 1, "unknown token 'XP4'"),
        ("CL32--FC10", 1, "empty token"),
        ("CL32-MP8-FC10", 1, "8 is not a square"),
        ("CL32k4-FC10", 0, "even kernel"),
        ("D1.5-FC10", 0, "must be below 1"),
        ("CL32-FC10-BN", 2, "last token must be the classifier"),
        ("CL32-FC64-CL3-FC10", 2, "flattened at 'FC64'"),
        ("CL32-GAP-MP4-FC10", 2, "flattened at 'GAP'"),
        ("CL32-MP4-MP4-MP4-MP4-MP4-FC10", 5, "too small"),  # 28 → 14 → 7 → 3 → 1 → 0
    ],
)
def test_errors_point_at_the_token(text, index, message):
    with pytest.raises(ValueError) as err:
        create_model(text)
    lines = str(err.value).splitlines()
    assert f"token {index + 1} of" in lines[0] and lines[1].strip() == text and message in lines[2]
    bad = text.split("-")[index]
    start = lines[1].index(text) + sum(len(w) + 1 for w in text.split("-")[:index])
    assert lines[2].index("^") == start and lines[2].count("^") == max(len(bad), 1)


def test_resolver_leaves_other_names_alone():
    assert is_model(COURSE_LENET5) and not is_model("CL32-XP4-FC10")
    with pytest.raises(ValueError, match="did you mean: vgg16_bn"):
        create_model("vgg16-bn")  # 'bn' is not BN: layer letters are upper case
    assert create_model("lenet5").model_name == "lenet5"


def test_model_file_round_trip(tmp_path):
    model = create_model("CL8k3-BN-MP4-FC16-D0.5-FC10", num_classes=10, in_chans=1).eval()
    model.reset_classifier(3)
    path = save_model(tmp_path / "m.safetensors", model, classes=["a", "b", "c"], input_size=[1, 28, 28])
    loaded, meta = load_model(path)
    assert meta.model == "CL8k3-BN-MP4-FC16-D0.5-FC10" and meta.model_args["num_classes"] == 3
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert to_notation(loaded) == "CL8k3-BN-MP4-FC16-D0.5-FC3"


@pytest.mark.slow
def test_train_run_with_notation_model(fake_idx, tmp_path):
    from cnnlab.run.train import train_run
    from cnnlab.train.config import TrainConfig

    cfg = TrainConfig(
        model="CL8-MP4-CL16-MP4-FC32-FC10",
        data="fashion-mnist",
        data_dir=str(fake_idx),
        epochs=2,
        batch_size=32,
        lr=3e-3,
        val_split=100,
        out=str(tmp_path / "run"),
        verbose=0,
    )
    result = train_run(cfg, log=lambda *a: None)
    assert result.metrics["test_accuracy"] > 0.5  # the toy task is learnable; chance is 0.1
    model, meta = load_model(tmp_path / "run")
    assert meta.model == cfg.model and to_notation(model) == cfg.model
