"""The course's compact notation for plain CNNs: LeNet-5 is ``CL32-MP4-CL64-MP4-FC512-FC10``.

Grammar: tokens separated by ``-``; layer letters upper case, option letters lower case.

=================================  =====================================================================
``CL<filters>[k<K>][s<S>][p<P>]``  convolution, then ReLU. Defaults: 5×5 kernel, stride 1, "same" padding
                                   (P = K // 2, which keeps H×W at stride 1 and gives ⌈H/S⌉ at stride S);
                                   an even kernel needs an explicit ``p``. ``CL32k3``, ``CL96k11s4p0``.
``MP<n>`` / ``AP<n>``              max / average pooling that divides the number of pixels by n = m²
                                   (m ≥ 2): an m×m window with stride m. MP4 = 2×2/2, MP9 = 3×3/3.
``MPk<K>[s<S>][p<P>]`` (``AP…``)   any other window, e.g. AlexNet's overlapping 3×3/2 pool ``MPk3s2``
                                   (stride defaults to K, padding to 0).
``BN``                             batch norm. Right after a CL or a hidden FC it goes between that layer
                                   and its ReLU (conv → BN → ReLU, as in VGG-BN); elsewhere it stays where
                                   it is written (BatchNorm2d before the flatten, BatchNorm1d after).
``D<rate>``                        dropout with drop probability 0 ≤ rate < 1: ``D0.5``.
``GAP``                            global average pooling, C×H×W → C×1×1.
``FC<units>``                      fully connected, then ReLU (except the last FC).
=================================  =====================================================================

Rules. ReLU follows every CL and every hidden FC. The feature maps are flattened once: right after GAP, or else
right before the first FC; no CL, MP, AP or GAP may come after that point. The string ends with an FC, the
classifier, and the model's ``num_classes`` replaces the size written there: ``create_model("CL32-FC10",
num_classes=5)`` has 5 outputs and `to_notation` writes it back as ``CL32-FC5``. (That way a model whose classifier
was reset to 3 classes is rebuilt from its file by the same name.) Conv and FC layers have biases; weights are
Glorot-uniform, Keras' default, as in the course code. Modules are named like torchvision's VGG: ``features.N``
up to the flatten, ``classifier.N`` after it.

For a 28×28×1 input, `COURSE_LENET5` has 7·7·64 = 3,136 features before FC512 and 1,663,370 parameters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.layers import init_weights
from cnnlab.models._base import SequentialClassifier, default_cfg
from cnnlab.models._registry import register_resolver

COURSE_LENET5 = "CL32-MP4-CL64-MP4-FC512-FC10"  # the course's "LeNet-5" for 28×28 Fashion-MNIST

_CONV = re.compile(r"CL(\d+)(?:k(\d+))?(?:s(\d+))?(?:p(\d+))?")
_POOL = re.compile(r"(MP|AP)(?:(\d+)|k(\d+)(?:s(\d+))?(?:p(\d+))?)")
_DROP = re.compile(r"D(\d*\.?\d+)")
_FC = re.compile(r"FC(\d+)")
_TOKENS = "CL<filters>[k<K>][s<S>][p<P>], MP<n>, AP<n>, MPk<K>[s<S>], BN, D<rate>, GAP or FC<units>"


@dataclass(frozen=True)
class Token:
    """One layer of the notation: `kind` (CL, MP, AP, BN, D, GAP, FC) and its numbers."""

    kind: str
    size: int = 0  # filters (CL) or units (FC)
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    rate: float = 0.0  # dropout probability (D)

    def text(self) -> str:
        """The token in canonical form (defaults left out): CL32, CL64k3, MP4, MPk3s2, D0.5, FC10."""
        if self.kind == "CL":
            text = f"CL{self.size}" + (f"k{self.kernel}" if self.kernel != 5 else "")
            text += f"s{self.stride}" if self.stride != 1 else ""
            same = self.kernel // 2 if self.kernel % 2 else None
            return text + (f"p{self.padding}" if self.padding != same else "")
        if self.kind in ("MP", "AP"):
            if self.stride == self.kernel and self.padding == 0:
                return f"{self.kind}{self.kernel**2}"
            return f"{self.kind}k{self.kernel}s{self.stride}" + (f"p{self.padding}" if self.padding else "")
        if self.kind == "D":
            return f"D{self.rate:g}"
        if self.kind == "FC":
            return f"FC{self.size}"
        return self.kind  # BN, GAP


class _Bad(ValueError):
    """A problem with the token at `index` (raised inside the parser, turned into the caret message)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def _located(text: str, index: int, message: str) -> ValueError:
    """A ValueError that shows `text` with a caret line under token `index`."""
    parts = text.split("-")
    start = sum(len(p) + 1 for p in parts[:index])
    carets = "^" * max(len(parts[index]), 1)
    return ValueError(
        f"invalid model notation, token {index + 1} of {len(parts)}:\n  {text}\n  {' ' * start}{carets} {message}"
    )


