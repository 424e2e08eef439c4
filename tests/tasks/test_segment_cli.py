"""Segmentation end to end through the verbs, on a tiny scene set with masks: datasets → train → evaluate →
predict → summary → export (ONNX gives the same pixels as torch); the verbs that do not know tasks yet say so."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.deploy.onnx_runtime import OnnxClassifier
from cnnlab.io import load_model
from cnnlab.run.splits import run_splits
from tests.tasks.helpers import CLASSES, write_scene_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment")
    scenes = write_scene_set(root / "scenes", n_train=160, n_test=40, count=(1, 2), formats=("masks",))
    out = root / "run"
    args = ["train", "--task", "segment", "--data", f"masks:{scenes}", "--model", "lenet5", "--epochs", "2"]
    args += ["--batch-size", "16", "--lr", "3e-3", "--augment", "flip,translate=2", "--tta", "--seed", "1"]
    assert main([*args, "--task-arg", "upsample=resize", "--val-split", "32", "--verbose", "0", "--out", str(out)]) == 0
    return out, scenes


def test_the_run_folder_has_the_tasks_metrics(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segment" and 0 <= metrics["test_accuracy"] <= 1 and 0 <= metrics["test_miou"] <= 1
    assert "val_miou" in metrics
    history = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    _, meta = load_model(out)
    assert meta.task == "segment" and meta.task_args == {"upsample": "resize"}
    assert list(meta.classes) == ["background", *CLASSES]


def test_evaluate_reproduces_the_runs_miou_and_prints_the_iou_table(run, capsys):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["miou"] == metrics["test_miou"] and result["accuracy"] == metrics["test_accuracy"]
    assert [row["class"] for row in result["per_class"]] == ["background", *CLASSES]
    assert main(["evaluate", str(out), "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert f"mean IoU: {metrics['val_miou']:.4f}" in text and "IoU      pixels   predicted" in text


def test_predict_writes_the_mask_and_overlay_and_counts_pixels(run, tmp_path, capsys):
    out, scenes = run
    image = scenes / "images" / "test" / "000000.png"
    assert main(["predict", str(out), str(image), "--json", "--out", str(tmp_path)]) == 0
    pred = json.loads(capsys.readouterr().out)[0]
    assert set(pred) == {"file", "pixels", "notes"} and sum(pred["pixels"].values()) == 32 * 32
    mask = np.asarray(Image.open(tmp_path / "000000.mask.png"))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= set(range(len(CLASSES) + 1))
    assert {c: int((mask == i).sum()) for i, c in enumerate(["background", *CLASSES]) if (mask == i).any()} == (
        pred["pixels"]
    )
    assert (tmp_path / "000000.pred.png").exists()
    assert main(["predict", str(out), str(image)]) == 0
    assert f"{image}: " in capsys.readouterr().out


def test_summary_shows_the_decoder(run, capsys):
    out, _ = run
    assert main(["summary", str(out)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("head.")]
    fc = next(r for r in rows if r[0] == "head.fc")
    assert fc[1] == "Conv2d" and fc[3] == f"{len(CLASSES) + 1}×32×32"  # class logits at the input's size


def test_export_gives_the_same_pixels_as_torch(run, capsys):
    out, _ = run
    assert main(["export", str(out)]) == 0
    model, meta = load_model(out)
    test = run_splits(out).split("test")
    onnx = OnnxClassifier(out / "model.onnx", tta=False)
    got = onnx.logits(test.images)
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(onnx.normalize(test.images)))
    assert got.shape == want.shape == (len(test), len(CLASSES) + 1, 32, 32)
    assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.999  # identical pixels
    assert onnx.meta.task == "segment" and onnx.session.get_outputs()[0].name == "outputs"
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.onnx"), "--json"]) == 0  # flip TTA as the run says, mirrored back
    miou = json.loads((out / "metrics.json").read_text())["test_miou"]
    assert json.loads(capsys.readouterr().out)["miou"] == pytest.approx(miou, abs=1e-3)


@pytest.mark.parametrize("verb", [["explain", "{run}", "top-losses"], ["features", "{run}"]])
def test_verbs_that_do_not_know_tasks_yet_say_so(run, verb, capsys):
    out, _ = run
    assert main([v.format(run=out) for v in verb]) == 2
    said = " ".join(verb[::2])  # the verb, and explain's method
    assert f"cnnlab {said} works on classification models; this is a segment model" in capsys.readouterr().err


def test_a_segment_run_needs_masks(tmp_path, capsys):
    scenes = write_scene_set(tmp_path / "scenes", n_train=8, n_test=4, formats=("yolo",))
    assert main(["train", "--task", "segment", "--data", f"yolo:{scenes}", "--out", str(tmp_path / "r")]) == 2
    assert "--task segment reads masks: --data masks:PATH" in capsys.readouterr().err
