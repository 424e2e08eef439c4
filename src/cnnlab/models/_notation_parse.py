"""The course notation's parser: a string → its tokens (`Token`), with a caret under the first bad token; and
tokens → the string in canonical form. The grammar is in `cnnlab.models.notation`'s docstring."""

from __future__ import annotations

import re
from dataclasses import dataclass

# a size is one number (a square window) or KHxKW, height first like torch's (kH, kW); [\dx]+ also takes a bad one
# ('3x', 'x3') so that the error can name it
_SIZE = r"([\dx]+)"
_CONV = re.compile(rf"CL(\d+)(?:k{_SIZE})?(?:s{_SIZE})?(?:p{_SIZE})?")
_POOL = re.compile(rf"(MP|AP)(?:{_SIZE}|k{_SIZE}(?:s{_SIZE})?(?:p{_SIZE})?)(c?)")
_DROP = re.compile(r"D(\d*\.?\d+)")
_FC = re.compile(r"FC(\d+)")
_UP = re.compile(r"(UT|UR)(\d+)")
_TOKENS = (
    "CL<filters>[k<K>][s<S>][p<P>], MP<n>[c], AP<n>[c], MPk<K>[s<S>][p<P>][c], BN, D<rate>, GAP, FC<units>, "
    "UT<filters>, UR<filters>, SK or CC (K, S, P: one number or HxW, e.g. k3x5)"
)
MAPS = ("CL", "MP", "AP", "GAP", "UT", "UR", "SK", "CC")  # tokens that need feature maps (none after the flatten)
TWO_D = ("UT", "UR", "SK", "CC")  # image networks only

Size = int | tuple[int, int]  # one side for a square window (and 1-D), or (height, width)


def axes(value: Size, dims: int = 2) -> tuple[int, ...]:
    """`value` along each of `dims` axes: 3 → (3, 3), (3, 5) → (3, 5); 3 → (3,) in 1-D."""
    return value if isinstance(value, tuple) else (value,) * dims


def _short(value: Size | tuple[int, ...] | list[int]) -> Size:
    """A pair with equal sides as one number (the square window the notation writes as one): (3, 3) → 3; torch's
    1-D (k,) → k."""
    if isinstance(value, (tuple, list)):
        return int(value[0]) if len(set(value)) == 1 else (int(value[0]), int(value[1]))
    return int(value)


def _written(value: Size) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


@dataclass(frozen=True)
class Token:
    """One layer of the notation: `kind` (CL, MP, AP, BN, D, GAP, FC, UT, UR, SK, CC) and its numbers.

    `kernel`, `stride` and `padding` are one number for a square window (and in 1-D), else (height, width);
    a pair with equal sides is stored as one number, so that CL8k3x3 and CL8k3 are the same token.
    """

    kind: str
    size: int = 0  # filters (CL, UT, UR) or units (FC)
    kernel: Size = 0
    stride: Size = 0
    padding: Size = 0
    rate: float = 0.0  # dropout probability (D)
    ceil: bool = False  # MP / AP: round the output size up (torch's ceil_mode), written with a trailing 'c'
    dims: int = 2  # MP<n> / AP<n>: n = kernel ** dims (a 2×2 window divides an image's pixels by 4, a 1-D one by 2)

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "padding"):
            object.__setattr__(self, name, _short(getattr(self, name)))

    def text(self) -> str:
        """The token in canonical form (defaults left out): CL32, CL64k3, CL8k3x5, MP4, MPk3s2, MPk3x2, D0.5, FC10."""
        if self.kind == "CL":
            text = f"CL{self.size}" + (f"k{_written(self.kernel)}" if self.kernel != 5 else "")
            text += f"s{_written(self.stride)}" if self.stride != 1 else ""
            return text + (f"p{_written(self.padding)}" if self.padding != same_padding(self.kernel) else "")
        if self.kind in ("MP", "AP"):
            c = "c" if self.ceil else ""
            if self.stride == self.kernel and self.padding == 0:
                if isinstance(self.kernel, int):
                    return f"{self.kind}{self.kernel**self.dims}{c}"
                return f"{self.kind}k{_written(self.kernel)}{c}"  # no MP<n> for a rectangle; the stride is K's
            text = f"{self.kind}k{_written(self.kernel)}s{_written(self.stride)}"
            return text + (f"p{_written(self.padding)}" if self.padding != 0 else "") + c
        if self.kind == "D":
            return f"D{self.rate:g}"
        if self.kind in ("FC", "UT", "UR"):
            return f"{self.kind}{self.size}"
        return self.kind  # BN, GAP, SK, CC


