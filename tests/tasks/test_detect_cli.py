"""Detection end to end through the verbs, on a tiny scene set of 1–3 objects: train → evaluate (mAP table, PR
curves) → predict (printed, drawn, JSON) → summary → export (ONNX parity with torch) → bench; the verbs that do not
know tasks yet say so in one line."""

import json

import onnx as onnx_module
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
    root = tmp_path_factory.mktemp("detect")
    scenes = write_scene_set(root / "scenes", size=48, count=(1, 3), formats=("coco",))
    out = root / "run"
    args = ["train", "--task", "detect", "--data", f"coco:{scenes}", "--model", "lenet5", "--epochs", "3"]
    args += ["--batch-size", "16", "--lr", "3e-3", "--augment", "flip,translate=2", "--tta", "--seed", "1"]
    args += ["--task-arg", "grid=4", "--task-arg", "score=0.05"]  # a low threshold: an untrained model shows boxes
    assert main([*args, "--val-split", "40", "--verbose", "0", "--out", str(out)]) == 0
    return out, scenes


def test_the_run_folder_has_the_tasks_metrics(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "detect" and 0 <= metrics["test_accuracy"] <= 1
    assert {"test_map", "test_map50", "val_map", "val_map50"} <= set(metrics)
    assert 0 <= metrics["test_map"] <= metrics["test_map50"] <= 1
    history = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    _, meta = load_model(out)
    assert meta.task == "detect" and meta.task_args == {"grid": 4, "score": 0.05}


def test_evaluate_prints_the_map_table_and_draws_the_pr_curves(run, tmp_path, capsys):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out), "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["map"] == pytest.approx(metrics["test_map"]) and result["map50"] == metrics["test_map50"]
    assert [row["class"] for row in result["per_class"]] == CLASSES and result["objects"] > result["n"]
    assert result["pr_curve_png"] == str(tmp_path / "pr_curve.png") and (tmp_path / "pr_curve.png").exists()
    assert main(["evaluate", str(out), "--split", "val", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"mAP@0.5:0.95: {metrics['val_map']:.4f}" in text and "AP@0.5" in text and "precision–recall" in text


def test_predict_prints_and_draws_the_boxes(run, tmp_path, capsys):
    out, scenes = run
    image = scenes / "images" / "test" / "000000.png"
    assert main(["predict", str(out), str(image), "--json", "--out", str(tmp_path)]) == 0
    objects = json.loads(capsys.readouterr().out)[0]["objects"]
    assert objects and all(o["class"] in CLASSES and o["box"][0] <= o["box"][2] for o in objects)
    assert [o["score"] for o in objects] == sorted((o["score"] for o in objects), reverse=True)
    assert (tmp_path / "000000.pred.png").exists()
    assert main(["predict", str(out), str(image)]) == 0
    assert f"{image}: {len(objects)} object(s): {objects[0]['class']}" in capsys.readouterr().out


def test_summary_shows_the_head(run, capsys):
    out, _ = run
    assert main(["summary", str(out)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("head.")}
    assert rows["head.fc"][3] == "4×4×4" and rows["head.box"][3] == "4×4×4"  # 4 class maps, 4 box maps, 4×4 cells


def test_export_decodes_in_the_graph_and_matches_torch(run, capsys):
    out, _ = run
    assert main(["export", str(out)]) == 0
    model, _ = load_model(out)
    test = run_splits(out).split("test")
    onnx = OnnxClassifier(out / "model.onnx", tta=False)
    got = onnx.logits(test.images)
    with torch.no_grad():
        want = model(torch.from_numpy(onnx.normalize(test.images)))
    k = len(CLASSES)
    assert got.shape == (len(test.images), 16, k + 4)
    torch.testing.assert_close(got[..., :k].sigmoid(), want[..., :k].sigmoid(), atol=1e-4, rtol=0)  # scores
    torch.testing.assert_close(got[..., k:], want[..., k:], atol=1e-3, rtol=0)  # boxes in pixels (of 48)
    props = {p.key: p.value for p in onnx_module.load(out / "model.onnx").metadata_props}
    assert props["task"] == "detect" and "x1, y1, x2, y2 in pixels" in props["outputs"]
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.onnx"), "--json"]) == 0  # flip TTA as the run says, cells mirrored back
    assert json.loads(capsys.readouterr().out)["map"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["test_map"], abs=1e-3
    )


def test_bench_reports_the_map(run, capsys):
    out, _ = run
    assert main(["bench", str(out), "--quick", "--batch", "1,8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "map" and all(0 <= row["map"] <= 1 for row in result["rows"])
    assert result["parity"]["onnxruntime fp32"]["max_abs"] < 1e-3


@pytest.mark.parametrize("verb", [["explain", "{run}", "top-losses"], ["features", "{run}"]])
def test_verbs_that_do_not_know_tasks_yet_say_so(run, verb, capsys):
    out, _ = run
    assert main([v.format(run=out) for v in verb]) == 2
    said = " ".join(verb[::2])  # the verb, and explain's method
    assert f"cnnlab {said} works on classification models; this is a detect model" in capsys.readouterr().err


def test_flip_tta_averages_the_mirrored_cells_back(run):
    from cnnlab.infer import TorchClassifier

    out, _ = run
    model, meta = load_model(out)
    images = run_splits(out).split("test").images[:8]
    clf = TorchClassifier(model, meta, "cpu", "fp32")
    plain, mirrored = clf.logits(images, tta=False), clf.logits(images.flip(3), tta=False)
    back = meta.make_task().flip_back(mirrored)
    torch.testing.assert_close(clf.logits(images, tta=True), (plain + back) / 2, atol=1e-4, rtol=0)
