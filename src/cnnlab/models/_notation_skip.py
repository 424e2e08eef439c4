"""The modules behind the notation's skip connections and per-pixel classifier: `Skip` (SK) keeps the map it is
given, `Concat` (CC) joins the latest kept map to the channels, `SkipChain` runs a chain holding them, and
`PixelClassifier` is a network that ends with a conv giving one class score map per class (a whole segmentation
model, e.g. a U-Net written in one line)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import ClassifierModel


class Skip(nn.Module):
    """SK: the map passes unchanged; `SkipChain` keeps it for the `Concat` that matches it on the way up."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Concat(nn.Module):
    """CC: (B, C, H, W) and the kept (B, C', H, W) → (B, C + C', H, W), the kept channels after the current ones."""

    def forward(self, x: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        if x.shape[2:] != kept.shape[2:]:
            here, there = ("×".join(map(str, t.shape[2:])) for t in (x, kept))
            raise ValueError(f"CC joins a {here} map to the {there} map its SK kept: the sizes must match")
        return torch.cat([x, kept], 1)


class SkipChain(nn.Sequential):
    """An nn.Sequential in which each `Skip` keeps its map and each `Concat` joins the latest kept map not yet
    joined (a stack: the last kept is the first joined, as in a U-Net)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept: list[torch.Tensor] = []
        for layer in self:
            if isinstance(layer, Concat):
                x = layer(x, kept.pop())
            else:
                x = layer(x)
                if isinstance(layer, Skip):
                    kept.append(x)
        return x


def chain(layers: list[nn.Module]) -> nn.Sequential:
    """A SkipChain when `layers` hold a Skip, else a plain nn.Sequential (a chain without skips stays one)."""
    return SkipChain(*layers) if any(isinstance(m, Skip) for m in layers) else nn.Sequential(*layers)


class PixelClassifier(ClassifierModel):
    """`features` (maps, B×C×H×W) → `classifier`, a conv giving (B, K, H, W) class logits: one class per pixel.

    forward_features gives the maps the classifier reads; forward_head(x, pre_logits=True) returns them as they are.
    reset_classifier gives a new conv of the same window for `num_classes` classes.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Conv1d | nn.Conv2d, cfg: dict) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.default_cfg = cfg
        self.num_classes = classifier.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        old = self.classifier
        self.classifier = type(old)(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding)
        self.num_classes = num_classes
        if hasattr(self, "model_args"):  # what create_model recorded: model files rebuild it with the new size
            self.model_args["num_classes"] = num_classes
