"""Course-notation tokens → the model they describe (`build`), with the input-size checks."""

from __future__ import annotations

import math

from torch import nn

from cnnlab.layers import get_act, init_weights
from cnnlab.models._base import SequentialClassifier, default_cfg
from cnnlab.models._notation_parse import Token, axes, located, out_sides, parse
from cnnlab.models._notation_skip import Concat, PixelClassifier, Skip, chain


def _problem(tokens: list[Token], sides: tuple[int, ...]) -> tuple[int, str] | None:
    """(index, message) of the first token that cannot take the map it gets from an input of `sides` (a window
    larger than the map, a CC whose kept map has another size), or None when every token fits."""
    kept: list[tuple[int, tuple[int, ...]]] = []  # (SK index, the sides it kept)
    for i, tok in enumerate(tokens):
        new = out_sides(sides, tok)
        if min(new) < 1:
            window = "×".join(map(str, axes(tok.kernel, len(sides))))
            here = "×".join(map(str, sides))
            return i, f"a {here} map is too small for this {window} window (input too small for this model)"
        if tok.kind == "SK":
            kept.append((i, sides))
        elif tok.kind == "CC":
            j, there = kept.pop()
            if there != sides:
                return i, _mismatch(tokens[:i], j, there, sides)
        sides = new
    return None


def _mismatch(before: list[Token], j: int, there: tuple[int, ...], here: tuple[int, ...]) -> str:
    """Why a CC's map and its SK's differ, and what input size would make them match."""
    shown = ("×".join(map(str, s)) for s in (there, here))
    text = "the map SK (token {}) kept is {}, this one is {}: ".format(j + 1, *shown)
    if any(h > t for h, t in zip(here, there, strict=True)):
        return text + "the way up doubles the map more often than the way down halved it since that SK"
    # every stride on the way divides an input side that is a multiple of their product without rounding
    step = math.prod(axes(t.stride, len(here))[0] for t in before if t.kind in ("CL", "MP", "AP"))
    return text + f"a pool or stride rounded an odd side down; take inputs whose sides are multiples of {step}"


def _check_size(text: str, tokens: list[Token], sides: tuple[int, ...]) -> None:
    """Refuse an input size that some token cannot take (see `_problem`), naming that token."""
    problem = _problem(tokens, sides)
    if problem is not None:
        raise located(text, *problem)


def _min_sides(tokens: list[Token], sides: tuple[int, ...]) -> tuple[int, ...]:
    """The smallest input every token accepts, axis by axis (an axis' output size depends on that axis' input
    alone and, without skip connections, only grows with it); `sides`, an input they accept, bounds the search."""

    def fits(probe: tuple[int, ...]) -> bool:
        return _problem(tokens, probe) is None

    return tuple(
        next((n for n in range(1, limit + 1) if fits((*sides[:axis], n, *sides[axis + 1 :]))), limit)
        for axis, limit in enumerate(sides)
    )


def build(
    text: str,
    num_classes: int = 10,
    in_chans: int = 1,
    img_size: int | tuple[int, int] = 28,
    act: str = "relu",
    dims: int = 2,
) -> SequentialClassifier | PixelClassifier:
    """The model a notation string describes, for `in_chans`×`img_size`×`img_size` inputs and `num_classes` outputs.

    `img_size` may be (H, W) for a non-square input: the flatten before the first FC is sized for it (and a
    rectangular kernel, stride or padding shrinks each side by its own numbers).

    `act`: the nonlinearity after every CL and hidden FC (relu, the notation's; or sigmoid, tanh, … for the
    lectures' vanishing-gradient experiments — such a model has no notation string of its own to write back).
    `dims=1`: a 1-D network for `in_chans`×`img_size` signals (Conv1d, MaxPool1d / AvgPool1d, BatchNorm1d).
    A string that ends with a CL is a `PixelClassifier` (class logits per pixel); one that ends with an FC a
    `SequentialClassifier`.
    """
    tokens = parse(text, dims)
    sides = (int(img_size),) * dims if isinstance(img_size, (int, float)) else tuple(int(v) for v in img_size)
    if len(sides) != dims:
        raise ValueError(f"img_size {img_size} does not fit a {dims}-D network: give one side or {dims}")
    _check_size(text, tokens, sides)
    if num_classes < 1:
        raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
    features, classifier = _layers(tokens, num_classes, in_chans, sides, act, dims)
    size = (in_chans, *sides)
    min_size = (in_chans, *_min_sides(tokens, sides))
    if tokens[-1].kind == "CL":  # a class per pixel: the last conv is the classifier
        cfg = default_cfg(size, "classifier", min_size, notation=text, per_pixel=True)
        model = PixelClassifier(chain(features[:-1]), features[-1], cfg)
    else:
        cfg = default_cfg(size, f"classifier.{len(classifier) - 1}", min_size, notation=text)
        model = SequentialClassifier(chain(features), nn.Sequential(*classifier), cfg)
    init_weights(model, "glorot_uniform")
    for m in model.modules():  # init_weights leaves transposed convs at torch's default: Glorot as every conv
        if isinstance(m, nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _layers(
    tokens: list[Token], num_classes: int, chans: int, sides: tuple[int, ...], act: str, dims: int
) -> tuple[list[nn.Module], list[nn.Module]]:
    """The modules of `tokens`: (features, up to the flatten; classifier, after it). `chans` is the input's."""
    conv, bn, maxpool, avgpool, gap = (
        (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d)
        if dims == 1
        else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
    )
    features: list[nn.Module] = []
    classifier: list[nn.Module] = []
    layers = features
    kept: list[int] = []  # channels of the maps SK kept, not joined yet
    relu_due = False  # a CL or hidden FC was just added: its ReLU comes next, after a BN written right after it
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if relu_due and tok.kind != "BN":
            layers.append(get_act(act))
        if tok.kind == "BN":
            layers.append(bn(chans) if layers is features else nn.BatchNorm1d(chans))
            if relu_due:
                layers.append(get_act(act))
        relu_due = False
        if tok.kind == "FC" and layers is features:
            layers, chans = classifier, chans * math.prod(sides)  # flatten: (B, C, H, W) -> (B, C*H*W)
        if tok.kind == "CL":
            layers.append(conv(chans, num_classes if last else tok.size, tok.kernel, tok.stride, tok.padding))
            chans, relu_due = tok.size, not last
        elif tok.kind in ("MP", "AP"):
            pool = maxpool if tok.kind == "MP" else avgpool
            layers.append(pool(tok.kernel, tok.stride, tok.padding, ceil_mode=tok.ceil))
        elif tok.kind == "GAP":
            features.append(gap(1))
            layers = classifier
        elif tok.kind == "D":
            layers.append(nn.Dropout(tok.rate))
        elif tok.kind == "FC":
            layers.append(nn.Linear(chans, num_classes if last else tok.size))
            chans, relu_due = tok.size, not last
        elif tok.kind == "UT":  # U-Net's "up-conv 2×2": learnt, no nonlinearity of its own
            layers.append(nn.ConvTranspose2d(chans, tok.size, 2, stride=2))
            chans = tok.size
        elif tok.kind == "UR":  # resize then a 3×3 conv: no checkerboard pattern (Odena et al., 2016)
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(chans, tok.size, 3, padding=1),
            ]
            chans = tok.size
        elif tok.kind == "SK":
            layers.append(Skip())
            kept.append(chans)
        elif tok.kind == "CC":
            layers.append(Concat())
            chans += kept.pop()  # (B, C, H, W) ⊕ (B, C', H, W) -> (B, C + C', H, W)
        sides = out_sides(sides, tok)
    return features, classifier
