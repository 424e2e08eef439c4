"""The scene generator: boxes are the objects' tight pixel boxes, seeded, written as YOLO and COCO files that the
readers (and pycocotools) read back the same."""

import json

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.data.scenes import THRESHOLD, make_scene_set, make_scenes
from tests.tasks.helpers import shape_objects


def test_each_box_is_the_tight_box_of_its_objects_pixels():
    scenes = make_scenes(shape_objects(), 40, size=48, count=(1, 3), seed=0)
    assert {len(s.objects) for s in scenes} <= {1, 2, 3} and len({len(s.objects) for s in scenes}) > 1
    for s in scenes:
        for obj, (cls, x1, y1, x2, y2) in zip(s.objects, s.boxes(), strict=True):
            assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48 and cls == obj.cls
            alone = np.zeros_like(s.image)
            h, w = obj.pixels.shape
            alone[obj.top : obj.top + h, obj.left : obj.left + w] = obj.pixels
            rows, cols = np.nonzero(alone >= THRESHOLD)
            assert (x1, y1, x2, y2) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
            assert (s.image[y1:y2, x1:x2] >= alone[y1:y2, x1:x2]).all()  # pasted with max: the object is visible


def test_scenes_are_seeded_and_noise_or_clutter_leave_the_boxes():
    objects = shape_objects()
    a, b = make_scenes(objects, 10, 32, seed=4), make_scenes(objects, 10, 32, seed=4)
    assert all(np.array_equal(x.image, y.image) and x.boxes() == y.boxes() for x, y in zip(a, b, strict=True))
    assert [s.boxes() for s in make_scenes(objects, 10, 32, seed=5)] != [s.boxes() for s in a]
    noisy = make_scenes(objects, 10, 32, clutter=3, noise=8.0, seed=4)
    assert [s.boxes() for s in noisy] == [s.boxes() for s in a]
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, noisy, strict=True))


def test_the_mask_is_each_objects_pixels_as_its_class():
    scene = make_scenes(shape_objects(), 1, 48, count=(2, 2), seed=3)[0]
    mask = scene.mask()
    assert set(np.unique(mask)) <= {0} | {o.cls + 1 for o in scene.objects}
    assert ((mask > 0) == (scene.image >= THRESHOLD)).mean() > 0.99


def test_refuses_what_cannot_be_made():
    with pytest.raises(ValueError, match="objects per scene must be 1 ≤ low ≤ high"):
        make_scenes(shape_objects(), 1, 32, count=(3, 2))
    with pytest.raises(ValueError, match="do not fit a 32×32 canvas"):
        make_scenes(shape_objects(), 1, 32, scale=(0.5, 1.2))


def test_datasets_make_writes_yolo_and_coco_that_read_back_the_same(fake_idx, tmp_path, capsys):
    out = tmp_path / "scenes"
    args = ["datasets", "make", "fashion-scenes", "--n", "30", "--test", "10", "--size", "48"]
    assert main([*args, "--objects", "1-3", "--out", str(out), "--data-dir", str(fake_idx), "--seed", "2"]) == 0
    assert "30 train, 10 test scenes of 48×48" in capsys.readouterr().out
    assert (out / "images" / "train" / "000029.png").exists() and (out / "labels" / "test" / "000009.txt").exists()
    yolo, coco = (
        load_dataset(f"yolo:{out}", val_split=0, target="boxes"),
        load_dataset(f"coco:{out}", val_split=0, target="boxes"),
    )
    assert yolo.classes == coco.classes and len(yolo.classes) == 10
    for split in ("train", "test"):
        a, b = getattr(yolo, split).labels, getattr(coco, split).labels
        torch.testing.assert_close(a, b, atol=1e-3, rtol=0)  # YOLO's text keeps 6 decimals of a fraction
    record = json.loads((out / "train.json").read_text())
    assert len(record["images"]) == 30 and {c["name"] for c in record["categories"]} == set(yolo.classes)


def test_pycocotools_reads_the_written_json(fake_idx, tmp_path):
    coco = pytest.importorskip("pycocotools.coco")
    make_scene_set("fashion-scenes", tmp_path, n=12, size=48, test=0, data_dir=fake_idx, formats=("coco",))
    api = coco.COCO(str(tmp_path / "train.json"))
    assert len(api.getImgIds()) == 12 and len(api.getCatIds()) == 10
    ann = api.loadAnns(api.getAnnIds(imgIds=[1]))[0]
    assert ann["bbox"][2] > 0 and ann["area"] == ann["bbox"][2] * ann["bbox"][3]
    assert not (tmp_path / "labels").exists()  # COCO only: no YOLO label files


def test_scenes_never_go_into_a_folder_that_holds_files(tmp_path):
    """A user's folder is not written into: `datasets make` wants a new or empty folder, and refuses before any
    data is read."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an empty folder"):
        make_scene_set("fashion-scenes", tmp_path / "mine", 4, size=32, data_dir=tmp_path / "nowhere")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
