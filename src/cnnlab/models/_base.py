"""The interface every cnnlab model exposes (forward_features / forward_head / reset_classifier / default_cfg)."""

from __future__ import annotations

import torch
from torch import nn


def default_cfg(
    input_size: tuple[int, int, int],
    classifier: str,
    min_input_size: tuple[int, int, int] | None = None,
    **extra,
) -> dict:
    """A model's defaults: input size (C, H, W), smallest input it accepts, classifier module name."""
    return {"input_size": input_size, "min_input_size": min_input_size or input_size, "classifier": classifier,
            "mean": (0.5,) * input_size[0], "std": (0.5,) * input_size[0], **extra}  # fmt: skip


class SequentialClassifier(nn.Module):
    """`features` (conv stack) → flatten → `classifier` (an nn.Sequential whose last module is the output Linear).

    The layout of AlexNet/VGG-style models; the classifier's first Linear gets its input size from a dry run of
    `features` on the model's input size, so the same family works for 28×28, 32×32 or 224×224 inputs.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, cfg: dict) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.default_cfg = cfg
        self.num_classes = classifier[-1].out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)  # (B, C, H, W) -> (B, C*H*W)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the output layer with a fresh one for `num_classes` classes."""
        last = self.classifier[-1]
        self.classifier[-1] = nn.Linear(last.in_features, num_classes)
        self.num_classes = num_classes
        if hasattr(self, "model_args"):
            self.model_args["num_classes"] = num_classes


def flat_features(features: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Number of features `features` produces for one input of `input_size` (C, H, W)."""
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_size))
    except RuntimeError:  # a kernel larger than the map it slides over
        out = torch.zeros(0)
    if out.numel() == 0:
        raise ValueError(f"input {input_size[1]}×{input_size[2]} is too small for this model's feature extractor")
    return out.numel()
