"""`cnnlab explain` on detect and segment runs (tiny scene sets, seconds of training): saliency of one detection or
pixel, chosen as predict lists it; the decoder's feature maps; PNGs written atomically; one line for bad choices."""

import json
import re

import pytest

import cnnlab.plots
from tests.helpers import run_cli
from tests.tasks.helpers import CLASSES, write_scene_set

pytestmark = pytest.mark.slow


def _train(root, task: str, data: str, *extra: str):
    out = root / "run"
    args = ["train", "--task", task, "--data", data, "--model", "lenet5", "--epochs", "2", "--batch-size", "16"]
    run_cli(*args, "--lr", "3e-3", "--seed", "1", "--val-split", "20", "--verbose", "0", *extra, "--out", out)
    return out


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-detect")
    scenes = write_scene_set(root / "scenes", n_train=120, n_test=20, size=48, count=(1, 3), formats=("coco",))
    # flip TTA: the list is predict's (TTA averaged), the line says what the pass explained scores alone
    extra = ("--task-arg", "grid=4", "--task-arg", "score=0.05", "--tta")  # a low threshold: several detections
    return _train(root, "detect", f"coco:{scenes}", *extra), scenes / "images" / "test" / "000000.png"


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-segment")
    scenes = write_scene_set(root / "scenes", n_train=80, n_test=10, count=(1, 2), formats=("masks",))
    out = _train(root, "segment", f"masks:{scenes}", "--task-arg", "upsample=resize")
    return out, scenes / "images" / "test" / "000000.png"


@pytest.fixture(scope="module")
def localize_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-localize")
    scenes = write_scene_set(root / "scenes", n_train=80, n_test=10, formats=("coco",))
    return _train(root, "localize", f"coco:{scenes}"), scenes / "images" / "test" / "000000.png"


@pytest.fixture
def written(monkeypatch):
    """The paths every figure was atomically written to (`plots.save_figure` → `files.atomic_write`)."""
    paths = []
    atomic = cnnlab.plots.atomic_write
    monkeypatch.setattr(cnnlab.plots, "atomic_write", lambda path, write: paths.append(path) or atomic(path, write))
    return paths


def _png(result, written) -> str:
    path = result.stdout.strip().splitlines()[-1]
    assert path.endswith(".png") and [str(p) for p in written] == [path]
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return path


def test_a_detection_is_picked_from_predicts_list(detect_run, written, tmp_path):
    run, image = detect_run
    objects = json.loads(run_cli("predict", run, image, "--json").stdout)[0]["objects"]
    assert len(objects) >= 2
    for k in (None, 1):
        pick = [] if k is None else ["--detection", str(k)]
        result = run_cli("explain", run, "saliency", "--image", image, *pick, "--method", "gradcam,gradient")
        o = objects[k or 0]
        line = result.stdout.splitlines()[0]
        assert line.startswith(f"explained: detection {k or 0} of {len(objects)} ({o['class']} {o['score']:.0%} at ")
        assert re.search(
            r"its \w+ logit at grid cell row \d, column \d of 4×4 \(predict averages in the mirrored", line
        )
        name = "explain-saliency.png" if k is None else f"explain-saliency-detection{k}.png"
        assert _png(result, written) == str(run / name)
        written.clear()


def test_bad_detection_choices_get_one_line(detect_run):
    run, image = detect_run
    n = len(json.loads(run_cli("predict", run, image, "--json").stdout)[0]["objects"])
    base = ["explain", run, "saliency", "--image", image]
    err = run_cli(*base, "--detection", n, code=2).stderr
    assert err.strip() == (
        f"cnnlab explain: error: --detection {n}: this image has {n} detections, numbered 0–{n - 1} best first as "
        "`cnnlab predict RUN IMAGE` lists them"
    )
    assert "--pixel picks a pixel of a segment model's mask; this is a detect model" in (
        run_cli(*base, "--pixel", "3,4", code=2).stderr
    )
    assert "a detection's class comes with it" in run_cli(*base, "--target", "ring", code=2).stderr
    err = run_cli(*base, "--method", "gradcam", "--layer", "head.box", code=2).stderr
    assert "has no gradient at layer 'head.box'" in err and len(err.strip().splitlines()) == 1


def test_methods_a_detector_does_not_fit_are_refused_naming_those_it_does(detect_run):
    run, _ = detect_run
    err = run_cli("explain", run, "embedding", code=2).stderr.strip()
    assert err == (
        "cnnlab explain: error: cnnlab explain embedding works on classification models; this is a detect model "
        "(explain knows layers, filters, featuremaps, saliency, maximize, patches for it)"
    )
    assert (
        "maximize --class raises a classifier's logits"
        in run_cli("explain", run, "maximize", "--class", "0", code=2).stderr
    )


