"""The course notation's parser: a string → its tokens (`Token`), with a caret under the first bad token; and
tokens → the string in canonical form. The grammar is in `cnnlab.models.notation`'s docstring."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONV = re.compile(r"CL(\d+)(?:k(\d+))?(?:s(\d+))?(?:p(\d+))?")
_POOL = re.compile(r"(MP|AP)(?:(\d+)|k(\d+)(?:s(\d+))?(?:p(\d+))?)(c?)")
_DROP = re.compile(r"D(\d*\.?\d+)")
_FC = re.compile(r"FC(\d+)")
_TOKENS = "CL<filters>[k<K>][s<S>][p<P>], MP<n>[c], AP<n>[c], MPk<K>[s<S>][p<P>][c], BN, D<rate>, GAP or FC<units>"


@dataclass(frozen=True)
class Token:
    """One layer of the notation: `kind` (CL, MP, AP, BN, D, GAP, FC) and its numbers."""

    kind: str
    size: int = 0  # filters (CL) or units (FC)
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    rate: float = 0.0  # dropout probability (D)
    ceil: bool = False  # MP / AP: round the output size up (torch's ceil_mode), written with a trailing 'c'
    dims: int = 2  # MP<n> / AP<n>: n = kernel ** dims (a 2×2 window divides an image's pixels by 4, a 1-D one by 2)

    def text(self) -> str:
        """The token in canonical form (defaults left out): CL32, CL64k3, MP4, MPk3s2, D0.5, FC10."""
        if self.kind == "CL":
            text = f"CL{self.size}" + (f"k{self.kernel}" if self.kernel != 5 else "")
            text += f"s{self.stride}" if self.stride != 1 else ""
            same = self.kernel // 2 if self.kernel % 2 else None
            return text + (f"p{self.padding}" if self.padding != same else "")
        if self.kind in ("MP", "AP"):
            c = "c" if self.ceil else ""
            if self.stride == self.kernel and self.padding == 0:
                return f"{self.kind}{self.kernel**self.dims}{c}"
            return f"{self.kind}k{self.kernel}s{self.stride}" + (f"p{self.padding}" if self.padding else "") + c
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


def located(text: str, index: int, message: str) -> ValueError:
    """A ValueError that shows `text` with a caret line under token `index`."""
    parts = text.split("-")
    start = sum(len(p) + 1 for p in parts[:index])
    carets = "^" * max(len(parts[index]), 1)
    return ValueError(
        f"invalid model notation, token {index + 1} of {len(parts)}:\n  {text}\n  {' ' * start}{carets} {message}"
    )


def _parse_token(word: str, index: int, dims: int = 2) -> Token:
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
        kind, n, k, s, p, c = m.groups()
        if n is not None and dims == 1:
            if int(n) < 2:
                raise _Bad(index, f"{kind}{n}: a 1-D pool needs a window of 2 or more samples")
            return Token(kind, kernel=int(n), stride=int(n), ceil=bool(c), dims=1)
        if n is not None:
            side = round(int(n) ** 0.5)
            if side < 2 or side * side != int(n):
                raise _Bad(index, f"{kind}{n}: {n} is not a square ≥ 4 (MP4 = 2×2/2, MP9 = 3×3/3; or MPk3s2)")
            return Token(kind, kernel=side, stride=side, ceil=bool(c))
        k = int(k)
        s = k if s is None else int(s)
        if min(k, s) < 1 or 2 * int(p or 0) > k:
            raise _Bad(index, f"'{word}' needs kernel and stride ≥ 1 and padding at most half the kernel")
        return Token(kind, kernel=k, stride=s, padding=int(p or 0), ceil=bool(c), dims=dims)
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
        flat_at = None  # index of the token after which the maps are flattened
        for i, tok in enumerate(tokens):
            if tok.kind in ("CL", "MP", "AP", "GAP") and flat_at is not None:
                raise _Bad(i, f"'{words[i]}' needs feature maps, but they were flattened at '{words[flat_at]}'")
            if tok.kind in ("GAP", "FC") and flat_at is None:
                flat_at = i
        if tokens[-1].kind != "FC":
            raise _Bad(len(tokens) - 1, "the last token must be the classifier, e.g. FC10")
    except _Bad as e:
        raise located(text, e.index, str(e)) from None
    return tokens


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


def out_side(side: int, tok: Token) -> int:
    """Height (or width) after a CL / MP / AP token: ⌊(side + 2p − k) / s⌋ + 1 (rounded up for a ceil-mode pool)."""
    if tok.kind in ("CL", "MP", "AP"):
        return pooled_side(side, tok.kernel, tok.stride, tok.padding, tok.ceil)
    return 1 if tok.kind == "GAP" else side
