"""Classifier heads: the fully connected stack of AlexNet / VGG."""

from __future__ import annotations

from torch import nn

from cnnlab.layers.activations import get_act


def mlp_head(
    in_features: int, hidden: tuple[int, ...], num_classes: int, drop_rate: float = 0.5, act: str = "relu"
) -> nn.Sequential:
    """[Linear, act, Dropout] per hidden width, then the output Linear (torchvision's VGG `classifier.N` indices).

    With hidden=(4096, 4096): classifier.0 / .3 are the hidden Linears and classifier.6 the output layer.
    """
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), get_act(act), nn.Dropout(drop_rate)]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)
