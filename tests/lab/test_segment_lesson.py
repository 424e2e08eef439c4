"""`cnnlab lab segment`: U-Nets in one line with and without skips, UT and UR; boundary pixels on a hand-worked
mask; the quick run's table and figure."""

from __future__ import annotations

import pytest
import torch

from cnnlab.lab import run_lesson
from cnnlab.lab.segment import VARIANTS, boundary, unet
from cnnlab.models import create_model
from cnnlab.models.notation import UNET_EXAMPLE


def test_segment_boundary_pixels_are_within_two_of_a_class_change():
    mask = torch.zeros(1, 14, 14, dtype=torch.uint8)
    mask[0, 3:9, 3:9] = 1  # a 6×6 square
    want = torch.zeros(14, 14, dtype=torch.bool)
    want[1:11, 1:11] = True  # up to 2 px outside the square (a 5×5 window reaches it) …
    want[5:7, 5:7] = False  # … and inside it, but for the 2×2 centre, 3 px from the outside
    assert torch.equal(boundary(mask)[0], want)


def test_segment_variants_are_one_line_each():
    assert unet(16, 11, "UT", True) == UNET_EXAMPLE  # the notation's worked example
    for up, skips in VARIANTS.values():
        text = unet(8, 5, up, skips)
        assert (("-SK" in text) == skips) and text.count(f"-{up}") == 2
        assert create_model(text, num_classes=5, img_size=32)(torch.zeros(1, 1, 32, 32)).shape == (1, 5, 32, 32)


@pytest.mark.slow
def test_segment_quick_prints_the_table_and_writes_the_figure(tmp_path):
    lines = []
    r = run_lesson("segment", quick=True, out=tmp_path, echo=lines.append)
    assert (tmp_path / "lab-segment.png").stat().st_size > 5000
    header = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    assert lines[header].split() == [
        *("variant", "params", "pixel", "acc", "mIoU", "boundary", "acc", "outline", "interior", "acc")
    ]
    assert [line[:14].strip() for line in lines[header + 1 : header + 5]] == list(VARIANTS)
    for name, row in r["variants"].items():
        assert row["notation"] == unet(8, 5, *VARIANTS[name])
        assert all(0 <= row[k] <= 1 for k in ("accuracy", "miou", "boundary", "outline", "interior"))
    assert 0 < r["boundary_share"] < 1
