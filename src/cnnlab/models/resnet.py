"""ResNet (He et al. 2016): a stem, four stages of residual blocks, global average pool, `fc`.

torchvision's layout (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, …, `fc`), so its weight files
load with strict=True. Bottleneck blocks put their stride on the 3×3 conv, as torchvision does ("ResNet v1.5").
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers import BasicBlock, Bottleneck, ResidualBlock, get_act, get_norm, init_weights, residual_stage
from cnnlab.models._base import PooledLinearClassifier, check_input_size, default_cfg, imagenet_stats
from cnnlab.models._registry import register_model


class ResNet(PooledLinearClassifier):
    """Stem → layer1..layer4 (64, 128, 256, 512 planes; stride 1, 2, 2, 2) → avgpool → dropout → fc.

    The ImageNet stem is conv 7×7/2 + max-pool 3×3/2 (224 → 56); `small_input=True` makes it a 3×3/1 conv without
    the max-pool, the usual change for 28–32 px images (32 → 32 → … → 4×4 before the pool).
    `zero_init_residual=True` starts each block's last BN at 0, so every block begins as an identity.
    """

    def __init__(
        self,
        block: type[ResidualBlock],
        depths: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int = 224,
        small_input: bool = False,
        drop_rate: float = 0.0,
        zero_init_residual: bool = False,
        norm: str = "batchnorm",
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_input_size("resnet", img_size, 1)
        k, stride = (3, 1) if small_input else (7, 2)
        self.conv1 = nn.Conv2d(in_chans, 64, k, stride=stride, padding=k // 2, bias=False)
        self.bn1 = get_norm(norm, 64)
        self.act = get_act(act)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        chs = 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            stage = residual_stage(block, chs, planes, depth, stride=1 if i == 0 else 2, norm=norm, act=act)
            self.add_module(f"layer{i + 1}", stage)
            chs = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(chs, num_classes)
        self.num_classes = num_classes
        # any size works (every stride-2 layer pads, the pool is adaptive): 1×1 is the architectural minimum
        self.default_cfg = default_cfg(
            (in_chans, img_size, img_size), "fc", (in_chans, 1, 1), **imagenet_stats(in_chans)
        )

        # torchvision's init: Kaiming-normal (fan_out) convs, BN 1/0, PyTorch's default for fc
        init_weights(self, "he_normal", linear="torch")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    nn.init.zeros_(m.residual_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, 224, 224) -> stem (B, 64, 56, 56) -> layer1..4 -> (B, 512·expansion, 7, 7)
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@register_model(takes=ResNet)
def resnet18(**kwargs) -> nn.Module:
    """ResNet-18: BasicBlock × (2, 2, 2, 2), 11,689,512 params at 1000 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model(takes=ResNet)
def resnet34(**kwargs) -> nn.Module:
    """ResNet-34: BasicBlock × (3, 4, 6, 3), 21,797,672 params at 1000 classes."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model(takes=ResNet)
def resnet50(**kwargs) -> nn.Module:
    """ResNet-50: Bottleneck × (3, 4, 6, 3), 25,557,032 params at 1000 classes."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model(takes=ResNet)
def resnet101(**kwargs) -> nn.Module:
    """ResNet-101: Bottleneck × (3, 4, 23, 3), 44,549,160 params at 1000 classes."""
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model(takes=ResNet)
def resnet152(**kwargs) -> nn.Module:
    """ResNet-152: Bottleneck × (3, 8, 36, 3), 60,192,808 params at 1000 classes."""
    return ResNet(Bottleneck, (3, 8, 36, 3), **kwargs)
