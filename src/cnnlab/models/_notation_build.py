"""Course-notation tokens → the model they describe (`build`), with the input-size checks."""

from __future__ import annotations

import math

from torch import nn

from cnnlab.layers import get_act, init_weights
from cnnlab.models._base import SequentialClassifier, default_cfg
from cnnlab.models._notation_parse import Token, axes, located, out_sides, parse


def _check_size(text: str, tokens: list[Token], sides: tuple[int, ...]) -> None:
    """Refuse an input size that some token shrinks to nothing, naming that token."""
    for i, tok in enumerate(tokens):
        new = out_sides(sides, tok)
        if min(new) < 1:
            window = "×".join(map(str, axes(tok.kernel, len(sides))))
            raise located(
                text,
                i,
                f"a {'×'.join(map(str, sides))} map is too small for this {window} window "
                "(input too small for this model)",
            )
        sides = new


def _min_sides(tokens: list[Token], sides: tuple[int, ...]) -> tuple[int, ...]:
    """The smallest input every token accepts, axis by axis (an axis' output size depends on that axis' input
    alone and only grows with it); `sides`, an input they accept, bounds the search."""

    def fits(probe: tuple[int, ...]) -> bool:
        for tok in tokens:
            probe = out_sides(probe, tok)
            if min(probe) < 1:
                return False
        return True

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
) -> SequentialClassifier:
    """The model a notation string describes, for `in_chans`×`img_size`×`img_size` inputs and `num_classes` outputs.

    `img_size` may be (H, W) for a non-square input: the flatten before the first FC is sized for it (and a
    rectangular kernel, stride or padding shrinks each side by its own numbers).

    `act`: the nonlinearity after every CL and hidden FC (relu, the notation's; or sigmoid, tanh, … for the
    lectures' vanishing-gradient experiments — such a model has no notation string of its own to write back).
    `dims=1`: a 1-D network for `in_chans`×`img_size` signals (Conv1d, MaxPool1d / AvgPool1d, BatchNorm1d).
    """
    tokens = parse(text, dims)
    sides = (int(img_size),) * dims if isinstance(img_size, (int, float)) else tuple(int(v) for v in img_size)
    if len(sides) != dims:
        raise ValueError(f"img_size {img_size} does not fit a {dims}-D network: give one side or {dims}")
    input_sides = sides
    conv, bn, maxpool, avgpool, gap = (
        (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d)
        if dims == 1
        else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
    )
    _check_size(text, tokens, sides)
    if num_classes < 1:
        raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
    features: list[nn.Module] = []
    classifier: list[nn.Module] = []
    layers = features
    chans = in_chans  # shape of the maps: (chans, *sides); after the flatten: `chans` features
    relu_due = False  # a CL or hidden FC was just added: its ReLU comes next, after a BN written right after it
    for i, tok in enumerate(tokens):
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
            layers.append(conv(chans, tok.size, tok.kernel, tok.stride, tok.padding))
            chans, relu_due = tok.size, True
        elif tok.kind in ("MP", "AP"):
            pool = maxpool if tok.kind == "MP" else avgpool
            layers.append(pool(tok.kernel, tok.stride, tok.padding, ceil_mode=tok.ceil))
        elif tok.kind == "GAP":
            features.append(gap(1))
            layers = classifier
        elif tok.kind == "D":
            layers.append(nn.Dropout(tok.rate))
        elif tok.kind == "FC":
            last = i == len(tokens) - 1
            layers.append(nn.Linear(chans, num_classes if last else tok.size))
            chans, relu_due = tok.size, not last
        sides = out_sides(sides, tok)
    size = (in_chans, *input_sides)
    min_size = (in_chans, *_min_sides(tokens, input_sides))
    cfg = default_cfg(size, f"classifier.{len(classifier) - 1}", min_size, notation=text)
    model = SequentialClassifier(nn.Sequential(*features), nn.Sequential(*classifier), cfg)
    return init_weights(model, "glorot_uniform")
