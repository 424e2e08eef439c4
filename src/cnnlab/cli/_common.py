"""What the verb modules share: a parser whose flags are added on first use, and notes on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable


class VerbParser(argparse.ArgumentParser):
    """A verb's parser; `populate(parser)` adds its flags when it is first used (parsing, help, usage), so that
    building the whole CLI does not import what one verb's flags come from (TrainConfig pulls in torch)."""

    def __init__(self, *args, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ensure_flags(self) -> None:
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_flags()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_flags()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure_flags()
        return super().format_usage()


def print_notes(notes: Iterable[str]) -> None:
    """What the library changed about an input (converted, resized, …), one line each on stderr."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def count(text: str) -> int:
    """argparse `type=` for a count that must be ≥ 1 (--top, --classes, --n): 0 or −1 is refused with the range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


count.__name__ = "count"
