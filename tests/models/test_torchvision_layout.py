"""torchvision's weight files load into cnnlab's models: same state-dict keys and shapes (1000 classes, RGB).

The reference, torchvision_keys.json, was derived from torchvision's source by make_torchvision_keys.py (its
docstring says how); on a machine with torchvision, `make_torchvision_keys.py --from-torchvision` re-derives it.
"""

import json
from pathlib import Path

import pytest
import torch

from cnnlab.models import create_model

REFERENCE = json.loads(Path(__file__).with_name("torchvision_keys.json").read_text())
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# torchvision's weight metadata: num_params (GoogLeNet's without the auxiliary heads)
PUBLISHED = {"resnet18": 11_689_512, "resnet50": 25_557_032, "vgg16_bn": 138_365_992, "googlenet": 6_624_904}


def cnnlab_state(name: str, **kwargs) -> dict[str, list[int]]:
    with torch.device("meta"):  # shapes only
        model = create_model(name, num_classes=1000, in_chans=3, **kwargs)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_itself_matches_published_counts(name):
    params = sum(
        torch.Size(shape).numel()
        for key, shape in REFERENCE[name]
        if not key.endswith(BUFFERS) and not key.startswith(("aux1.", "aux2."))
    )
    assert params == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_state_dict_keys_and_shapes_match_torchvision(name):
    # torchvision's GoogLeNet (and its weight file) carries the auxiliary heads
    kwargs = {"aux_logits": True} if name == "googlenet" else {}
    expected = dict(REFERENCE[name])
    got = cnnlab_state(name, **kwargs)
    assert sorted(set(expected) - set(got)) == [] and sorted(set(got) - set(expected)) == []
    assert {k: v for k, v in got.items() if v != expected[k]} == {}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_torchvision_state_dict_loads_strict(name):
    kwargs = {"aux_logits": True} if name == "googlenet" else {}
    with torch.device("meta"):
        model = create_model(name, num_classes=1000, in_chans=3, **kwargs)
        state = {
            k: torch.empty(shape, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
            for k, shape in REFERENCE[name]
        }
    result = model.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_googlenet_without_aux_heads_is_the_reference_minus_them():
    expected = {k: v for k, v in REFERENCE["googlenet"] if not k.startswith(("aux1.", "aux2."))}
    assert cnnlab_state("googlenet") == expected
