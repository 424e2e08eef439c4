"""Residual blocks (He et al. 2016) with torchvision's module names: conv1/bn1, conv2/bn2, (conv3/bn3), downsample."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.activations import get_act, get_norm


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    # no bias: every conv here is followed by a norm layer whose shift does the bias's job
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False)


class ResidualBlock(nn.Module):
    """act(branch(x) + shortcut(x)); the branch is conv→norm(→act) per kernel in `kernels`, the act skipped last.

    Subclasses are data: `kernels` (the convs' sizes) and `expansion` (output width / planes). The inner convs are
    `planes` wide, the last one `planes · expansion`; the block's stride sits on its first 3×3 conv; `downsample`
    (a 1×1 conv + norm, or None for an identity shortcut) matches the shortcut to the branch's output.
    """

    kernels: tuple[int, ...] = ()
    expansion: int = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm: str = "batchnorm",
        act: str = "relu",
    ) -> None:
        super().__init__()
        n = len(self.kernels)
        strided = self.kernels.index(3)
        for i, k in enumerate(self.kernels):
            out_chs = planes * self.expansion if i == n - 1 else planes
            self.add_module(f"conv{i + 1}", _conv(in_chs, out_chs, k, stride if i == strided else 1))
            self.add_module(f"bn{i + 1}", get_norm(norm, out_chs))
            in_chs = out_chs
        self.act = get_act(act)
        self.downsample = downsample

    def residual_norm(self) -> nn.Module:
        """The last norm of the branch (zeroed by ResNet's `zero_init_residual`)."""
        return getattr(self, f"bn{len(self.kernels)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = x
        for i in range(1, len(self.kernels) + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < len(self.kernels):
                out = self.act(out)
        return self.act(out + shortcut)


class BasicBlock(ResidualBlock):
    """3×3 → 3×3, output width = planes; ResNet-18/34."""

    kernels = (3, 3)
    expansion = 1


class Bottleneck(ResidualBlock):
    """1×1 reduce → 3×3 (strided: torchvision's "ResNet v1.5") → 1×1 expand to 4 × planes; ResNet-50/101/152."""

    kernels = (1, 3, 1)
    expansion = 4


def residual_stage(
    block: type[ResidualBlock],
    in_chs: int,
    planes: int,
    depth: int,
    stride: int = 1,
    norm: str = "batchnorm",
    act: str = "relu",
) -> nn.Sequential:
    """`depth` blocks; the first changes stride/width and gets a 1×1 conv + norm projection shortcut (`downsample`)."""
    out_chs = planes * block.expansion
    downsample = None
    if stride != 1 or in_chs != out_chs:
        downsample = nn.Sequential(_conv(in_chs, out_chs, 1, stride), get_norm(norm, out_chs))
    blocks = [block(in_chs, planes, stride, downsample, norm, act)]
    blocks += [block(out_chs, planes, norm=norm, act=act) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)