def _parse_token(word: str, index: int) -> Token:
    if word in ("BN", "GAP"):
        return Token(word)
    if m := _CONV.fullmatch(word):
        filters, k, s, p = (int(v) if v is not None else None for v in m.groups())
        k, s = 5 if k is None else k, 1 if s is None else s
        if p is None:
            if k % 2 == 0:
                raise _Bad(index, f"an even kernel ({k}×{k}) has no symmetric 'same' padding: add p, e.g. {word}p0")
            p = k // 2
        if min(filters, k, s) < 1:
            raise _Bad(index, f"filters, kernel and stride must be ≥ 1 in '{word}'")
        return Token("CL", filters, k, s, p)
    if m := _POOL.fullmatch(word):
        kind, n, k, s, p = m.groups()
        if n is not None:
            side = round(int(n) ** 0.5)
            if side < 2 or side * side != int(n):
                raise _Bad(index, f"{kind}{n}: {n} is not a square ≥ 4 (MP4 = 2×2/2, MP9 = 3×3/3; or MPk3s2)")
            return Token(kind, kernel=side, stride=side)
        k = int(k)
        s = k if s is None else int(s)
        if min(k, s) < 1 or 2 * int(p or 0) > k:
            raise _Bad(index, f"'{word}' needs kernel and stride ≥ 1 and padding at most half the kernel")
        return Token(kind, kernel=k, stride=s, padding=int(p or 0))
    if m := _DROP.fullmatch(word):
        rate = float(m.group(1))
        if rate >= 1:
            raise _Bad(index, f"dropout rate {rate:g} must be below 1 (the probability of dropping a unit)")
        return Token("D", rate=rate)
    if m := _FC.fullmatch(word):
        if int(m.group(1)) < 1:
            raise _Bad(index, f"'{word}' has no units")
        return Token("FC", int(m.group(1)))
    if word == "":
        raise _Bad(index, "empty token (two '-' in a row, or one at an end)")
    raise _Bad(index, f"unknown token '{word}'; expected {_TOKENS}")


def parse(text: str) -> list[Token]:
    """The tokens of a notation string; a ValueError with a caret under the first bad token otherwise."""
    words = text.split("-")
    try:
        tokens = [_parse_token(w, i) for i, w in enumerate(words)]
        flat_at = None  # index of the token after which the maps are flattened
        for i, tok in enumerate(tokens):
            if tok.kind in ("CL", "MP", "AP", "GAP") and flat_at is not None:
                raise _Bad(i, f"'{words[i]}' needs feature maps, but they were flattened at '{words[flat_at]}'")
            if tok.kind in ("GAP", "FC") and flat_at is None:
                flat_at = i
        if tokens[-1].kind != "FC":
            raise _Bad(len(tokens) - 1, "the last token must be the classifier, e.g. FC10")
    except _Bad as e:
        raise _located(text, e.index, str(e)) from None
    return tokens


def format_notation(tokens: list[Token]) -> str:
    """Tokens back to a string, in canonical form."""
    return "-".join(t.text() for t in tokens)


def _out_side(side: int, tok: Token) -> int:
    """Height (or width) after a CL / MP / AP token: ⌊(side + 2p − k) / s⌋ + 1 (floor mode, as in torch)."""
    if tok.kind in ("CL", "MP", "AP"):
        return (side + 2 * tok.padding - tok.kernel) // tok.stride + 1
    return 1 if tok.kind == "GAP" else side


def _check_size(text: str, tokens: list[Token], side: int) -> None:
    """Refuse an input side length that some token shrinks to nothing, naming that token."""
    for i, tok in enumerate(tokens):
        new = _out_side(side, tok)
        if new < 1:
            raise _located(text, i, f"a {side}×{side} map is too small for this {tok.kernel}×{tok.kernel} window "
                                    "(input too small for this model)")  # fmt: skip
        side = new


