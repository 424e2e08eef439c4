"""The task benchmarks' picture of predictions (`benchmarks.features._scenes.example`): after a tiny run of each
task on generated scenes, a PNG with one panel per test scene (segmentation: image | truth | prediction per scene)."""

import argparse

import pytest
from benchmarks.features import _scenes, segment
from PIL import Image

from cnnlab.data.scenes import make_scene_set

MODEL = "CL8k3-BN-MP4-CL16k3-BN-FC10"  # 32 px → 16×16 maps: the code path of the benchmarks' nets, at little cost


@pytest.mark.slow  # three tiny training runs
@pytest.mark.parametrize(
    ("task", "source", "count", "options", "panels"),
    [
        ("localize", "yolo", (1, 1), {}, _scenes.prediction_only),
        ("detect", "coco", (1, 2), {"task_args": {"grid": 4}}, _scenes.prediction_only),
        ("segment", "masks", (1, 2), {"task_args": {"decoder": "fcn", "skips": 2}}, segment.panels),
    ],
)
def test_a_run_writes_a_picture_of_its_predictions(tmp_path, fake_idx, task, source, count, options, panels):
    data = tmp_path / "scenes"
    formats = ("coco",) if source == "coco" else ("yolo",)
    make_scene_set(
        "fashion-scenes",
        data,
        24,
        size=32,
        count=count,
        test=4,
        data_dir=fake_idx,
        formats=formats,
        masks=source == "masks",
    )
    picture = tmp_path / "pictures" / f"{task}_example.png"
    args = argparse.Namespace(work=str(tmp_path), model=MODEL, epochs=1, time_budget=None, seed=0, example=str(picture))
    recipe = {"batch_size": 8, "val_split": 4, "threads": 1}
    _scenes.train(args, f"{source}:{data}", task, recipe, panels, **options)
    with Image.open(picture) as im:
        # four test scenes of 32 px, each enlarged 8× (to 256 px) with an 18 px caption, GAP white pixels between
        rows, columns = (4, 3) if task == "segment" else (1, 4)
        gap = _scenes.GAP
        assert im.size == (256 * columns + gap * (columns - 1), (256 + 18) * rows + gap * (rows - 1))
    assert [p.name for p in picture.parent.iterdir()] == [picture.name]  # written atomically: no temporary left
