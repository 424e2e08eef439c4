"""VGG (Simonyan & Zisserman 2015): stacks of 3×3 convs and 2×2 max-pools, then FC 4096-4096-classes.

torchvision's layout (`features.N`, `avgpool`, `classifier.N`), so its weight files load with strict=True.
"""

from __future__ import annotations

from torch import nn

from cnnlab.layers import conv_norm_act_layers, init_weights, mlp_head
from cnnlab.models._base import SequentialClassifier, check_input_size, default_cfg, imagenet_stats
from cnnlab.models._registry import register_model

# the paper's configurations A, B, D, E: conv widths (3×3, padding 1) and "M" for a 2×2/2 max-pool
CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
MIN_SIZE = 32  # five 2×2 pools: 32 → 1


def make_features(cfg: list[int | str], in_chans: int, norm: str | None) -> nn.Sequential:
    """The conv stack of one configuration: [conv, (bn,) relu] per width, a max-pool per "M"."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))  # halves H and W
        else:
            layers += conv_norm_act_layers(in_chans, v, 3, padding=1, norm=norm)
            in_chans = v
    return nn.Sequential(*layers)


def _create_vgg(
    variant: str,
    batch_norm: bool,
    num_classes: int = 1000,
    in_chans: int = 3,
    img_size: int = 224,
    drop_rate: float = 0.5,
) -> nn.Module:
    name = variant + ("_bn" if batch_norm else "")
    check_input_size(name, img_size, MIN_SIZE)
    features = make_features(CFGS[variant], in_chans, "batchnorm" if batch_norm else None)
    # (B, 512, H/32, W/32) -> adaptive pool -> (B, 512, 7, 7): 25,088 features for any input size ≥ 32
    classifier = mlp_head(512 * 7 * 7, (4096, 4096), num_classes, drop_rate)
    size = (in_chans, img_size, img_size)
    cfg = default_cfg(size, "classifier.6", (in_chans, MIN_SIZE, MIN_SIZE), **imagenet_stats(in_chans))
    model = SequentialClassifier(features, classifier, cfg, pool=nn.AdaptiveAvgPool2d((7, 7)))
    # torchvision's init: Kaiming-normal (fan_out) convs, N(0, 0.01²) linears, zero biases
    return init_weights(model, "he_normal", linear="normal_0.01")


@register_model(takes=_create_vgg)
def vgg11(**kwargs) -> nn.Module:
    """VGG-11 (configuration A): 8 conv + 3 FC layers, 132,863,336 params at 1000 classes."""
    return _create_vgg("vgg11", False, **kwargs)


@register_model(takes=_create_vgg)
def vgg11_bn(**kwargs) -> nn.Module:
    """VGG-11 with BatchNorm after every conv."""
    return _create_vgg("vgg11", True, **kwargs)


@register_model(takes=_create_vgg)
def vgg13(**kwargs) -> nn.Module:
    """VGG-13 (configuration B): 10 conv + 3 FC layers."""
    return _create_vgg("vgg13", False, **kwargs)


@register_model(takes=_create_vgg)
def vgg13_bn(**kwargs) -> nn.Module:
    """VGG-13 with BatchNorm after every conv."""
    return _create_vgg("vgg13", True, **kwargs)


@register_model(takes=_create_vgg)
def vgg16(**kwargs) -> nn.Module:
    """VGG-16 (configuration D): 13 conv + 3 FC layers, 138,357,544 params at 1000 classes."""
    return _create_vgg("vgg16", False, **kwargs)


@register_model(takes=_create_vgg)
def vgg16_bn(**kwargs) -> nn.Module:
    """VGG-16 with BatchNorm after every conv, 138,365,992 params at 1000 classes."""
    return _create_vgg("vgg16", True, **kwargs)


@register_model(takes=_create_vgg)
def vgg19(**kwargs) -> nn.Module:
    """VGG-19 (configuration E): 16 conv + 3 FC layers, 143,667,240 params at 1000 classes."""
    return _create_vgg("vgg19", False, **kwargs)


@register_model(takes=_create_vgg)
def vgg19_bn(**kwargs) -> nn.Module:
    """VGG-19 with BatchNorm after every conv."""
    return _create_vgg("vgg19", True, **kwargs)
