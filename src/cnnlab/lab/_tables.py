"""Small numeric arrays as a student sees them on a slide: printed as aligned tables and drawn as coloured grids with
the value in every cell, so the terminal, the figure and the deck can be compared line by line."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def _array(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def cell(value: float, fmt: str = "g") -> str:
    """One number as the tables write it: `fmt` is a format spec ('g', '.2f', '+.0f'), or 't2' for two decimals
    truncated toward zero (7/9 = 0.777… → 0.77, as hand-made slides often show it); −0 prints as 0."""
    if fmt.startswith("t"):
        digits = int(fmt[1:])
        value = np.trunc(value * 10**digits) / 10**digits
        fmt = f".{digits}f"
    return format(float(value) + 0.0, fmt)  # + 0.0 turns −0.0 into 0.0


def terms(values, fmt: str = "g") -> str:
    """Numbers written as a sum, negative terms after the first in parentheses: '−1 + 3 + (−2)'."""
    parts = [cell(v, fmt) for v in values]
    return " + ".join(p if i == 0 or not p.startswith("-") else f"({p})" for i, p in enumerate(parts))


def table(a, fmt: str = "g", indent: str = "  ") -> list[str]:
    """A 2-D array as right-aligned text rows."""
    rows = [[cell(v, fmt) for v in row] for row in _array(a).tolist()]
    width = max(len(c) for row in rows for c in row)
    return [indent + " ".join(c.rjust(width) for c in row) for row in rows]


def side_by_side(blocks: list[tuple[str, list[str]]], gap: int = 4) -> list[str]:
    """Titled blocks of lines printed next to each other (a table beside a table)."""
    width = [max(len(title), *(len(line) for line in lines)) for title, lines in blocks]
    height = max(len(lines) for _, lines in blocks)
    out = [(" " * gap).join(t.ljust(w) for (t, _), w in zip(blocks, width, strict=True)).rstrip()]
    for i in range(height):
        parts = [(lines[i] if i < len(lines) else "").ljust(w) for (_, lines), w in zip(blocks, width, strict=True)]
        out.append((" " * gap).join(parts).rstrip())
    return out


def say_table(say: Callable[[str], None], title: str, a, fmt: str = "g") -> None:
    say(title)
    for line in table(a, fmt):
        say(line)


def draw_numbers(
    ax,
    a,
    title: str = "",
    fmt: str = "g",
    box: tuple[int, int, int, int] | None = None,
    cmap: str = "RdBu_r",
    fontsize: float = 8,
    lim: float | None = None,
) -> None:
    """An array as a coloured grid with its value written in each cell: a diverging map centred on 0 (RdBu_r), or
    a sequential one from 0 to `lim` (e.g. Blues); NaN cells blank. `box` (row, col, height, width) outlines a
    window in green."""
    a = _array(a).astype(float)
    lim = lim or float(np.nanmax(np.abs(a))) or 1.0
    diverging = cmap == "RdBu_r"
    ax.imshow(a, cmap=cmap, vmin=-lim if diverging else 0, vmax=lim)
    for (i, j), v in np.ndenumerate(a):
        if np.isnan(v):
            continue
        dark = (abs(v) if diverging else v) > 0.55 * lim  # the dark end of the map: white digits stay readable
        ax.text(j, i, cell(v, fmt), ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if box is not None:
        from matplotlib.patches import Rectangle

        i, j, h, w = box
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), w, h, fill=False, ec="lime", lw=2.5))
