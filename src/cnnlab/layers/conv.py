"""Convolution → normalization → activation, as a named block or as flat layers for `nn.Sequential` stacks."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.activations import get_act, get_norm


def conv_norm_act_layers(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    norm: str | None = None,
    act: str = "relu",
    bias: bool = True,
) -> list[nn.Module]:
    """[conv, norm, act] (no norm module when `norm` is None) for flat stacks such as VGG's `features.N`.

    The conv keeps its bias by default even before a norm: torchvision's VGG-BN does, and its weight files hold it.
    """
    layers: list[nn.Module] = [nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=bias)]
    if norm is not None:
        layers.append(get_norm(norm, out_chs))
    return layers + [get_act(act)]


class ConvNormAct(nn.Module):
    """conv (no bias) → norm → act with submodules `conv` and `bn` (torchvision's BasicConv2d layout)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm: str = "batchnorm",
        act: str = "relu",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        norm_layer = get_norm(norm, out_chs, eps)
        # the conv's bias would be cancelled by the norm's shift; keep it only without a norm
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=isinstance(norm_layer, nn.Identity))
        self.bn = norm_layer
        self.act = get_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))
