"""`cnnlab lab detect`: the grid, the cell that owns each object, and a trained detector's candidates → threshold →
NMS on one generated scene."""

from __future__ import annotations

import pytest
import torch

from cnnlab.lab import run_lesson
from cnnlab.lab.detect import scene_set, shape_objects
from cnnlab.tasks.detect import assign


def test_scene_set_holds_each_scenes_tight_boxes():
    data = scene_set(shape_objects(40), 12, 48, seed=3)
    assert data.kind == "boxes" and data.images.shape == (12, 1, 48, 48)
    real = data.labels[..., 0] >= 0
    assert real.any(1).all() and (real.sum(1) <= 3).all()  # 1–3 objects a scene
    for image, boxes in zip(data.images, data.labels, strict=True):
        for c, x1, y1, x2, y2 in boxes[boxes[:, 0] >= 0].long().tolist():
            assert 0 <= c < 4 and image[0, y1:y2, x1:x2].max() > 0  # the box holds its object's bright pixels


@pytest.mark.slow
def test_detect_steps_from_candidates_to_nms(tmp_path):
    r = run_lesson("detect", quick=True, out=tmp_path, echo=None)
    assert (tmp_path / "lab-detect.png").stat().st_size > 5000
    counts = r["counts"]
    assert counts["candidates"] >= counts["above"] >= counts["kept"]  # each step only removes boxes
    owners = torch.tensor(r["owners"])
    assert owners.shape == (r["grid"] ** 2,) and (owners >= 0).sum() >= 2  # the scene shown holds 2+ objects


def test_detect_owner_is_the_centre_cell():
    # one 8-px object whose centre (20, 12) is in row 1, column 2 of a 6×6 grid over 48 px
    owner = assign(torch.tensor([[[1.0, 16, 8, 24, 16]]]), 6, (48, 48))[0]
    assert (owner >= 0).nonzero().flatten().tolist() == [1 * 6 + 2] and owner[8] == 0
