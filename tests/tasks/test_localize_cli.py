"""Localization end to end through the verbs, on a tiny scene set: train → evaluate → predict → summary → export
(ONNX parity with torch) → bench; the verbs that do not know tasks yet say so in one line."""

import json

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.deploy.onnx_runtime import OnnxClassifier
from cnnlab.io import load_model
from cnnlab.run.splits import run_splits
from tests.tasks.helpers import CLASSES, write_scene_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("localize")
    scenes = write_scene_set(root / "scenes")
    out = root / "run"
    args = ["train", "--task", "localize", "--data", f"coco:{scenes}", "--model", "lenet5", "--epochs", "3"]
    args += ["--batch-size", "16", "--lr", "3e-3", "--augment", "flip,translate=2", "--tta", "--seed", "1"]
    assert main([*args, "--task-arg", "hidden=64", "--val-split", "40", "--verbose", "0", "--out", str(out)]) == 0
    return out, scenes


def test_the_run_folder_has_the_tasks_metrics(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "localize" and 0 <= metrics["test_accuracy"] <= 1
    assert {"test_iou", "test_loc_accuracy", "val_iou", "val_loc_accuracy"} <= set(metrics)
    history = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "accuracy", "iou", "val_loss", "val_accuracy", "val_iou"} <= set(history)
    model, meta = load_model(out)
    assert (
        meta.task == "localize" and meta.task_args == {"hidden": 64} and meta.metrics["test_iou"] == metrics["test_iou"]
    )
    assert meta.tta and (out / "curves.png").exists()


def test_evaluate_reproduces_the_runs_numbers(run, capsys):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iou"] == metrics["test_iou"] and result["accuracy"] == metrics["test_accuracy"]
    assert main(["evaluate", str(out), "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert f"mean IoU: {metrics['val_iou']:.4f}" in text and "class right and IoU ≥ 0.5" in text


def test_predict_prints_and_draws_the_box(run, tmp_path, capsys):
    out, scenes = run
    image = scenes / "images" / "test" / "000000.png"
    assert main(["predict", str(out), str(image), "--json", "--out", str(tmp_path)]) == 0
    pred = json.loads(capsys.readouterr().out)[0]
    assert pred["class"] in CLASSES and len(pred["box"]) == 4 and pred["box"][0] < pred["box"][2]
    assert (tmp_path / "000000.pred.png").exists()
    assert main(["predict", str(out), str(image)]) == 0
    assert f"{image}: {pred['class']}" in capsys.readouterr().out


def test_summary_shows_the_head(run, capsys):
    out, _ = run
    assert main(["summary", str(out)]) == 0
    text = capsys.readouterr().out
    row = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("head.")}
    assert row["head.fc"][2] == "4" and row["head.box"][2] == "4"  # 4 class logits, 4 box numbers


def test_export_matches_torch_on_scores_and_boxes(run, capsys):
    out, _ = run
    assert main(["export", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model, meta = load_model(out)
    test = run_splits(out).split("test")
    onnx = OnnxClassifier(out / "model.onnx", tta=False)
    got = onnx.logits(test.images)
    with torch.no_grad():
        want = model(torch.from_numpy(onnx.normalize(test.images)))
    k = len(CLASSES)
    torch.testing.assert_close(got[:, :k].softmax(1), want[:, :k].softmax(1), atol=1e-4, rtol=0)  # scores
    torch.testing.assert_close(got[:, k:], want[:, k:], atol=1e-4, rtol=0)  # boxes
    assert onnx.meta.task == "localize" and onnx.session.get_outputs()[0].name == "outputs"
    assert main(["evaluate", str(out / "model.onnx"), "--json"]) == 0  # flip TTA as the run says, box mirrored back
    assert json.loads(capsys.readouterr().out)["iou"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["test_iou"], abs=1e-4
    )


def test_bench_reports_the_main_metric(run, capsys):
    out, _ = run
    assert main(["bench", str(out), "--quick", "--batch", "1,8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "iou" and all(0 <= row["iou"] <= 1 for row in result["rows"])
    assert result["parity"]["onnxruntime fp32"]["max_abs"] < 1e-4


@pytest.mark.parametrize("verb", [["explain", "{run}", "top-losses"], ["features", "{run}"]])
def test_verbs_that_do_not_know_tasks_yet_say_so(run, verb, capsys):
    out, _ = run
    assert main([v.format(run=out) for v in verb]) == 2
    said = " ".join(verb[::2])  # the verb, and explain's method
    assert f"cnnlab {said} works on classification models; this is a localize model" in capsys.readouterr().err


def test_flip_tta_averages_the_mirrored_box_back(run):
    out, _ = run
    from cnnlab.infer import TorchClassifier

    model, meta = load_model(out)
    images = run_splits(out).split("test").images[:8]
    clf = TorchClassifier(model, meta, "cpu", "fp32")
    plain, mirrored, both = (
        clf.logits(images, tta=False),
        clf.logits(images.flip(3), tta=False),
        clf.logits(images, tta=True),
    )
    back = meta.make_task().flip_back(mirrored)
    torch.testing.assert_close(both, (plain + back) / 2, atol=1e-5, rtol=0)
    assert np.allclose(back[:, 4].numpy(), 1 - mirrored[:, 4].numpy())
