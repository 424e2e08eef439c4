"""The interface every cnnlab model exposes (forward_features / forward_head / reset_classifier / default_cfg)."""

from __future__ import annotations

import torch
from torch import nn

# ImageNet channel statistics (RGB, 0–1 scale): what torchvision's weight files were trained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_cfg(
    input_size: tuple[int, int, int],
    classifier: str,
    min_input_size: tuple[int, int, int] | None = None,
    **extra,
) -> dict:
    """A model's defaults: input size (C, H, W), smallest input it accepts, classifier module name."""
    return {
        "input_size": input_size,
        "min_input_size": min_input_size or input_size,
        "classifier": classifier,
        "mean": (0.5,) * input_size[0],
        "std": (0.5,) * input_size[0],
        **extra,
    }


def imagenet_stats(in_chans: int) -> dict:
    """mean/std for a default_cfg: ImageNet's per RGB channel; their average on every channel otherwise."""
    if in_chans == 3:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    return {"mean": (round(mean, 4),) * in_chans, "std": (round(std, 4),) * in_chans}


def main_output(output: torch.Tensor | tuple) -> torch.Tensor:
    """The main logits of a model output (the first element when auxiliary heads are returned, as GoogLeNet's)."""
    return output[0] if isinstance(output, tuple) else output


def check_input_size(model: str, img_size: int, min_size: int) -> None:
    """Raise a 'too small' ValueError when `img_size` is below what the architecture can take."""
    if img_size < min_size:
        raise ValueError(
            f"input {img_size}×{img_size} is too small for {model}: it needs at least {min_size}×{min_size}"
        )


class ClassifierModel(nn.Module):
    """Shared behaviour: forward = forward_head(forward_features(x)); reset_classifier swaps the output Linear.

    Subclasses define forward_features / forward_head and set `default_cfg` (whose "classifier" names the output
    nn.Linear) and `num_classes`.
    """

    default_cfg: dict
    num_classes: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the output layer with a fresh one for `num_classes` classes."""
        name = self.default_cfg["classifier"]
        self.set_submodule(name, nn.Linear(self.get_submodule(name).in_features, num_classes))
        self.num_classes = num_classes
        if hasattr(self, "model_args"):  # what create_model recorded: model files rebuild it with the new size
            self.model_args["num_classes"] = num_classes


class SequentialClassifier(ClassifierModel):
    """`features` (conv stack) → [`avgpool`] → flatten → `classifier` (an nn.Sequential ending in the output Linear).

    The layout of LeNet/AlexNet/VGG-style models. Without `pool`, the classifier's first Linear gets its input size
    from a dry run of `features` (`flat_features`), so the same family works for 28×28, 32×32 or 224×224 inputs;
    with an adaptive `pool` (AlexNet, VGG) the classifier's size is fixed and any input size that survives
    `features` works.
    """

    def __init__(
        self, features: nn.Sequential, classifier: nn.Sequential, cfg: dict, pool: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = pool  # None stays a plain attribute: no module, no summary row
        self.classifier = classifier
        self.default_cfg = cfg
        self.num_classes = classifier[-1].out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.avgpool is not None:
            x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, C, H, W) -> (B, C*H*W)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


class PooledLinearClassifier(ClassifierModel):
    """Head of ResNet / GoogLeNet: global average pool → dropout → `fc`; subclasses build the trunk.

    Subclasses set `avgpool`, `dropout` and `fc` (torchvision's names) and implement forward_features.
    """

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (B, C, H, W) -> (B, C)
        return x if pre_logits else self.fc(x)


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
