"""Every method runs on other families through the model interface alone (no per-model code)."""

import pytest
import torch

from cnnlab.explain import feature_maps, list_layers, maximize, receptive_field, saliency
from cnnlab.explain._common import first_conv
from cnnlab.io import RunMeta
from cnnlab.models import create_model, list_models

# one per family where it is registered: residual blocks (a ReLU module used twice), inception + auxiliary heads
NAMES = [n for n in ("lecture_cnn", "resnet18", "googlenet") if n in list_models()]


@pytest.mark.parametrize("name", NAMES)
def test_methods_run_on(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, in_chans=3, img_size=32).eval()
    meta = RunMeta.for_model(model, input_size=[3, 32, 32], mean=[0.5] * 3, std=[0.25] * 3, classes=list("abcd"))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    x = (images.float() / 255 - 0.5) / 0.25
    rows = list_layers(model, (3, 32, 32))
    conv = first_conv(model)
    assert any(r["name"] == conv and len(r["output"]) == 3 for r in rows)
    _, maps = feature_maps(model, meta, images[0])
    assert maps.ndim == 3
    for method in ("gradient", "gradcam"):
        heat, _, probs = saliency(model, meta, x, method=method)
        assert heat.shape == (2, 32, 32) and probs.shape == (2, 4) and not torch.isnan(torch.from_numpy(heat)).any()
    result = maximize(model, meta, [1], steps=3)
    assert result.images.shape == (1, 32, 32, 3)
    t, b, l, r = receptive_field(model, meta, conv, 0, (2, 2))
    assert 0 <= t < b <= 32 and 0 <= l < r <= 32
