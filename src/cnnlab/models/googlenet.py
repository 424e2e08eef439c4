"""GoogLeNet / Inception v1 (Szegedy et al. 2015) with BatchNorm, in torchvision's layout and names.

Module names (`conv1.conv`, `conv1.bn`, `inception3a.branch2.1.conv`, `aux1.fc2`, `fc`, …) follow torchvision, so
its weight files load with strict=True. Two deviations from the paper, both torchvision's: every conv is followed by
BatchNorm (eps 1e-3), and the "5×5" branch uses a 3×3 kernel (pytorch/vision#906; `branch3_kernel=5` restores the
paper's 5×5, at the price of torchvision compatibility). torchvision's googlenet weight file was saved with the
auxiliary heads: load it into `googlenet(aux_logits=True)`, or with strict=False. Its `transform_input` option
(re-normalizing ImageNet inputs) is not here: cnnlab normalizes in the data pipeline.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers import Inception, InceptionAux, basic_conv, init_weights
from cnnlab.models._base import PooledLinearClassifier, check_input_size, default_cfg, imagenet_stats
from cnnlab.models._registry import register_model

# The paper's table 1: input channels, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
# (the output is #1×1 + #3×3 + #5×5 + pool proj channels, the next block's input).
INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),  # → 256
    "inception3b": (256, 128, 128, 192, 32, 96, 64),  # → 480
    "inception4a": (480, 192, 96, 208, 16, 48, 64),  # → 512
    "inception4b": (512, 160, 112, 224, 24, 64, 64),  # → 512
    "inception4c": (512, 128, 128, 256, 24, 64, 64),  # → 512
    "inception4d": (512, 112, 144, 288, 32, 64, 64),  # → 528
    "inception4e": (528, 256, 160, 320, 32, 128, 128),  # → 832
    "inception5a": (832, 256, 160, 320, 32, 128, 128),  # → 832
    "inception5b": (832, 384, 192, 384, 48, 128, 128),  # → 1024
}
MIN_SIZE = 15  # 15 → conv1 8 → pool 4 → pool 2 → pool 1 → pool 1 (ceil-mode pools)


class GoogLeNet(PooledLinearClassifier):
    """Stem (conv 7×7/2, pool, conv 1×1, conv 3×3, pool) → Inception 3a–5b with pools → avgpool → dropout → fc.

    With `aux_logits=True`, two auxiliary classifiers read the outputs of 4a (`aux1`) and 4d (`aux2`); in training
    mode the model then returns (logits, aux2_logits, aux1_logits), torchvision's order, and the training loss adds
    0.3 × each auxiliary loss; in eval mode it returns the logits only.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int = 224,
        aux_logits: bool = False,
        drop_rate: float = 0.2,  # torchvision's; the paper used 0.4
        branch3_kernel: int = 3,
    ) -> None:
        super().__init__()
        check_input_size("googlenet", img_size, MIN_SIZE)
        self.aux_logits = aux_logits
        # ceil-mode pools as in torchvision (and Caffe): 224 → 112 → 56 → 28 → 14 → 7
        self.conv1 = basic_conv(in_chans, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = basic_conv(64, 64, 1)
        self.conv3 = basic_conv(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, row in INCEPTION_TABLE.items():
            self.add_module(name, Inception(*row, branch3_kernel=branch3_kernel))
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(1024, num_classes)
        self.num_classes = num_classes
        size = (in_chans, img_size, img_size)
        self.default_cfg = default_cfg(size, "fc", (in_chans, MIN_SIZE, MIN_SIZE), **imagenet_stats(in_chans))
        # torchvision's init: conv and linear weights N(0, 0.01²) truncated, BN 1/0
        init_weights(self, "trunc_normal_0.01")

    def _trunk(self, x: torch.Tensor, aux: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        # shapes for a 224×224 input
        x = self.maxpool1(self.conv1(x))  # (B, 64, 56, 56)
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (B, 192, 28, 28)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (B, 480, 14, 14)
        x = self.inception4a(x)  # (B, 512, 14, 14)
        aux1 = self.aux1(x) if aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (B, 528, 14, 14)
        aux2 = self.aux2(x) if aux else None
        x = self.maxpool4(self.inception4e(x))  # (B, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (B, 1024, 7, 7)
        return x, aux2, aux1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        aux = self.aux_logits and self.training
        x, aux2, aux1 = self._trunk(x, aux)
        logits = self.forward_head(x)
        return (logits, aux2, aux1) if aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the output layer (and the auxiliary heads' output layers) for `num_classes` classes."""
        super().reset_classifier(num_classes)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = nn.Linear(head.fc2.in_features, num_classes)


@register_model(takes=GoogLeNet)
def googlenet(**kwargs) -> nn.Module:
    """GoogLeNet (Inception v1): 6,624,904 params at 1000 classes without the auxiliary heads (`aux_logits=True`)."""
    return GoogLeNet(**kwargs)
