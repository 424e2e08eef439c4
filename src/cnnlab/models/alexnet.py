"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) on one device: the paper's channel widths without the two-GPU split."""

from __future__ import annotations

from torch import nn

from cnnlab.layers import conv_norm_act_layers, init_weights, mlp_head
from cnnlab.models._base import SequentialClassifier, check_input_size, default_cfg, imagenet_stats
from cnnlab.models._registry import register_model

# (out channels, kernel, stride, padding, max-pool 3×3/2 after it) — the paper's five conv layers
_CONVS = [
    (96, 11, 4, 0, True),
    (256, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, True),
]
MIN_SIZE = 39  # 39 → conv1 8 → pool 4 → conv2 4 → pool 2 → conv3-5 2 → pool 1 (ceil mode)


def _features(in_chans: int, lrn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (out_chs, k, stride, pad, pool) in enumerate(_CONVS):
        layers += conv_norm_act_layers(in_chans, out_chs, k, stride, pad)
        if lrn and i < 2:  # the paper normalizes after the ReLU of conv1 and conv2 (k=2, n=5, α=1e-4, β=0.75)
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        if pool:
            # overlapping pooling 3×3/2; ceil mode gives the paper's 55 → 27 → 13 → 6 from both 227 and 224 inputs
            # and lets small inputs (64×64) keep a map to pool
            layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
        in_chans = out_chs
    return nn.Sequential(*layers)


@register_model
def alexnet(
    num_classes: int = 1000, in_chans: int = 3, img_size: int = 227, drop_rate: float = 0.5, lrn: bool = False
) -> nn.Module:
    """AlexNet: conv 96@11×11/4 → 256@5×5 → 384@3×3 → 384@3×3 → 256@3×3 (max-pools after 1, 2, 5) → FC 4096-4096-classes.

    227×227×3 → conv1 55×55×96 (34,944 params) → pool 27×27×96 → … → 6×6×256 = 9,216 features;
    62,378,344 params at 1000 classes. An adaptive average pool to 6×6 keeps the classifier's size for other inputs
    (as torchvision does), down to 39×39. `lrn=True` adds the paper's local response normalization.
    Init: PyTorch's default, as torchvision's AlexNet.
    """
    check_input_size("alexnet", img_size, MIN_SIZE)
    features = _features(in_chans, lrn)
    classifier = mlp_head(256 * 6 * 6, (4096, 4096), num_classes, drop_rate)
    size = (in_chans, img_size, img_size)
    cfg = default_cfg(size, "classifier.6", (in_chans, MIN_SIZE, MIN_SIZE), **imagenet_stats(in_chans))
    model = SequentialClassifier(features, classifier, cfg, pool=nn.AdaptiveAvgPool2d((6, 6)))
    return init_weights(model, "torch")