def test_filters_and_feature_maps_work_on_a_detector(detect_run, written, tmp_path):
    run, image = detect_run
    _png(run_cli("explain", run, "filters", "--out", tmp_path / "f.png"), written)
    written.clear()
    _png(
        run_cli(
            "explain",
            run,
            "featuremaps",
            "--image",
            image,
            "--layer",
            "head.tower.0",
            "--max",
            "8",
            "--out",
            tmp_path / "m.png",
        ),
        written,
    )


def test_a_pixel_of_a_segment_model_is_explained(segment_run, written):
    run, image = segment_run
    result = run_cli("explain", run, "saliency", "--image", image)
    assert re.match(r"explained: pixel row \d+, column \d+ \((near the centre|the centre: no object)", result.stdout)
    assert _png(result, written) == str(run / "explain-saliency.png")
    written.clear()
    result = run_cli("explain", run, "saliency", "--image", image, "--pixel", "5,31", "--method", "gradient,gradcam")
    assert result.stdout.startswith("explained: pixel row 5, column 31 (chosen; predicted ")
    assert _png(result, written) == str(run / "explain-saliency-pixel5_31.png")


def test_bad_pixels_and_layers_of_a_segment_model_get_one_line(segment_run):
    run, image = segment_run
    base = ["explain", run, "saliency", "--image", image]
    assert run_cli(*base, "--pixel", "32,0", code=2).stderr.strip() == (
        "cnnlab explain: error: --pixel 32,0 is outside the model's 32×32 input: rows 0–31, columns 0–31 "
        "(the image is read at the model's input size)"
    )
    assert "expected ROW,COL such as 12,20, got '7'" in run_cli(*base, "--pixel", "7", code=2).stderr
    assert "--detection picks one of a detect model's objects; this is a segment model" in (
        run_cli(*base, "--detection", "0", code=2).stderr
    )
    err = run_cli("explain", run, "featuremaps", "--image", image, "--layer", "head.block", code=2).stderr.strip()
    assert err.startswith("cnnlab explain: error: no layer named 'head.block'; did you mean head.blocks")
    assert "the head's layers: head.ups, head.ups.0" in err and "head.to_input" in err and len(err.splitlines()) == 1


def test_the_decoders_feature_maps(segment_run, written, tmp_path):
    run, image = segment_run
    result = run_cli("explain", run, "featuremaps", "--image", image)
    assert _png(result, written) == str(run / "explain-featuremaps.png")  # default: head.to_input
    written.clear()
    out = tmp_path / "blocks.png"
    assert _png(
        run_cli("explain", run, "featuremaps", "--image", image, "--layer", "head.blocks.0", "--out", out), written
    ) == str(out)


def test_top_losses_of_a_segment_model_is_refused(segment_run):
    run, _ = segment_run
    err = run_cli("explain", run, "top-losses", code=2).stderr
    assert "cnnlab explain top-losses works on classification models; this is a segment model" in err


def test_a_localize_models_class_is_explained_with_its_box(localize_run, written):
    run, image = localize_run
    pred = json.loads(run_cli("predict", run, image, "--json").stdout)[0]
    result = run_cli("explain", run, "saliency", "--image", image)  # Grad-CAM by default
    want = f"explained: the {pred['class']} logit (predicted {pred['class']} {pred['probability']:.0%}, box x "
    assert result.stdout.startswith(want)
    _png(result, written)
    written.clear()
    other = next(c for c in CLASSES if c != pred["class"])
    result = run_cli("explain", run, "saliency", "--image", image, "--target", other, "--method", "gradient")
    assert result.stdout.startswith(f"explained: the {other} logit (predicted {pred['class']} ")
    assert "--detection picks one of a detect model's objects; this is a localize model" in (
        run_cli("explain", run, "saliency", "--image", image, "--detection", "0", code=2).stderr
    )


def test_a_classifier_takes_no_detection_or_pixel_and_its_gradcam_takes_a_layer(toy_run, detect_run, tmp_path):
    _, image = detect_run  # any image: the classifier reads it at its own size
    base = ["explain", toy_run, "saliency", "--image", image, "--out", tmp_path / "s.png"]
    assert "--detection picks one of a detect model's objects; this is a classify model" in (
        run_cli(*base, "--detection", "0", code=2).stderr
    )
    assert "--pixel picks a pixel of a segment model's mask; this is a classify model" in (
        run_cli(*base, "--pixel", "1,1", code=2).stderr
    )
    assert "add --method gradcam" in run_cli(*base, "--layer", "features.0", code=2).stderr
    assert run_cli(*base, "--method", "gradcam", "--layer", "features.0").stdout.strip().endswith("s.png")
