"""The `masks:` reader on tiny hand-made folders: grayscale and palette masks, the ignore index, and the bad masks
(wrong size, unknown class index, missing, RGB) that are one line naming the file — skipped, or refused with
--strict."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.load import load_dataset
from cnnlab.data.masks import IGNORE, read_masks
from cnnlab.data.targets import relabel


def _image(path, value, size=(6, 4), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value,) * 3).save(path)


def _mask(path, array, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(array, np.uint8), mode="L")
    if palette:
        im = im.convert("P")  # indices kept, with a (grey) palette: a VOC-style mask
        im.putpalette([c for i in range(256) for c in (i * 7 % 256, i * 3 % 256, i)])
    im.save(path)


def _set(root, masks: dict, classes=("cat", "dog")):
    """images/train/<name>.png (4 rows × 6 columns) and masks/train/<name>.png for each name → mask array."""
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    for i, (name, array) in enumerate(masks.items()):
        _image(root / "images" / "train" / f"{name}.png", 40 * i)
        kw = array if isinstance(array, dict) else {"array": array}
        if array is not None:
            _mask(root / "masks" / "train" / f"{name}.png", **kw)
    return root


GOOD = np.array([[0, 0, 1, 1, 2, 2]] * 3 + [[255, 255, 0, 0, 0, 0]])  # 4×6, two classes and an ignored row part


def test_grayscale_and_palette_masks_are_class_indices_with_background_first(tmp_path):
    root = _set(tmp_path / "set", {"a": GOOD, "b": {"array": GOOD[:, ::-1], "palette": True}})
    train = read_masks(root)["train"]
    assert train.kind == "mask" and train.classes == ["background", "cat", "dog"]
    assert train.images.shape == (2, 1, 4, 6) and train.labels.dtype == torch.uint8
    assert torch.equal(train.labels[0], torch.from_numpy(GOOD.astype(np.uint8)))
    assert torch.equal(train.labels[1], torch.from_numpy(GOOD[:, ::-1].astype(np.uint8)))  # the index, not colour


def test_a_classes_file_naming_background_first_is_taken_as_it_is(tmp_path):
    root = _set(tmp_path / "set", {"a": GOOD}, classes=("background", "cat", "dog"))
    assert read_masks(root)["train"].classes == ["background", "cat", "dog"]


def test_the_ignore_index_survives_relabelling_and_resizing(tmp_path):
    root = _set(tmp_path / "set", {"a": GOOD})
    splits = load_dataset(f"masks:{root}", val_split=0, target="mask", image_size=(8, 12))
    mask = splits.train.labels[0]
    assert mask.shape == (8, 12) and int(mask[7, 0]) == IGNORE and set(mask.unique().tolist()) == {0, 1, 2, 255}
    swapped = relabel("mask", mask[None], torch.tensor([0, 2, 1]))[0]
    assert int(swapped[0, 4]) == 2 and int(swapped[0, 8]) == 1 and int(swapped[7, 0]) == IGNORE


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (np.zeros((5, 6)), "masks/train/bad.png: a 6×5 mask for a 6×4 image"),
        (np.full((4, 6), 3), "masks/train/bad.png: unknown class index 3 (classes 0–2, 255 ignored)"),
        (None, "masks/train/bad.png: no mask for this image"),
    ],
)
def test_a_bad_mask_is_one_line_naming_the_file_skipped_or_refused(tmp_path, bad, says):
    root = _set(tmp_path / "set", {"a": GOOD, "bad": bad})
    with pytest.warns(UserWarning, match="1 bad mask\\(s\\) in masks:.*were skipped") as caught:
        train = read_masks(root)["train"]
    assert len(train) == 1 and says in str(caught[0].message)
    with pytest.raises(ValueError, match=f"^{re.escape(says)}.*--strict"):
        read_masks(root, strict=True)


def test_a_colour_mask_is_refused_as_not_class_indices(tmp_path):
    root = _set(tmp_path / "set", {"a": GOOD, "rgb": GOOD})
    Image.new("RGB", (6, 4)).save(root / "masks" / "train" / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png: a RGB image; a mask is grayscale or palette"):
        read_masks(root, strict=True)


def test_only_a_segment_task_reads_masks_and_it_reads_nothing_else(tmp_path):
    root = _set(tmp_path / "set", {"a": GOOD})
    with pytest.raises(ValueError, match="has masks; a segment task reads masks:PATH and only it"):
        load_dataset(f"masks:{root}", target="label")
    with pytest.raises(ValueError, match="has no masks; a segment task reads masks:PATH"):
        load_dataset(f"yolo:{root}", target="mask")


def test_generated_scenes_write_masks_that_the_reader_reads_back(tmp_path):
    from cnnlab.data.scenes import make_scenes, write_images, write_masks
    from tests.tasks.helpers import CLASSES, shape_objects

    scenes = make_scenes(shape_objects(20), 3, size=32, count=(1, 2), scale=(0.4, 0.6), seed=0)
    write_images(tmp_path, {"train": scenes})
    write_masks(tmp_path, {"train": scenes}, CLASSES)
    train = read_masks(tmp_path)["train"]
    assert train.classes == ["background", *CLASSES]
    assert torch.equal(train.labels, torch.from_numpy(np.stack([s.mask() for s in scenes])))


def test_datasets_make_masks_writes_masks_of_the_boxed_objects(fake_idx, tmp_path, capsys):
    from cnnlab.cli import main

    out = tmp_path / "scenes"
    args = ["datasets", "make", "fashion-scenes", "--n", "12", "--test", "4", "--size", "32", "--format", "yolo"]
    assert main([*args, "--masks", "--out", str(out), "--data-dir", str(fake_idx)]) == 0
    assert f"--task segment --data masks:{out}" in capsys.readouterr().out
    masks = load_dataset(f"masks:{out}", val_split=0, target="mask")
    boxes = load_dataset(f"yolo:{out}", val_split=0, target="boxes")
    assert masks.classes == ["background", *boxes.classes] and len(masks.test) == 4
    for mask, objects in zip(masks.train.labels, boxes.train.labels, strict=True):
        drawn = set(mask.unique().tolist()) - {0}
        assert drawn and drawn <= {int(c) + 1 for c in objects[:, 0] if c >= 0}  # class k is k + 1