def same_padding(kernel: Size) -> Size | None:
    """The 'same' padding of a conv, K // 2 along each axis; None when a side is even (no symmetric one)."""
    sides = axes(kernel)
    return None if any(k % 2 == 0 for k in sides) else _short(tuple(k // 2 for k in sides))


class _Bad(ValueError):
    """A problem with the token at `index` (raised inside the parser, turned into the caret message)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def located(text: str, index: int, message: str) -> ValueError:
    """A ValueError that shows `text` with a caret line under token `index`."""
    parts = text.split("-")
    start = sum(len(p) + 1 for p in parts[:index])
    carets = "^" * max(len(parts[index]), 1)
    return ValueError(
        f"invalid model notation, token {index + 1} of {len(parts)}:\n  {text}\n  {' ' * start}{carets} {message}"
    )


def _size(text: str | None, word: str, index: int, dims: int) -> Size | None:
    """A size as written in `word` ('3' or '3x5'), None where it is left out."""
    if text is None:
        return None
    parts = text.split("x")
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise _Bad(index, f"'{text}' in '{word}' is not a size: one number, or HxW such as 3x5 (height × width)")
    if len(parts) == 2 and dims == 1:
        raise _Bad(index, f"'{text}' in '{word}': a 1-D network's windows have one side, not height × width")
    return _short(tuple(int(p) for p in parts))


def _parse_token(word: str, index: int, dims: int = 2) -> Token:
    if word in ("BN", "GAP", "SK", "CC"):
        return Token(word)
    if m := _UP.fullmatch(word):
        if int(m.group(2)) < 1:
            raise _Bad(index, f"'{word}' has no filters")
        return Token(m.group(1), int(m.group(2)))
    if m := _CONV.fullmatch(word):
        filters = int(m.group(1))
        k, s, p = (_size(v, word, index, dims) for v in m.groups()[1:])
        k, s = 5 if k is None else k, 1 if s is None else s
        if min(filters, *axes(k), *axes(s)) < 1:
            raise _Bad(index, f"filters, kernel and stride must be ≥ 1 in '{word}'")
        if p is None:
            p = same_padding(k)
            if p is None:
                window = "×".join(map(str, axes(k)))
                raise _Bad(index, f"an even kernel ({window}) has no symmetric 'same' padding: add p, e.g. {word}p0")
        return Token("CL", filters, k, s, p)
    if m := _POOL.fullmatch(word):
        kind, n, k, s, p, c = m.groups()
        if n is not None and "x" in n:
            _size(n, word, index, dims)  # a malformed size, or a 1-D network's, says so
            raise _Bad(index, f"{kind}<n> counts the pixels a window covers (MP4 = 2×2/2); a {n} window is {kind}k{n}")
        if n is not None and dims == 1:
            if int(n) < 2:
                raise _Bad(index, f"{kind}{n}: a 1-D pool needs a window of 2 or more samples")
            return Token(kind, kernel=int(n), stride=int(n), ceil=bool(c), dims=1)
        if n is not None:
            side = round(int(n) ** 0.5)
            if side < 2 or side * side != int(n):
                raise _Bad(index, f"{kind}{n}: {n} is not a square ≥ 4 (MP4 = 2×2/2, MP9 = 3×3/3; or MPk3s2)")
            return Token(kind, kernel=side, stride=side, ceil=bool(c))
        k = _size(k, word, index, dims)
        s = k if s is None else _size(s, word, index, dims)
        p = _size(p, word, index, dims) or 0
        if min(*axes(k), *axes(s)) < 1 or any(2 * pa > ka for ka, pa in zip(axes(k), axes(p), strict=True)):
            raise _Bad(index, f"'{word}' needs kernel and stride ≥ 1 and padding at most half the kernel")
        return Token(kind, kernel=k, stride=s, padding=p, ceil=bool(c), dims=dims)
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


def parse(text: str, dims: int = 2) -> list[Token]:
    """The tokens of a notation string; a ValueError with a caret under the first bad token otherwise.

    `dims` = 1 reads the string as a 1-D network (Conv1d, MaxPool1d): ``MP<n>`` is then a window of n samples.
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (signals) or 2 (images), got {dims}")
    words = text.split("-")
    try:
        tokens = [_parse_token(w, i, dims) for i, w in enumerate(words)]
        _check_order(tokens, words, dims)
    except _Bad as e:
        raise located(text, e.index, str(e)) from None
    return tokens


def _check_order(tokens: list[Token], words: list[str], dims: int) -> None:
    """Where each token may stand: maps before the flatten, every SK joined by one CC later (a stack: the last map
    kept is the first joined), a classifier at the end (FC, or CL for a class per pixel)."""
    flat_at = None  # index of the token after which the maps are flattened
    kept: list[int] = []  # the SK tokens not joined yet
    for i, tok in enumerate(tokens):
        if tok.kind in TWO_D and dims == 1:
            raise _Bad(i, f"'{words[i]}': upsampling and skip connections (UT, UR, SK, CC) are for images, not 1-D")
        if tok.kind in MAPS and flat_at is not None:
            raise _Bad(i, f"'{words[i]}' needs feature maps, but they were flattened at '{words[flat_at]}'")
        if tok.kind in ("GAP", "FC") and flat_at is None:
            flat_at = i
        if tok.kind == "SK":
            kept.append(i)
        elif tok.kind == "CC" and not kept:
            raise _Bad(i, "CC joins the map an earlier SK kept, and no SK before it is left to join")
        elif tok.kind == "CC":
            kept.pop()
    if kept:
        raise _Bad(kept[-1], "the map this SK keeps is never joined: add a CC where the way up is back at its size")
    if tokens[-1].kind not in ("FC", "CL"):
        raise _Bad(
            len(tokens) - 1,
            "the last token must be the classifier: FC<classes> (one label per image, e.g. FC10) or CL<classes> "
            "(a class per pixel, e.g. CL11k1)",
        )


def format_notation(tokens: list[Token]) -> str:
    """Tokens back to a string, in canonical form."""
    return "-".join(t.text() for t in tokens)


def is_token(word: str) -> bool:
    """Whether `word` is one valid token of the notation."""
    try:
        _parse_token(word, 0)
    except _Bad:
        return False
    return True


def pooled_side(side: int, kernel: int, stride: int, padding: int = 0, ceil: bool = False) -> int:
    """torch's output side of a window: ⌊(side + 2p − k) / s⌋ + 1, or with ceil mode ⌈(side + 2p − k) / s⌉ + 1
    less the last window when it would start in the right padding (7 → 4 for a 2×2/2 pool)."""
    span = side + 2 * padding - kernel
    if not ceil or span < 0:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= side + padding else out


def out_sides(sides: tuple[int, ...], tok: Token) -> tuple[int, ...]:
    """The map's sides (H, W; or L) after a token: ⌊(n + 2p − k) / s⌋ + 1 along each axis with that axis' kernel,
    stride and padding for a CL / MP / AP (rounded up for a ceil-mode pool); 1 after GAP; twice as many after UT and
    UR."""
    if tok.kind in ("UT", "UR"):
        return tuple(2 * n for n in sides)
    if tok.kind in ("CL", "MP", "AP"):
        per_axis = (axes(v, len(sides)) for v in (tok.kernel, tok.stride, tok.padding))
        return tuple(pooled_side(n, k, s, p, tok.ceil) for n, k, s, p in zip(sides, *per_axis, strict=True))
    return (1,) * len(sides) if tok.kind == "GAP" else sides