def _min_side(tokens: list[Token], img_size: int) -> int:
    """The smallest square input side length every token accepts (output sizes only grow with the input)."""
    for side in range(1, img_size + 1):
        s = side
        for tok in tokens:
            s = _out_side(s, tok)
            if s < 1:
                break
        else:
            return side
    return img_size


def build(text: str, num_classes: int = 10, in_chans: int = 1, img_size: int = 28) -> SequentialClassifier:
    """The model a notation string describes, for `in_chans`×`img_size`×`img_size` inputs and `num_classes` outputs."""
    tokens = parse(text)
    _check_size(text, tokens, img_size)
    if num_classes < 1:
        raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
    features: list[nn.Module] = []
    classifier: list[nn.Module] = []
    layers = features
    chans, side = in_chans, img_size  # shape of the maps (C, side, side); after the flatten: `chans` features
    relu_due = False  # a CL or hidden FC was just added: its ReLU comes next, after a BN written right after it
    for i, tok in enumerate(tokens):
        if relu_due and tok.kind != "BN":
            layers.append(nn.ReLU(inplace=True))
        if tok.kind == "BN":
            layers.append(nn.BatchNorm2d(chans) if layers is features else nn.BatchNorm1d(chans))
            if relu_due:
                layers.append(nn.ReLU(inplace=True))
        relu_due = False
        if tok.kind == "FC" and layers is features:
            layers, chans = classifier, chans * side * side  # flatten: (B, C, H, W) -> (B, C*H*W)
        if tok.kind == "CL":
            layers.append(nn.Conv2d(chans, tok.size, tok.kernel, tok.stride, tok.padding))
            chans, relu_due = tok.size, True
        elif tok.kind in ("MP", "AP"):
            pool = nn.MaxPool2d if tok.kind == "MP" else nn.AvgPool2d
            layers.append(pool(tok.kernel, tok.stride, tok.padding))
        elif tok.kind == "GAP":
            features.append(nn.AdaptiveAvgPool2d(1))
            layers = classifier
        elif tok.kind == "D":
            layers.append(nn.Dropout(tok.rate))
        elif tok.kind == "FC":
            last = i == len(tokens) - 1
            layers.append(nn.Linear(chans, num_classes if last else tok.size))
            chans, relu_due = tok.size, not last
        side = _out_side(side, tok)
    size = (in_chans, img_size, img_size)
    min_side = _min_side(tokens, img_size)
    cfg = default_cfg(size, f"classifier.{len(classifier) - 1}", (in_chans, min_side, min_side), notation=text)
    model = SequentialClassifier(nn.Sequential(*features), nn.Sequential(*classifier), cfg)
    return init_weights(model, "glorot_uniform")


@register_resolver
def resolve_notation(name: str) -> Callable[..., nn.Module] | None:
    """A constructor for `name` when it is written in the course notation (any of its tokens is one), else None.

    A name with some valid tokens and some bad ones is claimed, so its error points at the bad token.
    """
    if "/" in name or "\\" in name or name.endswith(".safetensors"):  # a path: not a name at all
        return None
    if not any(_is_token(w) for w in name.split("-")):
        return None
    parse(name)  # a ValueError with a caret line for a bad string, before any model is built
    return functools.partial(_construct, name)


def _is_token(word: str) -> bool:
    try:
        _parse_token(word, 0)
    except _Bad:
        return False
    return True


def _construct(text: str, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, **kwargs) -> nn.Module:
    if kwargs:
        raise ValueError(f"a course-notation model takes no argument {', '.join(map(repr, kwargs))}: the string is "
                         "the whole architecture (options: num_classes, in_chans, img_size)")  # fmt: skip
    return build(text, num_classes, in_chans, img_size)


