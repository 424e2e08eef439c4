"""The Inception (GoogLeNet v1) block and its auxiliary classifier, with torchvision's module names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.layers.activations import get_act
from cnnlab.layers.conv import ConvNormAct

BN_EPS = 1e-3  # torchvision's GoogLeNet (ported from TensorFlow) uses eps 0.001 in every BatchNorm


def basic_conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0) -> ConvNormAct:
    """conv → BN(eps 1e-3) → ReLU: GoogLeNet's BasicConv2d."""
    return ConvNormAct(in_chs, out_chs, kernel_size, stride, padding, eps=BN_EPS)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1×1 | 1×1→3×3 | 1×1→"5×5" | 3×3 max-pool→1×1.

    The arguments are the columns of the GoogLeNet paper's table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5,
    pool proj; the output has ch1x1 + ch3x3 + ch5x5 + pool_proj channels and the input's height and width.
    `branch3_kernel` is 3 by default as in torchvision (its weight files hold 3×3 kernels there; pytorch/vision#906),
    5 gives the paper's 5×5 convolution.
    """

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        branch3_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.branch1 = basic_conv(in_chs, ch1x1, 1)
        self.branch2 = nn.Sequential(basic_conv(in_chs, ch3x3red, 1), basic_conv(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(
            basic_conv(in_chs, ch5x5red, 1),
            basic_conv(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), basic_conv(in_chs, pool_proj, 1)
        )
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_chs, H, W) -> (B, out_chs, H, W)
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4×4 average pool → 1×1 conv 128 → FC 1024 → dropout 0.7 → FC classes."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7) -> None:
        super().__init__()
        self.conv = basic_conv(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = get_act("relu")
        self.dropout = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # adaptive, so the head works for any input size: (B, C, 14, 14) at 224×224 -> (B, C, 4, 4)
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (B, 128, 4, 4)
        x = self.dropout(self.act(self.fc1(torch.flatten(x, 1))))  # (B, 1024)
        return self.fc2(x)
