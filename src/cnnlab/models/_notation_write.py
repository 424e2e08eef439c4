"""A model → the course notation (`to_notation`), where it is a chain of CL/MP/AP/BN/D/GAP/FC/UT/UR/SK/CC layers."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import SequentialClassifier
from cnnlab.models._notation_parse import Token, format_notation
from cnnlab.models._notation_skip import Concat, PixelClassifier, Skip, SkipChain


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules of `model` in the order they run, when it is a plain chain; ValueError saying why not."""
    if isinstance(model, SequentialClassifier):
        overridden = _own_forward(model, SequentialClassifier)
        if overridden:
            raise ValueError(f"{type(model).__name__} has its own {overridden}(), not a plain chain of layers")
        extra = [n for n, _ in model.named_children() if n not in ("features", "avgpool", "classifier")]
        if extra:
            raise ValueError(f"{type(model).__name__} has a module '{extra[0]}' outside features / classifier")
        # SequentialClassifier runs features → avgpool (when there is one) → flatten → classifier
        pool = [("avgpool", model.avgpool)] if model.avgpool is not None else []
        return [
            *_leaves(model.features, "features"),
            *pool,
            ("", nn.Flatten()),
            *_leaves(model.classifier, "classifier"),
        ]
    if isinstance(model, PixelClassifier) and _own_forward(model, PixelClassifier) is None:
        return [*_leaves(model.features, "features"), ("classifier", model.classifier)]
    if _known_chain(model):
        return _leaves(model, "")
    raise ValueError(f"{type(model).__name__} is not a plain chain of layers (it has its own forward())")


def _leaves(seq: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    out = []
    for name, child in seq.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if not list(child.children()):
            out.append((full, child))
        elif _known_chain(child):
            out += _leaves(child, full)
        else:
            raise ValueError(
                f"'{full}' ({type(child).__name__}) has its own forward(): a residual or branching "
                "block, which the notation (a plain chain of layers) cannot write"
            )
    return out


def _known_chain(m: nn.Module) -> bool:
    """An nn.Sequential that runs its layers in turn (a SkipChain also joins the maps its SK layers keep)."""
    return isinstance(m, nn.Sequential) and type(m).forward in (nn.Sequential.forward, SkipChain.forward)


def _own_forward(model: nn.Module, cls: type) -> str | None:
    """The first of forward / forward_features / forward_head that `model`'s class overrides from `cls`."""
    names = ("forward", "forward_features", "forward_head")
    return next((f for f in names if getattr(type(model), f) is not getattr(cls, f)), None)


def _square(value, what: str, name: str) -> int:
    pair = (value * 2 if len(value) == 1 else value) if isinstance(value, tuple) else (value, value)  # 1-D: (k,)
    if pair[0] != pair[1]:
        raise ValueError(f"'{name}' has a non-square {what} {pair[0]}×{pair[1]}")
    return int(pair[0])


def _conv_token(name: str, m: nn.Conv1d | nn.Conv2d) -> Token:
    if m.groups != 1 or _square(m.dilation, "dilation", name) != 1:
        raise ValueError(f"conv '{name}' is grouped or dilated, which CL cannot write")
    if m.bias is None or m.padding_mode != "zeros":
        raise ValueError(f"conv '{name}' has no bias or pads with {m.padding_mode}; CL has a bias and pads zeros")
    pad = m.padding  # torch keeps kernel_size, stride and padding as tuples, (kH, kW) or (k,)
    if isinstance(pad, str):  # 'valid' or 'same' (torch allows 'same' only at stride 1)
        if pad == "same" and any(k % 2 == 0 for k in m.kernel_size):
            raise ValueError(f"conv '{name}' pads an even kernel 'same', asymmetrically")
        pad = tuple(0 if pad == "valid" else k // 2 for k in m.kernel_size)
    return Token("CL", m.out_channels, m.kernel_size, m.stride, pad)  # Token writes (3, 3) as 3


def _pool_token(name: str, m: nn.Module) -> Token:
    kind = "MP" if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) else "AP"
    dims = 1 if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)) else 2
    if kind == "MP" and _square(m.dilation, "dilation", name) != 1:
        raise ValueError(f"pool '{name}' is dilated, which MP cannot write")
    if kind == "AP" and (not m.count_include_pad or m.divisor_override):
        raise ValueError(f"pool '{name}' averages without the padding, which AP cannot write")
    # a pool keeps kernel_size, stride and padding as given: an int, or (kH, kW) / (k,); no stride: the kernel's
    # ceil mode is written whenever the pool has it, also where it changes nothing at the size written for
    # (AlexNet's 3×3/2 pools at 227×227): at 224×224 it keeps 6×6 maps where floor mode gives 5×5, and the string
    # must rebuild the same model at every input size
    return Token(
        kind, kernel=m.kernel_size, stride=m.stride or m.kernel_size, padding=m.padding, ceil=m.ceil_mode, dims=dims
    )


def _transpose_token(name: str, m: nn.ConvTranspose2d) -> Token:
    geometry = (m.kernel_size, m.stride, m.padding, m.output_padding, m.dilation, m.groups)
    if geometry != ((2, 2), (2, 2), (0, 0), (0, 0), (1, 1), 1) or m.bias is None:
        raise ValueError(f"transposed conv '{name}' is not UT's 2×2 stride-2 window with a bias")
    return Token("UT", m.out_channels)