# ----------------------------------------------------------------------------------------------- model → notation


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules of `model` in the order they run, when it is a plain chain; ValueError saying why not."""
    if isinstance(model, SequentialClassifier):
        overridden = [f for f in ("forward", "forward_features", "forward_head")
                      if getattr(type(model), f) is not getattr(SequentialClassifier, f)]  # fmt: skip
        if overridden:
            raise ValueError(f"{type(model).__name__} has its own {overridden[0]}(), not a plain chain of layers")
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
    if type(model).forward is nn.Sequential.forward:
        return _leaves(model, "")
    raise ValueError(f"{type(model).__name__} is not a plain chain of layers (it has its own forward())")


def _leaves(seq: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    out = []
    for name, child in seq.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if not list(child.children()):
            out.append((full, child))
        elif isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward:
            out += _leaves(child, full)
        else:
            raise ValueError(f"'{full}' ({type(child).__name__}) has its own forward(): a residual or branching "
                             "block, which the notation (a plain chain of layers) cannot write")  # fmt: skip
    return out


def _square(value, what: str, name: str) -> int:
    pair = value if isinstance(value, tuple) else (value, value)
    if pair[0] != pair[1]:
        raise ValueError(f"'{name}' has a non-square {what} {pair[0]}×{pair[1]}")
    return int(pair[0])


def _conv_token(name: str, m: nn.Conv2d) -> Token:
    if m.groups != 1 or _square(m.dilation, "dilation", name) != 1:
        raise ValueError(f"conv '{name}' is grouped or dilated, which CL cannot write")
    if m.bias is None or m.padding_mode != "zeros":
        raise ValueError(f"conv '{name}' has no bias or pads with {m.padding_mode}; CL has a bias and pads zeros")
    k, s = _square(m.kernel_size, "kernel", name), _square(m.stride, "stride", name)
    pad = m.padding
    if isinstance(pad, str):  # 'valid' or 'same' (torch allows 'same' only at stride 1)
        if pad == "same" and k % 2 == 0:
            raise ValueError(f"conv '{name}' pads an even kernel 'same', asymmetrically")
        pad = 0 if pad == "valid" else k // 2
    return Token("CL", m.out_channels, k, s, _square(pad, "padding", name))


def _pool_token(name: str, m: nn.Module, sizes: tuple | None) -> Token:
    kind = "MP" if isinstance(m, nn.MaxPool2d) else "AP"
    if kind == "MP" and _square(m.dilation, "dilation", name) != 1:
        raise ValueError(f"pool '{name}' is dilated, which MP cannot write")
    if kind == "AP" and (not m.count_include_pad or m.divisor_override):
        raise ValueError(f"pool '{name}' averages without the padding, which AP cannot write")
    k = _square(m.kernel_size, "kernel", name)
    s = k if m.stride is None else _square(m.stride, "stride", name)
    tok = Token(kind, kernel=k, stride=s, padding=_square(m.padding, "padding", name))
    # ceil_mode changes nothing when the window fits the map exactly (AlexNet's pools at 227×227)
    if m.ceil_mode and (sizes is None or _out_side(sizes[0][0], tok) != sizes[1][0]):
        raise ValueError(f"pool '{name}' rounds its output size up (ceil_mode) at this input size; MP rounds down")
    return tok


def _pool_sizes(model: nn.Module, input_size: tuple[int, int, int]) -> dict[nn.Module, tuple]:
    """(input H×W, output H×W) of every pooling module, from one dry run on `input_size`."""
    seen: dict[nn.Module, tuple] = {}
    pools = [m for m in model.modules() if isinstance(m, _POOLS)]
    hooks = [p.register_forward_hook(lambda m, i, o: seen.__setitem__(m, (tuple(i[0].shape[-2:]), tuple(o.shape[-2:]))))
             for p in pools]  # fmt: skip
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


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
    if any(isinstance(m, _POOLS[2:]) or getattr(m, "ceil_mode", False) for _, m in leaves):
        sizes = _pool_sizes(model, input_size or tuple(model.default_cfg["input_size"]))
    tokens: list[Token] = []
    i = 0
    while i < len(leaves):
        name, m = leaves[i]
        i += 1
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if isinstance(m, nn.Conv2d):
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
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            tokens.append(_pool_token(name, m, sizes.get(m)))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            tokens.append(Token("BN"))
        elif type(m) is nn.Dropout:
            tokens.append(Token("D", rate=m.p))
        elif isinstance(m, _POOLS[2:]):
            size_in, size_out = sizes.get(m, (None, None))
            if size_out == (1, 1) and isinstance(m, nn.AdaptiveAvgPool2d):
                tokens.append(Token("GAP"))
            elif size_in is None or size_in != size_out:  # else a no-op at this size, as VGG's 7×7 pool at 224
                raise ValueError(f"'{name}' pools adaptively to {size_out}, for which the notation has no token")
        else:
            raise ValueError(f"'{name}' ({type(m).__name__}) has no token in the notation (CL, MP, AP, BN, D, GAP, FC)")
    if not tokens or tokens[-1].kind != "FC" or not isinstance(leaves[-1][1], nn.Linear):
        raise ValueError("the model does not end with a Linear classifier")
    return tokens
