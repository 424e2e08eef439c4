"""The check the notation tests share: a bad string's error names its token and points at it with carets."""

from __future__ import annotations

import pytest

from cnnlab.models import create_model


def assert_points_at_token(text: str, index: int, message: str) -> None:
    """`create_model(text)` fails with 'token index+1 of …', the string, and carets under token `index` + `message`."""
    with pytest.raises(ValueError) as err:
        create_model(text)
    lines = str(err.value).splitlines()
    assert f"token {index + 1} of" in lines[0] and lines[1].strip() == text and message in lines[2]
    start = lines[1].index(text) + sum(len(w) + 1 for w in text.split("-")[:index])
    assert lines[2].index("^") == start and lines[2].count("^") == len(text.split("-")[index])
