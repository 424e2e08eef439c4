"""LeNet-5: conv5×5 6 → pool → conv5×5 16 → pool → FC120 → FC84 → FC classes (a modern and a 1998 flavour)."""

from __future__ import annotations

from torch import nn

from cnnlab.layers import get_act, get_pool, init_weights
from cnnlab.models._base import SequentialClassifier, default_cfg, flat_features
from cnnlab.models._registry import register_model


def _lenet(num_classes: int, in_chans: int, img_size: int, act: str, pool: str, first_padding: int) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(in_chans, 6, 5, padding=first_padding),  # (B, 6, 28, 28) for 28×28 input with padding 2
        get_act(act),
        get_pool(pool, 2),  # (B, 6, 14, 14)
        nn.Conv2d(6, 16, 5),  # (B, 16, 10, 10)
        get_act(act),
        get_pool(pool, 2),  # (B, 16, 5, 5)
    )
    size = (in_chans, img_size, img_size)
    classifier = nn.Sequential(
        nn.Linear(flat_features(features, size), 120),
        get_act(act),
        nn.Linear(120, 84),
        get_act(act),
        nn.Linear(84, num_classes),
    )
    min_size = 16 - 2 * first_padding  # conv 5×5 → pool 2 → conv 5×5 → pool 2 must leave 1×1
    model = SequentialClassifier(
        features, classifier, default_cfg(size, "classifier.4", (in_chans, min_size, min_size))
    )
    return init_weights(model, "glorot_uniform")


@register_model
def lenet5(num_classes: int = 10, in_chans: int = 1, img_size: int = 28) -> nn.Module:
    """LeNet-5 with ReLU and max pooling; padding 2 on the first conv so 28×28 inputs keep 28×28 (61,706 params)."""
    return _lenet(num_classes, in_chans, img_size, act="relu", pool="max", first_padding=2)


@register_model
def lenet5_classic(num_classes: int = 10, in_chans: int = 1, img_size: int = 32) -> nn.Module:
    """LeNet-5 as in LeCun et al. 1998: 32×32 input, no padding, tanh, average pooling (61,706 params at 32×32).

    C1 6@28×28 → S2 6@14×14 → C3 16@10×10 → S4 16@5×5 → C5/F 120 → F6 84 → output. Simplifications, as in most
    re-implementations: C3 connects to all 6 S2 maps (the paper used a sparse table), the subsampling layers have no
    trainable coefficient, C5 is the equivalent fully connected layer, and the output is linear instead of RBF units.
    """
    return _lenet(num_classes, in_chans, img_size, act="tanh", pool="avg", first_padding=0)
