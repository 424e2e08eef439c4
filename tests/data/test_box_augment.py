"""Augmentation moves boxes and masks with the pixels: each moved box still holds the moved object's pixels (checked
against the pixels themselves), masks follow nearest-neighbour, and classification's draws are unchanged."""

import pytest
import torch

from cnnlab.data.augment import Augment

SIZE = 40


def _scene(b=32, seed=0):
    """b images, each one bright rectangle at a random place; its box (B, 5) and its mask (B, H, W)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(b, 1, SIZE, SIZE, dtype=torch.uint8)
    boxes = torch.zeros(b, 5)
    masks = torch.zeros(b, SIZE, SIZE, dtype=torch.uint8)
    for i in range(b):
        h, w = (int(v) for v in torch.randint(6, 16, (2,), generator=g))
        top, left = (
            int(torch.randint(4, SIZE - h - 4, (1,), generator=g)),
            int(torch.randint(4, SIZE - w - 4, (1,), generator=g)),
        )
        images[i, 0, top : top + h, left : left + w] = 200
        masks[i, top : top + h, left : left + w] = i % 3 + 1
        boxes[i] = torch.tensor([i % 3, left, top, left + w, top + h])
    return images, boxes, masks


def _pixel_box(image, level):
    """Tight box (x1, y1, x2, y2) of the pixels above `level`."""
    rows, cols = torch.nonzero(image[0] > level, as_tuple=True)
    return torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize(
    ("spec", "slack"),
    [("flip=1", 0.0), ("translate=6", 0.0), ("flip,translate=4", 0.0), ("scale=0.3", 1.5), ("rotate=30", 1.5)],
)
def test_a_moved_box_holds_the_moved_object(spec, slack):
    # flips and whole-pixel shifts move pixels exactly; bilinear resampling (scale, rotate) spreads an edge by less
    # than a pixel, and a touched pixel's cell reaches half a pixel past its centre: `slack` pixels
    images, boxes, _ = _scene()
    x, moved = Augment(spec, seed=3).transform(images, boxes.clone(), "box")
    assert moved.shape == boxes.shape and torch.equal(moved[:, 0], boxes[:, 0])
    for img, box in zip(x, moved, strict=True):
        found = _pixel_box(img, 0)  # every pixel the object touched, bilinear bleed included
        x1, y1, x2, y2 = box[1:].tolist()
        assert found[0] >= x1 - slack and found[1] >= y1 - slack, (spec, found, box)
        assert found[2] <= x2 + slack and found[3] <= y2 + slack, (spec, found, box)
        if "rotate" not in spec:  # and is no bigger than the object (a rotated box is the box of its corners)
            assert (found - box[1:]).abs().max() <= 1 + slack, (spec, found, box)


def test_rotating_by_90_degrees_gives_the_tight_box():
    images, boxes, _ = _scene(b=8)
    aug = Augment("rotate=90", seed=0)
    aug._rand = lambda n: torch.ones(n)  # always the largest angle: +90°
    x, moved = aug.transform(images, boxes.clone(), "box")
    for img, box in zip(x, moved, strict=True):
        assert (_pixel_box(img, 100) - box[1:]).abs().max() <= 1


def test_boxes_that_leave_the_image_are_clipped_and_several_boxes_become_padding():
    images, boxes, _ = _scene(b=16)
    several = torch.stack([boxes, torch.tensor([-1.0, 0, 0, 0, 0]).expand(16, 5)], 1)  # (B, 2, 5), one padding row
    x, moved = Augment("translate=20", seed=1).transform(images, several, "boxes")
    assert (moved[:, 1] == torch.tensor([-1.0, 0, 0, 0, 0])).all()  # padding never moves
    for img, row in zip(x, moved[:, 0], strict=True):
        if row[0] < 0:  # it left the image: no pixel of it is left either
            assert img.max() == 0
        else:
            assert 0 <= row[1] < row[3] <= SIZE and 0 <= row[2] < row[4] <= SIZE
            assert (_pixel_box(img, 0) - row[1:]).abs().max() == 0


@pytest.mark.parametrize("spec", ["flip=1", "translate=5", "rotate=25,scale=0.2"])
def test_masks_move_nearest_neighbour_with_the_pixels(spec):
    images, _, masks = _scene()
    x, moved = Augment(spec, seed=2).transform(images, masks, "mask")
    assert moved.dtype == torch.uint8 and set(moved.unique().tolist()) <= {0, 1, 2, 3}  # no blended classes
    obj, labelled = x[:, 0] > 100, moved > 0
    agree = (obj & labelled).sum() / (obj | labelled).sum()
    assert agree == 1 if "rotate" not in spec else agree > 0.85


def test_classification_draws_and_images_are_unchanged_by_the_targets():
    images, boxes, _ = _scene()
    spec = "flip,translate=3,rotate=10,scale=0.1,erase=0.5,cutout=6"
    a, b, c = Augment(spec, seed=9), Augment(spec, seed=9), Augment(spec, seed=9)
    plain = a(images)
    with_boxes, _ = b.transform(images, boxes, "box")
    with_labels, labels = c.transform(images, boxes[:, 0].long(), "label")
    assert torch.equal(plain, with_boxes) and torch.equal(plain, with_labels)
    assert torch.equal(labels, boxes[:, 0].long())
    assert torch.equal(a.state_dict()["generator"], b.state_dict()["generator"])
