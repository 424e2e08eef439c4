"""Registry-driven tests: every registered model builds, trains a step, and matches its published parameter count."""

import math

import pytest
import torch
from torch import nn

from cnnlab.models import create_model, list_models
from cnnlab.models._registry import model_params
from cnnlab.train.losses import ClassificationLoss

# Published parameter counts at 1000 classes, RGB: torchvision's weight metadata (num_params) for VGG, ResNet and
# GoogLeNet (without auxiliary heads); AlexNet as in the 2012 paper, without the two-GPU split.
PARAMS_IMAGENET = {
    "alexnet": 62_378_344,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
}
# hand-computed counts at 10 classes, grayscale, the model's default input size (28×28, LeNet-5 classic 32×32)
PARAMS_SMALL = {"lenet5": 61_706, "lecture_cnn": 1_413_834, "lenet5_classic": 61_706}


def small_setup(name: str) -> tuple[dict, int]:
    """Options and a small input size each model takes (ResNets' small-input stem: test_resnet_small_input_stem)."""
    if name in ("alexnet", "googlenet"):
        return {}, 64
    return {}, 32


def test_registry_lists_models():
    expected = {"lenet5", "lenet5_classic", "lecture_cnn", "alexnet", "googlenet"}
    expected |= {f"resnet{d}" for d in (18, 34, 50, 101, 152)}
    expected |= {f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")}
    assert expected <= set(list_models())
    assert list_models("lenet*") == ["lenet5", "lenet5_classic"]
    assert set(PARAMS_IMAGENET) | set(PARAMS_SMALL) == set(list_models())  # every model has a reference count


# the models whose checks take a second or more each (ImageNet-sized VGG, AlexNet, the deep ResNets): `slow`
SLOW_MODELS = {n for n in list_models() if n.startswith(("vgg", "alexnet"))} | {"resnet50", "resnet101", "resnet152"}


def _models(slow: set[str] = SLOW_MODELS) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in list_models()]


@pytest.mark.parametrize("name", _models())
@pytest.mark.parametrize("in_chans", [1, 3])
def test_train_step_and_interface(name, in_chans):
    kwargs, size = small_setup(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=in_chans, img_size=size, **kwargs)
    assert model.default_cfg["input_size"] == (in_chans, size, size)
    x = torch.randn(2, in_chans, size, size)
    out = model(x)  # training mode
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing

    if in_chans == 1:
        return  # the interface checks below do not depend on the channel count: once per model is enough
    model.eval()  # dropout off, BN on running stats: the two paths must agree
    cfg = model.default_cfg
    assert {"input_size", "min_input_size", "classifier", "mean", "std"} <= set(cfg)
    assert len(cfg["mean"]) == len(cfg["std"]) == in_chans
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 4
        torch.testing.assert_close(model.forward_head(feats), model(x))
        pre = model.forward_head(feats, pre_logits=True)
        head = model.get_submodule(cfg["classifier"])
        assert isinstance(head, nn.Linear) and pre.shape == (2, head.in_features)
        model.reset_classifier(3)
        assert model.forward_head(feats).shape == (2, 3) and model.num_classes == 3
    assert model.model_args["num_classes"] == 3  # the model file rebuilds the reset model


@pytest.mark.parametrize("name", list_models())
def test_parameter_counts(name):
    # built on the meta device: shapes only, no memory or init time for the 140 M-parameter VGGs
    with torch.device("meta"):
        if name in PARAMS_IMAGENET:
            model, count = create_model(name, num_classes=1000, in_chans=3), PARAMS_IMAGENET[name]
        else:
            model, count = create_model(name), PARAMS_SMALL[name]
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize("name", _models({"resnet101", "resnet152"}))
def test_min_input_size_is_tight(name):
    """The smallest input in default_cfg goes through; one pixel less fails, and building for it says 'too small'."""
    with torch.device("meta"):
        m = create_model(name, num_classes=10, in_chans=3).default_cfg["min_input_size"][1]
        model = create_model(name, num_classes=10, in_chans=3, img_size=m).eval()
        assert model(torch.empty(1, 3, m, m)).shape == (1, 10)
        with pytest.raises(RuntimeError):
            model(torch.empty(1, 3, m - 1, m - 1))
        with pytest.raises(ValueError, match="too small"):
            create_model(name, num_classes=10, in_chans=3, img_size=m - 1)


def test_other_input_sizes():
    m = create_model("lecture_cnn", in_chans=3, img_size=32)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="too small"):
        create_model("lenet5", img_size=8)
    with pytest.raises(ValueError, match="too small for vgg16: it needs at least 32×32"):
        create_model("vgg16", img_size=28)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean: lenet5"):
        create_model("lenet")


