"""The course's compact notation for plain CNNs and U-Nets: LeNet-5 is ``CL32-MP4-CL64-MP4-FC512-FC10``.

Grammar: tokens separated by ``-``; layer letters upper case, option letters lower case.

=================================  =====================================================================
``CL<filters>[k<K>][s<S>][p<P>]``  convolution, then ReLU. Defaults: 5×5 kernel, stride 1, "same" padding
                                   (P = K // 2, which keeps H×W at stride 1 and gives ⌈H/S⌉ at stride S);
                                   an even kernel needs an explicit ``p``. ``CL32k3``, ``CL96k11s4p0``.
``MP<n>`` / ``AP<n>``              max / average pooling that divides the number of pixels by n = m²
                                   (m ≥ 2): an m×m window with stride m. MP4 = 2×2/2, MP9 = 3×3/3.
``MPk<K>[s<S>][p<P>]`` (``AP…``)   any other window, e.g. AlexNet's overlapping 3×3/2 pool ``MPk3s2``
                                   (stride defaults to K, padding to 0).
``k<KH>x<KW>``, ``s<SH>x<SW>``,    a rectangular kernel, stride or padding in a CL / MP / AP token, height
``p<PH>x<PW>``                     first like torch's (kH, kW): ``CL32k3x5`` is a 3×5 kernel whose "same"
                                   padding is (KH // 2, KW // 2) = 1×2 (an even side needs ``p``);
                                   ``CL32k3x5s1x2``, ``MPk3x2s2x1``. Equal sides are written as one number
                                   (``k3x3`` is ``k3``). Not in 1-D networks, whose windows have one side.
``…c`` after a pool token          ceil mode: the output side is rounded up, ⌈(n + 2p − k)/s⌉ + 1, so a
                                   partial window at the edge is kept: ``MP4c`` takes 7×7 to 4×4 (the
                                   lectures' X/O example), ``MP4`` to 3×3. `to_notation` writes it for every
                                   pool with ``ceil_mode=True``, also where the window fits the map exactly:
                                   AlexNet is ``…-MPk3s2c-…``, whose 3×3/2 pools give 6×6 maps at 224×224
                                   as at 227×227 (``MPk3s2`` gives 5×5 at 224).
``BN``                             batch norm. Right after a CL or a hidden FC it goes between that layer
                                   and its ReLU (conv → BN → ReLU, as in VGG-BN); elsewhere it stays where
                                   it is written (BatchNorm2d before the flatten, BatchNorm1d after).
``D<rate>``                        dropout with drop probability 0 ≤ rate < 1: ``D0.5``.
``GAP``                            global average pooling, C×H×W → C×1×1.
``FC<units>``                      fully connected, then ReLU (except the last FC).
``UT<filters>``                    upsampling ×2 by a learnt 2×2 stride-2 transposed conv (ConvTranspose2d,
                                   the U-Net paper's "up-conv"): h×w → 2h×2w, no ReLU of its own.
``UR<filters>``                    upsampling ×2 by a bilinear resize, then a 3×3 "same" conv with
                                   `filters` outputs (no checkerboard artefacts), no ReLU of its own.
``SK``                             skip: keep the map here, unchanged (a skip connection's start).
``CC``                             concatenate: the map the latest SK not yet joined kept goes after the
                                   current channels, C×H×W ⊕ C'×H×W → (C + C')×H×W (the kept map last, a
                                   stack: the last SK is the first CC, as a U-Net nests). Its H×W must be
                                   the current one; every SK needs its CC.
=================================  =====================================================================

One dimension. ``dims=1`` (``--model-arg dims=1``) reads the same string as a network for signals of
``in_chans``×``img_size`` samples: CL is a Conv1d, MP / AP a MaxPool1d / AvgPool1d, and ``MP<n>`` a window of
n samples (it still divides the number of samples by n): ``create_model("CL8k5-MP4-CL16k5-MP4-GAP-FC3", dims=1,
img_size=128)``. UT, UR, SK and CC are for images only.

Rules. ReLU follows every CL and every hidden FC (the model argument ``act`` picks another nonlinearity:
``create_model("CL16k3-GAP-FC10", act="sigmoid")``, ``--model-arg act=tanh``). The feature maps are flattened
once: right after GAP, or else right before the first FC; no CL, MP, AP, GAP, UT, UR, SK or CC may come after
that point. The string ends with the classifier, and the model's ``num_classes`` replaces the size written there:
an FC (one label per image: ``create_model("CL32-FC10", num_classes=5)`` has 5 outputs and `to_notation` writes it
back as ``CL32-FC5``; that way a model whose classifier was reset to 3 classes is rebuilt from its file by the same
name), or a CL with no ReLU after it (a class per pixel: a `PixelClassifier`, whose K×H×W logits make it a whole
segmentation model, trained as it is by ``--task segment`` when the way up ends at the input's size). Conv, FC and
UT layers have biases; weights are Glorot-uniform, Keras' default, as in the course code. Modules are named like
torchvision's VGG: ``features.N`` up to the flatten (or up to the per-pixel classifier, named ``classifier``),
``classifier.N`` after it. Layers whose maps do not match are refused with the input size: a CC whose kept map is
7×7 while the way up gives 6×6 (28 → 14 → 7 → 3 → 6 after three MP4 and a UT) names its token and the input
sides that divide exactly.

For a 28×28×1 input, `COURSE_LENET5` has 7·7·64 = 3,136 features before FC512 and 1,663,370 parameters.

A U-Net in one line: `UNET_EXAMPLE`, for 64×64×1 scenes with 11 classes (background and 10 objects), is

    CL16k3-BN-SK-MP4-CL32k3-BN-SK-MP4-CL64k3-BN-UT32-CC-CL32k3-BN-UT16-CC-CL16k3-BN-CL11k1

down 64 → 32 → 16 (16, 32, 64 channels), up by UT32 to 32×32 joined with the 32 kept channels (64), CL32k3, UT16
to 64×64 joined with the first 16 (32), CL16k3, and 11×64×64 logits from the 1×1 CL11k1. Parameters: convs
16·(9·1 + 1) + 32·(9·16 + 1) + 64·(9·32 + 1) + 32·(9·64 + 1) + 16·(9·32 + 1) + 11·(16 + 1) = 46,571, BN 2·(16 +
32 + 64 + 32 + 16) = 320, UT 64·32·4 + 32 + 32·16·4 + 16 = 10,288: 57,179 in all.

The parser lives in `_notation_parse`, the builder in `_notation_build`, the writer (`to_notation`) in
`_notation_write`, the SK / CC modules and `PixelClassifier` in `_notation_skip`; every public name is importable
from here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

from cnnlab.models._notation_build import build
from cnnlab.models._notation_parse import Token, format_notation, is_token, parse
from cnnlab.models._notation_skip import PixelClassifier
from cnnlab.models._notation_write import to_notation
from cnnlab.models._registry import register_resolver

__all__ = [
    "COURSE_LENET5",
    "UNET_EXAMPLE",
    "PixelClassifier",
    "Token",
    "build",
    "format_notation",
    "parse",
    "resolve_notation",
    "to_notation",
]

COURSE_LENET5 = "CL32-MP4-CL64-MP4-FC512-FC10"  # the course's "LeNet-5" for 28×28 Fashion-MNIST
UNET_EXAMPLE = "CL16k3-BN-SK-MP4-CL32k3-BN-SK-MP4-CL64k3-BN-UT32-CC-CL32k3-BN-UT16-CC-CL16k3-BN-CL11k1"  # 64×64 scenes


@register_resolver
def resolve_notation(name: str) -> Callable[..., nn.Module] | None:
    """A constructor for `name` when it is written in the course notation (any of its tokens is one), else None.

    A name with some valid tokens and some bad ones is claimed, so its error points at the bad token.
    """
    if "/" in name or "\\" in name or name.endswith(".safetensors"):  # a path: not a name at all
        return None
    if not any(is_token(w) for w in name.split("-")):
        return None
    try:
        parse(name)  # a ValueError with a caret line for a bad string, before any model is built
    except ValueError as error:
        try:
            parse(name, dims=1)  # …unless it is a valid 1-D network (MP2); `build` checks it again with its `dims`
        except ValueError:
            raise error from None  # bad either way: the image network's error (CL8k3x is no 1-D question)
    return functools.partial(_construct, name)


def _construct(
    text: str, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, act: str = "relu", dims: int = 2
) -> nn.Module:
    # the string is the whole architecture (with `act` its nonlinearity and `dims` 1 for signals): create_model
    # refuses any other argument
    return build(text, num_classes, in_chans, img_size, act, dims)