def _resize_token(name: str, m: nn.Upsample, conv: nn.Module | None) -> Token:
    """UR: a 2× bilinear resize (align_corners False) and the 3×3 'same' conv with a bias right after it."""
    if m.size is not None or m.scale_factor not in (2, 2.0, (2.0, 2.0)) or m.mode != "bilinear" or m.align_corners:
        raise ValueError(f"'{name}' is not UR's 2× bilinear resize (align_corners=False)")
    if not isinstance(conv, nn.Conv2d) or _conv_token(name, conv) != Token("CL", conv.out_channels, 3, 1, 1):
        raise ValueError(f"'{name}' (a resize) is not followed by UR's 3×3 'same' conv")
    return Token("UR", conv.out_channels)


def _pool_sizes(model: nn.Module, input_size: tuple[int, int, int]) -> dict[nn.Module, tuple]:
    """(input H×W, output H×W) of every adaptive pooling module, from one dry run on `input_size`."""
    seen: dict[nn.Module, tuple] = {}
    pools = [m for m in model.modules() if isinstance(m, _ADAPTIVE)]
    hooks = [
        p.register_forward_hook(lambda m, i, o: seen.__setitem__(m, (tuple(i[0].shape[2:]), tuple(o.shape[2:]))))
        for p in pools
    ]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


_POOLS = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
)
_ADAPTIVE = _POOLS[4:]


def to_notation(model: nn.Module, input_size: tuple[int, int, int] | None = None, strict: bool = False) -> str | None:
    """`model` written in the course notation, or None when it is not a plain chain of CL/MP/AP/BN/D/GAP/FC layers.

    `strict=True` raises a ValueError saying why instead of returning None (e.g. a residual block in resnet18).
    `input_size` (C, H, W; default: the model's) decides whether an adaptive pool is a no-op at that size, as
    VGG's 7×7 pool is at 224×224.
    """
    try:
        return format_notation(_tokens_of(model, input_size))
    except ValueError:
        if strict:
            raise
        return None


def _tokens_of(model: nn.Module, input_size: tuple[int, int, int] | None) -> list[Token]:
    leaves = _chain(model)
    # only what the notation does not write: no-op wrappers and the flatten it inserts itself
    leaves = [(n, m) for n, m in leaves if not isinstance(m, (nn.Identity, nn.Flatten))]
    sizes: dict[nn.Module, tuple] = {}
    if any(isinstance(m, _ADAPTIVE) for _, m in leaves):
        sizes = _pool_sizes(model, input_size or tuple(model.default_cfg["input_size"]))
    tokens: list[Token] = []
    i = 0
    while i < len(leaves):
        name, m = leaves[i]
        i += 1
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                tokens.append(_conv_token(name, m))
            elif m.bias is None:
                raise ValueError(f"linear '{name}' has no bias, which FC cannot write")
            else:
                tokens.append(Token("FC", m.out_features))
            if i == len(leaves):
                break
            if isinstance(leaves[i][1], (nn.BatchNorm1d, nn.BatchNorm2d)):
                tokens.append(Token("BN"))
                i += 1
            after = type(leaves[i][1]).__name__ if i < len(leaves) else "nothing"
            if after != "ReLU":
                raise ValueError(f"'{name}' is followed by {after}; the notation puts a ReLU after every CL and FC")
            i += 1
        elif isinstance(m, _POOLS[:4]):
            tokens.append(_pool_token(name, m))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            tokens.append(Token("BN"))
        elif type(m) is nn.Dropout:
            tokens.append(Token("D", rate=m.p))
        elif isinstance(m, (Skip, Concat)):
            tokens.append(Token("SK" if isinstance(m, Skip) else "CC"))
        elif isinstance(m, nn.ConvTranspose2d):
            tokens.append(_transpose_token(name, m))
        elif isinstance(m, nn.Upsample):
            tokens.append(_resize_token(name, m, leaves[i][1] if i < len(leaves) else None))
            i += 1  # its conv
        elif isinstance(m, _ADAPTIVE):
            size_in, size_out = sizes.get(m, (None, None))
            if (
                size_out is not None
                and set(size_out) == {1}
                and isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d))
            ):
                tokens.append(Token("GAP"))
            elif size_in is None or size_in != size_out:  # else a no-op at this size, as VGG's 7×7 pool at 224
                raise ValueError(f"'{name}' pools adaptively to {size_out}, for which the notation has no token")
        else:
            raise ValueError(
                f"'{name}' ({type(m).__name__}) has no token in the notation (CL, MP, AP, BN, D, GAP, FC, UT, UR, SK, CC)"
            )
    last = leaves[-1][1] if leaves else None
    if not (tokens and tokens[-1].kind == "FC" and isinstance(last, nn.Linear)) and not (
        tokens and tokens[-1].kind == "CL" and isinstance(last, (nn.Conv1d, nn.Conv2d))
    ):
        raise ValueError("the model does not end with a classifier: a Linear, or a conv (a class per pixel)")
    return tokens
