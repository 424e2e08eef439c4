import math

import pytest
import torch
from torch import nn

from cnnlab.models import create_model, list_models

# published / hand-computed parameter counts (28×28×1 input, 10 classes)
PARAMS = {"lenet5": 61_706, "lecture_cnn": 1_413_834}


def test_registry_lists_models():
    assert {"lenet5", "lecture_cnn"} <= set(list_models())
    assert list_models("lenet*") == ["lenet5"]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_backward(name, in_chans):
    model = create_model(name, num_classes=7, in_chans=in_chans)
    size = model.default_cfg["input_size"][1:]
    x = torch.randn(2, in_chans, *size)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", list_models())
def test_interface(name):
    model = create_model(name).eval()  # eval: dropout off, so the two paths agree
    cfg = model.default_cfg
    assert {"input_size", "classifier", "mean", "std"} <= set(cfg)
    x = torch.randn(2, *cfg["input_size"])
    feats = model.forward_features(x)
    assert feats.ndim == 4
    torch.testing.assert_close(model.forward_head(feats), model(x))
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.ndim == 2
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert isinstance(model.get_submodule(cfg["classifier"]), nn.Linear)


@pytest.mark.parametrize("name,count", PARAMS.items())
def test_parameter_counts(name, count):
    assert sum(p.numel() for p in create_model(name).parameters()) == count


def test_other_input_sizes():
    m = create_model("lecture_cnn", in_chans=3, img_size=32)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="too small"):
        create_model("lenet5", img_size=8)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean: lenet5"):
        create_model("lenet")


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
