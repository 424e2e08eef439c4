"""The yolo: and coco: readers on tiny hand-written fixtures: boxes, splits, class names, and each bad box with its
one line naming the file and the line (or the annotation)."""

import json

import pytest
import torch
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.coco import read_coco
from cnnlab.data.yolo import read_yolo


def _image(path, size=(20, 10)):  # (W, H)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, 0).save(path)


def _yolo(root, labels: dict[str, str], split="train", names="classes.txt", size=(20, 10)):
    for stem, text in labels.items():
        _image(root / "images" / split / f"{stem}.png", size)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        if text is not None:
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    if names == "classes.txt":
        (root / "classes.txt").write_text("cat\ndog\n")
    elif names == "yaml-dict":
        (root / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    elif names == "yaml-list":
        (root / "data.yaml").write_text("names: [cat, dog]\n")
    return root


@pytest.mark.parametrize("names", ["classes.txt", "yaml-dict", "yaml-list"])
def test_yolo_boxes_are_read_in_pixels_with_their_class_names(tmp_path, names):
    root = _yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.4\n0 0.25 0.25 0.1 0.2\n", "b": "", "c": None}, names=names)
    data = read_yolo(root)["train"]
    assert data.classes == ["cat", "dog"] and data.kind == "boxes" and data.labels.shape == (3, 2, 5)
    # 20×10 image: cx 0.5·20, w 0.5·20 → x 5–15; cy 0.5·10, h 0.4·10 → y 3–7
    torch.testing.assert_close(data.labels[0, 0], torch.tensor([1.0, 5, 3, 15, 7]))
    torch.testing.assert_close(data.labels[0, 1], torch.tensor([0.0, 4, 1.5, 6, 3.5]))
    assert (data.labels[1:, :, 0] == -1).all()  # an empty label file and a missing one: no objects


def test_yolo_and_coco_read_the_same_boxes_and_splits(tmp_path):
    root = _yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.4\n"})
    _yolo(tmp_path, {"t": "0 0.3 0.5 0.2 0.2\n"}, split="test")
    images = [{"id": 7, "file_name": "images/train/a.png", "width": 20, "height": 10}]
    cats = [{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}]  # ids need not be 0… or contiguous
    ann = [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [5, 3, 10, 4]}]
    (root / "train.json").write_text(json.dumps({"images": images, "annotations": ann, "categories": cats}))
    test = [{"id": 1, "file_name": "t.png", "width": 20, "height": 10}]  # COCO's way: in images/<split>/
    ann = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 4, 4, 2]}]
    (root / "test.json").write_text(json.dumps({"images": test, "annotations": ann, "categories": cats}))
    yolo, coco = read_yolo(root, "box"), read_coco(root, "box")
    assert set(yolo) == set(coco) == {"train", "test"}
    for split in ("train", "test"):
        torch.testing.assert_close(yolo[split].labels, coco[split].labels)
        assert yolo[split].classes == coco[split].classes == ["cat", "dog"]
    torch.testing.assert_close(coco["test"].labels[0], torch.tensor([0.0, 4, 4, 8, 6]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5 0.5 0.5 0.2 0.2", r"labels/train/a\.txt line 2: unknown class 5 \(the classes are 0–1\)"),
        ("0 0.5 0.5 0 0.2", r"labels/train/a\.txt line 2: a box without area \(width 0"),
        ("0 0.95 0.5 0.3 0.2", r"labels/train/a\.txt line 2: a box outside the image \(corners 0\.8, 0\.4, 1\.1"),
        ("0 0.5 0.5", r"labels/train/a\.txt line 2: '0 0\.5 0\.5' is not `class cx cy w h`"),
    ],
)
def test_a_bad_yolo_box_is_one_line_naming_file_and_line(tmp_path, text, message):
    root = _yolo(tmp_path, {"a": f"1 0.5 0.5 0.5 0.4\n{text}\n"})
    with pytest.warns(UserWarning, match=message):  # skipped, the good box kept
        data = read_yolo(root)["train"]
    assert (data.labels[0, :, 0] >= 0).sum() == 1
    with pytest.raises(ValueError, match=message + r".*\(--strict\)"):
        read_yolo(root, strict=True)


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        ({"id": 4, "image_id": 1, "category_id": 2, "bbox": [1, 1, 3, 3]}, r"annotation 4: unknown category_id 2"),
        ({"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 3]}, r"annotation 5 \(a\.png\): a box without"),
        ({"id": 6, "image_id": 1, "category_id": 1, "bbox": [15, 1, 9, 3]}, r"annotation 6 \(a\.png\): a box outside"),
        ({"id": 7, "image_id": 2, "category_id": 1, "bbox": [1, 1, 3, 3]}, r"annotation 7: image_id 2 is not in"),
        ({"id": 8, "image_id": 1, "bbox": [1, 1, 3, 3]}, r"annotation 8: not an annotation with image_id"),
    ],
)
def test_a_bad_coco_box_is_one_line_naming_file_and_annotation(tmp_path, ann, message):
    _image(tmp_path / "a.png")
    good = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 5, 5]}
    record = {
        "images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
        "annotations": [good, ann],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "train.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="train.json " + message):
        assert (read_coco(tmp_path)["train"].labels[0, :, 0] >= 0).sum() == 1
    with pytest.raises(ValueError, match="train.json " + message):
        read_coco(tmp_path, strict=True)


def test_load_dataset_reads_boxes_for_a_box_task_only_and_resizes_them(tmp_path):
    root = _yolo(tmp_path, {f"{i}": "1 0.5 0.5 0.5 0.4\n" for i in range(10)})
    splits = load_dataset(f"yolo:{root}", val_split=2, target="box", image_size=40)
    assert splits.train.kind == "box" and len(splits.train) == 8 and len(splits.val) == 2
    torch.testing.assert_close(splits.val.labels[0], torch.tensor([1.0, 10, 12, 30, 28]))  # 20×10 → 40×40
    labels = load_dataset(f"yolo:{root}", val_split=0)  # a classifier of one-object scenes: the object's class
    assert labels.train.kind == "label" and labels.train.labels.tolist() == [1] * 10
    with pytest.raises(
        ValueError, match="fashion-mnist has class labels, not one box per image; a box task reads yolo"
    ):
        load_dataset("fashion-mnist", target="box")


def test_localization_refuses_an_image_with_several_objects_naming_its_label_file(tmp_path):
    root = _yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.4\n", "b": "0 0.2 0.2 0.1 0.1\n1 0.7 0.7 0.2 0.2\n"})
    with pytest.raises(ValueError, match=r"labels/train/b\.txt: 2 objects, but a one-object task"):
        read_yolo(root, "box")


def test_images_of_different_sizes_need_an_image_size(tmp_path):
    root = _yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.4\n"})
    _yolo(tmp_path, {"b": "1 0.5 0.5 0.5 0.4\n"}, size=(30, 30))
    with pytest.raises(ValueError, match="2 different sizes .* pass --image-size"):
        read_yolo(root)
    assert read_yolo(root, size=(16, 16))["train"].images.shape == (2, 1, 16, 16)


def test_missing_names_and_folders_are_one_line(tmp_path):
    root = _yolo(tmp_path, {"a": ""}, names=None)
    with pytest.raises(ValueError, match=r"no class names; write them in .*classes\.txt"):
        read_yolo(root)
    with pytest.raises(FileNotFoundError, match="no images/ folder"):
        read_yolo(tmp_path / "labels")
    with pytest.raises(FileNotFoundError, match=r"no train\.json"):
        read_coco(tmp_path)