def test_unknown_model_argument_is_a_value_error():
    with pytest.raises(ValueError, match="small_input"):
        create_model("vgg11", small_input=True)


def test_lecture_cnn_refuses_an_unknown_argument():
    # it used to take **kwargs, so a misspelt option was stored in model_args and silently ignored
    with pytest.raises(ValueError) as err:
        create_model("lecture_cnn", foo=1)
    assert str(err.value) == "lecture_cnn does not take 'foo'; it takes: drop_rate, img_size, in_chans, num_classes"
    with pytest.raises(ValueError, match="does not take 'dropout' \\(did you mean 'drop_rate'\\?\\)"):
        create_model("lecture_cnn", dropout=0.3)


@pytest.mark.parametrize("name", [*list_models(), "CL8-MP4-FC10"])
def test_every_model_refuses_an_unknown_argument(name):
    with pytest.raises(ValueError, match=f"^{name} does not take 'not_an_option'; it takes: .*num_classes") as err:
        create_model(name, num_classes=10, in_chans=1, not_an_option=1)
    assert "in_chans" in str(err.value) and "img_size" in str(err.value)


def test_variants_that_forward_kwargs_list_the_options_of_their_builder():
    with pytest.raises(ValueError) as err:
        create_model("resnet18", stem="deep")
    taken = str(err.value).split("it takes: ")[1].split(", ")
    assert taken == sorted(
        ["act", "drop_rate", "img_size", "in_chans", "norm", "num_classes", "small_input", "zero_init_residual"]
    )
    with pytest.raises(TypeError, match="register_model\\(takes=...\\)"):
        model_params(lambda **kwargs: None)  # a **kwargs constructor must say where its arguments go


@pytest.mark.parametrize("name", list_models())
def test_each_family_decides_its_defaults(name):
    """create_model passes only what it is given: ImageNet families default to 1000 classes, RGB, their paper's
    input size; LeNet-5 and the lecture network to 10 classes, grayscale. model_args records what was built."""
    with torch.device("meta"):
        model = create_model(name)
    classes, chans = (1000, 3) if name in PARAMS_IMAGENET else (10, 1)
    assert model.num_classes == classes and model.default_cfg["input_size"][0] == chans
    assert model.model_args == {"num_classes": classes, "in_chans": chans}
    size = {"alexnet": 227, "lenet5": 28, "lecture_cnn": 28, "lenet5_classic": 32}.get(name, 224)
    assert model.default_cfg["input_size"] == (chans, size, size)


def test_glorot_uniform_init_bounds():
    m = create_model("lecture_cnn")
    conv = m.features[0]
    fan_in, fan_out = 1 * 49, 64 * 49
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert torch.all(conv.bias == 0)
    fc = m.classifier[0]
    bound = math.sqrt(6 / (fc.in_features + fc.out_features))
    assert fc.weight.abs().max() <= bound


def test_torchvision_init_schemes():
    torch.manual_seed(0)
    # ResNet: Kaiming-normal with fan_out: std = √(2 / (out·k·k)); BN weight 1, bias 0
    r = create_model("resnet18", num_classes=10, in_chans=3)
    w = r.layer3[0].conv2.weight  # 256×256×3×3
    assert w.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    assert torch.all(r.layer3[0].bn2.weight == 1) and torch.all(r.layer3[0].bn2.bias == 0)
    # zero_init_residual: the last BN of every residual branch starts at 0
    z = create_model("resnet50", num_classes=10, in_chans=3, zero_init_residual=True)
    assert all(torch.all(b.bn3.weight == 0) for stage in (z.layer1, z.layer4) for b in stage)
    # GoogLeNet: N(0, 0.01²) for convs and linears
    g = create_model("googlenet", num_classes=10, in_chans=3, img_size=64)
    assert g.inception4a.branch2[1].conv.weight.std().item() == pytest.approx(0.01, rel=0.05)


@pytest.mark.slow
def test_vgg_layout_and_init():
    torch.manual_seed(0)
    m = create_model("vgg11_bn", num_classes=10, in_chans=3, img_size=32)
    # torchvision's make_layers: conv, bn, relu per width; a max-pool per "M"
    assert [type(m.features[i]).__name__ for i in range(4)] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert isinstance(m.avgpool, nn.AdaptiveAvgPool2d) and m.classifier[0].in_features == 512 * 7 * 7
    assert m.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.02)  # N(0, 0.01²) linears
    assert torch.all(m.classifier[0].bias == 0)
    w = m.features[4].weight  # 128×64×3×3, Kaiming-normal fan_out
    assert w.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.03)


