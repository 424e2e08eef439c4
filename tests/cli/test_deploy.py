"""`cnnlab export --int8`, evaluate / predict on .onnx files, the standalone example without torch, `bench --quick`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")
pytest.importorskip("onnxscript", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")

from cnnlab.data import load_dataset  # noqa: E402
from tests.helpers import run_cli  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_predict.py"


@pytest.fixture(scope="module")
def exported(toy_run, fake_idx, tmp_path_factory):
    """(fp32 path, int8 path, the int8 export's result: stdout and stderr) of the toy run."""
    folder = tmp_path_factory.mktemp("onnx")
    fp32 = run_cli("export", toy_run, "--out", folder / "toy.onnx")
    assert fp32.stderr.splitlines() == [  # one line as each step starts
        "export: tracing lenet5 with torch.export (BatchNorm folded) …",
        "export: checking the ONNX graph and writing it …",
    ]
    int8 = run_cli("export", toy_run, "--int8", "--calibration", 200, "--out", folder / "toy.int8.onnx")
    return folder / "toy.onnx", folder / "toy.int8.onnx", int8


@pytest.fixture(scope="module")
def image_files(fake_idx, tmp_path_factory):
    test = load_dataset("fashion-mnist", fake_idx, val_split=0).test
    folder = tmp_path_factory.mktemp("pngs")
    files = []
    for i in range(4):
        files.append(folder / f"{i}.png")
        Image.fromarray(test.images[i, 0].numpy()).save(files[-1])
    return files


def test_int8_keeps_accuracy_on_held_out_set(exported, toy_run, fake_idx):
    _, int8, proc = exported
    stdout = proc.stdout
    steps = [line.split(",")[0] for line in proc.stderr.splitlines() if line.startswith("export: ")]
    assert steps == [
        "export: tracing lenet5 with torch.export (BatchNorm folded) …",
        "export: checking the ONNX graph and writing it …",
        "export: quantizing to int8",
        "export: checking parity",
    ]
    fp32_acc, int8_acc = map(float, re.search(r"fp32 ([\d.]+)\s+int8 ([\d.]+)", stdout).groups())
    assert fp32_acc > 0.9 and abs(int8_acc - fp32_acc) <= 0.01, stdout
    run_acc = json.loads((toy_run / "metrics.json").read_text())["test_accuracy"]
    assert fp32_acc == pytest.approx(run_acc, abs=0.006)  # ONNX fp32 = the run's own test evaluation (≤ 1 image)
    result = json.loads(run_cli("evaluate", int8, "--data-dir", fake_idx, "--json").stdout)
    assert result["accuracy"] == pytest.approx(int8_acc) and result["n"] == 200
    meta = json.loads(subprocess_props(int8)["cnnlab"])
    assert meta["precision"] == "int8" and meta["quantization"]["calibration"]["images"] == 200


def subprocess_props(path: Path) -> dict:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map


def test_evaluate_and_predict_onnx_match_the_run(exported, toy_run, fake_idx, image_files):
    fp32, _, _ = exported
    run_report = run_cli("evaluate", toy_run, "--data-dir", fake_idx).stdout
    onnx_report = run_cli("evaluate", fp32, "--data-dir", fake_idx).stdout
    # same format; per-class lines equal (fp32 logits within 1e-4 give the same predictions here)
    assert run_report.splitlines()[2:-1] == onnx_report.splitlines()[2:-1]
    assert (fp32.parent / "toy.confusion.png").exists()
    run_pred = json.loads(run_cli("predict", toy_run, *image_files, "--json").stdout)
    onnx_pred = json.loads(run_cli("predict", fp32, *image_files, "--json").stdout)
    for a, b in zip(run_pred, onnx_pred, strict=True):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        assert np.allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1e-4)
    assert run_cli("predict", fp32, *image_files).stdout.count("%") == 3 * len(image_files)


def test_standalone_example_without_torch(exported, image_files, tmp_path):
    """A true subprocess: the example must run where torch and cnnlab cannot be imported, which only a fresh
    interpreter with both blocked on its path can show (this one has imported them)."""
    fp32, _, _ = exported
    blocked = tmp_path / "blocked"
    for name in ("torch", "cnnlab"):  # importing either fails in the example's process
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not available here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(fp32), *map(str, image_files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    want = run_cli("predict", fp32, *image_files).stdout
    assert proc.stdout.splitlines() == want.splitlines()
    assert len(EXAMPLE.read_text().splitlines()) <= 60


def test_bench_quick(toy_run):
    stdout = run_cli("bench", toy_run, "--quick", "--batch", "1,8", "--save", toy_run / "bench.json").stdout
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and "engine" not in line]
    engines = [r.split("|")[1].strip() for r in rows]
    assert engines[:4] == ["pytorch fp32 eager NCHW", "cnnlab evaluate path", "onnxruntime fp32", "onnxruntime int8"]
    # OpenVINO's rows where the extra is installed: fp32 and int8, then bf16 / fp16 where its CPU plugin offers them
    assert engines[4:6] == (["openvino fp32", "openvino int8"] if engines[4:] else [])
    assert all(e in ("openvino bf16", "openvino fp16") for e in engines[6:])
    result = json.loads((toy_run / "bench.json").read_text())
    assert all(result["parity"][e]["max_abs"] < 1e-4 for e in ("onnxruntime fp32", "openvino fp32") if e in engines)
    assert all(row["b8"]["samples_per_s"] > 0 and 0 <= row["accuracy"] <= 1 for row in result["rows"])
    assert "onnxruntime" in result["versions"] and "hardware:" in stdout
    assert result["recommendation"]["engine"] in {row["engine"] for row in result["rows"]}
    assert "recommended here: " in stdout


