"""`to_notation` keeps ceil mode: for every registered family the string it writes rebuilds a model with the same
output shapes and parameter count at the family's default input size; AlexNet at 224 and at 227 px keeps its 6×6
maps and 62.4 M parameters (written without the `c`, its pools gave 5×5 maps and 50.8 M parameters at 224)."""

from __future__ import annotations

import pytest
import torch

from cnnlab.models import create_model, list_models
from cnnlab.models.notation import parse, to_notation

ALEXNET_PARAMS = 62_378_344  # the paper's layer sizes at 1000 classes (torchvision's count)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _rebuilt(model: torch.nn.Module, text: str, size: int) -> torch.nn.Module:
    c = model.default_cfg["input_size"][0]
    return create_model(text, num_classes=model.num_classes, in_chans=c, img_size=size)


@pytest.mark.parametrize("name", list_models())
def test_notation_rebuilds_every_family(name):
    # shapes and parameter counts do not depend on the values: the meta device builds VGG-19 without its 143 M floats
    with torch.device("meta"):
        model = create_model(name)
        text = to_notation(model)
        if text is None:  # residual / branching blocks, or a nonlinearity other than ReLU: say why, never guess
            with pytest.raises(ValueError):
                to_notation(model, strict=True)
            return
        c, h, w = model.default_cfg["input_size"]
        rebuilt = _rebuilt(model, text, h)
        x = torch.zeros(2, c, h, w)
        assert rebuilt.forward_features(x).shape == model.forward_features(x).shape
        assert rebuilt(x).shape == model(x).shape == (2, model.num_classes)
        assert _params(rebuilt) == _params(model)
        assert to_notation(rebuilt) == text


def test_every_pool_with_ceil_mode_is_written_with_c():
    with torch.device("meta"):
        model = create_model("alexnet")
        pools = [t for t in parse(to_notation(model)) if t.kind == "MP"]
    assert len(pools) == 3 and all(t.ceil and t.text() == "MPk3s2c" for t in pools)


@pytest.mark.slow
@pytest.mark.parametrize("size", [224, 227])
def test_alexnet_round_trip_keeps_6x6_maps_and_62_4m_parameters(size):
    model = create_model("alexnet", img_size=size)
    text = to_notation(model)
    rebuilt = _rebuilt(model, text, size)
    with torch.no_grad():
        maps = rebuilt.forward_features(torch.zeros(1, 3, size, size))
    assert maps.shape == (1, 256, 6, 6)
    assert _params(rebuilt) == _params(model) == ALEXNET_PARAMS
    # the slip this guards against: floor-mode pools at 224 px give 5×5 maps and a 50.8 M-parameter model
    with torch.device("meta"):
        floor = create_model(text.replace("MPk3s2c", "MPk3s2"), num_classes=1000, in_chans=3, img_size=224)
        assert floor.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 256, 5, 5)
    assert _params(floor) == 50_844_008
