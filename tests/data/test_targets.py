"""Target kinds (labels, one box, several boxes, masks) through ImageSet's subset, resize and split, and the
conversions between them."""

import pytest
import torch

from cnnlab.data import targets
from cnnlab.data.dataset import ImageSet, split_off


def _boxes_set(n=6, size=20):
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    boxes = torch.full((n, 2, 5), 0.0)
    boxes[..., 0] = -1
    for i in range(n):
        boxes[i, 0] = torch.tensor([i % 3, 2.0, 4.0, 10.0, 12.0])
        images[i, 0, 4:12, 2:10] = 200
        if i % 2:
            boxes[i, 1] = torch.tensor([1, 12.0, 12.0, 18.0, 20.0])
            images[i, 0, 12:20, 12:18] = 200
    return ImageSet(images, boxes, ["a", "b", "c"], "boxes")


def test_each_kind_is_checked_and_typed():
    images = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    assert ImageSet(images, torch.tensor([0, 1, 2], dtype=torch.uint8), ["a", "b", "c"]).labels.dtype == torch.int64
    assert ImageSet(images, torch.zeros(3, 5, dtype=torch.float64), ["a"], "box").labels.dtype == torch.float32
    assert ImageSet(images, torch.zeros(3, 4, 5), ["a"], "boxes").labels.shape == (3, 4, 5)
    assert ImageSet(images, torch.zeros(3, 8, 8, dtype=torch.int64), ["a"], "mask").labels.dtype == torch.uint8
    with pytest.raises(ValueError, match=r"3 images but box targets of shape \(3, 4\) \(expected \(3, 5\)\)"):
        ImageSet(images, torch.zeros(3, 4), ["a"], "box")
    with pytest.raises(ValueError, match="3 images but labels of shape"):
        ImageSet(images, torch.zeros(2), ["a"])
    with pytest.raises(ValueError, match="unknown target kind 'polygon'"):
        ImageSet(images, torch.zeros(3), ["a"], "polygon")


def test_subset_and_split_keep_each_image_with_its_targets():
    data = _boxes_set()
    part = data.subset(torch.tensor([4, 1]))
    assert part.kind == "boxes" and torch.equal(part.labels, data.labels[[4, 1]])
    rest, val = split_off(data, 2, seed=0)
    assert rest.kind == val.kind == "boxes" and len(rest) == 4 and len(val) == 2
    for s in (rest, val):  # each image still shows its own boxes
        for img, b in zip(s.images, s.labels, strict=True):
            for cls, x1, y1, x2, y2 in b.tolist():
                if cls >= 0:
                    assert (img[0, int(y1) : int(y2), int(x1) : int(x2)] == 200).all()


def test_resize_scales_boxes_and_resizes_masks_nearest():
    data = _boxes_set(size=20)
    big = data.resized(40)
    assert big.images.shape[2:] == (40, 40)
    real = data.labels[..., 0] >= 0
    torch.testing.assert_close(big.labels[real][:, 1:], data.labels[real][:, 1:] * 2)
    assert (big.labels[~real] == torch.tensor([-1.0, 0, 0, 0, 0])).all()  # padding stays padding
    mask = torch.zeros(2, 20, 20, dtype=torch.uint8)
    mask[:, 4:12, 2:10] = 3
    m = ImageSet(data.images[:2], mask, ["a", "b", "c", "d"], "mask").resized(10)
    assert set(m.labels.unique().tolist()) == {0, 3} and (m.labels[:, 2:6, 1:5] == 3).all()
    wide = ImageSet(data.images[:1], data.labels[:1, 0], ["a", "b", "c"], "box").resized((10, 40))
    assert wide.labels[0, 1:].tolist() == [4.0, 2.0, 20.0, 6.0]  # x × 2, y × 0.5


def test_relabel_maps_classes_of_every_kind_and_keeps_padding():
    mapping = torch.tensor([2, 0, 1])
    data = _boxes_set()
    moved = targets.relabel("boxes", data.labels, mapping)
    real = data.labels[..., 0] >= 0
    assert torch.equal(moved[real][:, 0].long(), mapping[data.labels[real][:, 0].long()])
    assert (moved[~real][:, 0] == -1).all() and torch.equal(moved[..., 1:], data.labels[..., 1:])
    assert targets.relabel("label", torch.tensor([0, 2]), mapping).tolist() == [2, 1]
    mask = torch.tensor([[[0, 1], [2, 0]]], dtype=torch.uint8)
    assert targets.relabel("mask", mask, torch.tensor([0, 2, 1])).tolist() == [[[0, 2], [1, 0]]]


def test_one_object_per_image_becomes_a_box_and_a_label():
    data = _boxes_set()
    pad = torch.tensor([-1.0, 0, 0, 0, 0]).expand(6, 1, 5)
    one = torch.cat([data.labels[:, :1], pad], 1)
    one[0] = torch.stack([pad[0, 0], data.labels[0, 0]])  # image 0: a padding row first, then its box
    box = targets.convert("boxes", one, "box")
    assert box.shape == (6, 5) and torch.equal(box, data.labels[:, 0])
    assert targets.convert("boxes", one, "label").tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match=r"labels/1\.txt: 2 objects, but a one-object task .* \(3 image\(s\) differ"):
        targets.convert("boxes", data.labels, "box", [f"labels/{i}.txt" for i in range(6)])
    with pytest.raises(ValueError, match="the data have class labels"):
        targets.convert("label", torch.zeros(3), "box")