def test_serve_predicts_with_an_onnx_file_and_says_why_it_cannot_explain(exported, toy_run, fake_idx):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from cnnlab.serve.app import create_app
    from tests.serve.conftest import square_png

    fp32, _, _ = exported
    with TestClient(create_app([toy_run, fp32], data_dir=str(fake_idx))) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        onnx_id = next(k for k in models if k != "toy")
        assert models[onnx_id]["methods"] == [] and models["toy"]["methods"]
        answers = {}
        for sid in ("toy", onnx_id):
            files = {"image": ("a.png", square_png(3), "image/png")}
            r = client.post("/api/predict", files=files, data={"model": sid})
            assert r.status_code == 200, r.text
            answers[sid] = r.json()["top"][0]
        assert answers["toy"]["class"] == answers[onnx_id]["class"]
        assert answers["toy"]["probability"] == pytest.approx(answers[onnx_id]["probability"], abs=1e-4)
        r = client.post("/api/explain", files={"image": ("a.png", square_png(3), "image/png")}, data={"model": onnx_id})
        assert r.status_code == 400 and "ONNX" in r.json()["error"]
        assert client.get(f"/api/models/{onnx_id}/random?seed=1").status_code == 200


def bench_result(rates: dict[str, tuple[float, float]], metric_of: dict[str, float]) -> dict:
    """A bench result with the given (batch-256 samples/s, batch-1 p50 ms) and metric per engine, eager first."""
    rows = [
        {
            "engine": k,
            "precision": k.split()[-1],
            "accuracy": metric_of[k],
            "b1": {"p50_ms": b1},
            "b256": {"samples_per_s": r},
        }
        for k, (r, b1) in rates.items()
    ]
    return {"metric": "accuracy", "batches": [1, 256], "rows": rows}


def test_the_recommendation_is_the_fastest_engine_that_keeps_the_accuracy():
    from cnnlab.deploy.bench import describe_recommendation, recommend

    rates = {"eager fp32": (1000.0, 1.0), "ort fp32": (3000.0, 0.3), "ort int8": (6000.0, 0.1)}
    accuracy = {"eager fp32": 0.90, "ort fp32": 0.90, "ort int8": 0.899}
    rec = recommend(bench_result(rates, accuracy))
    assert (rec["engine"], rec["batch"], rec["vs_eager"], rec["b1_p50_ms"]) == ("ort int8", 256, 6.0, 0.1)
    assert "6.00× eager fp32 at batch 256" in describe_recommendation(rec)
    # int8 measured slower than fp32 (as on a CPU without fast int8): it is not recommended for speed it lacks
    rates["ort int8"] = (2900.0, 0.3)
    assert recommend(bench_result(rates, accuracy))["engine"] == "ort fp32"
    # an engine that loses more than half a point is left out, however fast
    rates["ort int8"], accuracy["ort int8"] = (9000.0, 0.1), 0.89
    rec = recommend(bench_result(rates, accuracy))
    assert rec["engine"] == "ort fp32" and rec["left_out"] == ["ort int8"]
    assert "not considered" in describe_recommendation(rec)


@pytest.mark.slow
def test_export_writes_what_bench_recommended(toy_run, tmp_path):
    """export --recommended BENCH.json: ONNX Runtime int8 → an int8 file, fp32 (or OpenVINO fp32) → an fp32 file, a
    torch path → one line and nothing written; a bench of another run, or --int8 beside it, is refused in one line."""
    run_cli("bench", toy_run, "--quick", "--batch", "1,8", "--save", tmp_path / "bench.json")
    result = json.loads((tmp_path / "bench.json").read_text())

    def bench_saying(engine: str, run=toy_run) -> Path:
        rec = {**result["recommendation"], "engine": engine}
        path = tmp_path / f"bench-{engine.replace(' ', '-')}.json"
        path.write_text(json.dumps({**result, "recommendation": rec, "run": str(run)}))
        return path

    out = run_cli("export", toy_run, "--recommended", bench_saying("onnxruntime int8"), "--out", tmp_path / "a.onnx")
    assert "int8 QDQ" in out.stdout and "bench recommends onnxruntime int8" in out.stderr
    out = run_cli("export", toy_run, "--recommended", bench_saying("onnxruntime fp32"), "--out", tmp_path / "b.onnx")
    assert "fp32, BN folded" in out.stdout and (tmp_path / "b.onnx").exists()
    out = run_cli("export", toy_run, "--recommended", bench_saying("openvino fp32"), "--out", tmp_path / "v.onnx")
    assert "fp32, BN folded" in out.stdout and "OpenVINO runs the written .onnx file" in out.stderr
    out = run_cli(
        "export", toy_run, "--recommended", bench_saying("cnnlab evaluate path"), "--out", tmp_path / "c.onnx"
    )
    assert "no ONNX file to write" in out.stdout and not (tmp_path / "c.onnx").exists()
    other = bench_saying("onnxruntime fp32", run=tmp_path / "elsewhere")
    err = run_cli("export", toy_run, "--recommended", other, "--out", tmp_path / "d.onnx", code=2).stderr
    assert "bench this run first" in err and len(err.strip().splitlines()) == 1
    err = run_cli("export", toy_run, "--recommended", tmp_path / "bench.json", "--int8", code=2).stderr
    assert "leave out --int8" in err