@pytest.mark.slow
def test_alexnet_matches_the_paper():
    with torch.device("meta"):
        m = create_model("alexnet", num_classes=1000, in_chans=3).eval()
        assert m.default_cfg["input_size"] == (3, 227, 227)
        x = torch.empty(1, 3, 227, 227)
        conv1 = m.features[0]
        assert (conv1.out_channels, conv1.kernel_size, conv1.stride) == (96, (11, 11), (4, 4))
        assert m.features[:2](x).shape == (1, 96, 55, 55)  # conv1 + ReLU
        assert sum(p.numel() for p in conv1.parameters()) == 34_944  # 96·(11·11·3) + 96
        assert m.features[:3](x).shape == (1, 96, 27, 27)  # overlapping max-pool 3×3/2
        # 6×6×256 = 9,216 features from both the 227 of the lecture and the 224 of the paper's text
        for size in (227, 224):
            assert m.forward_features(torch.empty(1, 3, size, size)).shape == (1, 256, 6, 6)
        assert [m.classifier[i].out_features for i in (0, 3, 6)] == [4096, 4096, 1000]
    lrn = create_model("alexnet", num_classes=10, in_chans=3, img_size=64, lrn=True)
    assert sum(isinstance(x, nn.LocalResponseNorm) for x in lrn.features) == 2


def test_resnet_stems():
    with torch.device("meta"):
        big = create_model("resnet18", num_classes=10, in_chans=3)
        small = create_model("resnet18", num_classes=10, in_chans=1, img_size=32, small_input=True)
        assert big.conv1.kernel_size == (7, 7) and big.conv1.stride == (2, 2)
        assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
        assert isinstance(small.maxpool, nn.Identity)
        assert big.forward_features(torch.empty(1, 3, 224, 224)).shape == (1, 512, 7, 7)
        assert small.forward_features(torch.empty(1, 1, 32, 32)).shape == (1, 512, 4, 4)
        r50 = create_model("resnet50", num_classes=10, in_chans=3)
        assert r50.forward_features(torch.empty(1, 3, 224, 224)).shape == (1, 2048, 7, 7)
        assert r50.layer2[0].conv2.stride == (2, 2)  # v1.5: the stride sits on the 3×3 conv


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_resnet_small_input_stem_trains(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, img_size=28, small_input=True)
    out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_googlenet_block_table_and_aux_heads():
    torch.manual_seed(0)
    m = create_model("googlenet", num_classes=5, in_chans=3, img_size=64, aux_logits=True)
    # output channels of each Inception block = #1×1 + #3×3 + #5×5 + pool proj (the paper's table 1)
    widths = {n: blk.out_chs for n, blk in m.named_children() if n.startswith("inception")}
    assert widths == {
        "inception3a": 256,
        "inception3b": 480,
        "inception4a": 512,
        "inception4b": 512,
        "inception4c": 512,
        "inception4d": 528,
        "inception4e": 832,
        "inception5a": 832,
        "inception5b": 1024,
    }
    x = torch.randn(2, 3, 64, 64)
    y = torch.tensor([1, 4])
    out = m(x)  # training: (main, aux2, aux1), torchvision's order
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 5)] * 3
    ce = nn.functional.cross_entropy
    loss = ClassificationLoss()(out, y)
    torch.testing.assert_close(loss, ce(out[0], y) + 0.3 * (ce(out[1], y) + ce(out[2], y)))
    loss.backward()
    assert m.aux1.fc2.weight.grad is not None and m.aux2.conv.conv.weight.grad is not None
    m.eval()
    with torch.no_grad():
        assert m(x).shape == (2, 5)  # eval: main logits only
        m.reset_classifier(3)
        assert m(x).shape == (2, 3) and m.aux1.fc2.out_features == m.aux2.fc2.out_features == 3
    with torch.device("meta"):
        paper = create_model("googlenet", num_classes=10, in_chans=3, branch3_kernel=5)
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)


def test_lenet5_classic_is_the_1998_layout():
    m = create_model("lenet5_classic")
    assert m.default_cfg["input_size"] == (1, 32, 32)
    assert [type(x).__name__ for x in m.features] == ["Conv2d", "Tanh", "AvgPool2d", "Conv2d", "Tanh", "AvgPool2d"]
    # C1 6@28×28 → S2 6@14×14 → C3 16@10×10 → S4 16@5×5 → 400 features
    x = torch.randn(2, 1, 32, 32)
    assert m.features[:3](x).shape == (2, 6, 14, 14) and m.features(x).shape == (2, 16, 5, 5)
