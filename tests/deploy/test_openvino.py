"""The OpenVINO engine: logits against torch and ONNX Runtime on a small model, what bench recommends when its rows
are there, and the one line a user without the openvino extra gets."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnlab.deploy import openvino_runtime
from cnnlab.deploy.bench import MIN_AGREEMENT, describe_recommendation, recommend
from cnnlab.io import RunMeta
from cnnlab.models import create_model, main_output
from tests.helpers import subprocess_env


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A LeNet-5 (random weights), its fp32 file and its int8 QDQ file (calibrated on random images)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'cnnlab[openvino]'")
    from cnnlab.deploy.export import export_onnx
    from cnnlab.deploy.quantize import quantize_int8

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=1).eval()
    classes = [f"class {i}" for i in range(10)]
    meta = RunMeta.for_model(model, classes=classes, input_size=[1, 28, 28], mean=[0.3], std=[0.35])
    tmp = tmp_path_factory.mktemp("openvino")
    fp32 = export_onnx(model, meta, tmp / "m.onnx")
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    int8 = quantize_int8(fp32, tmp / "m.int8.onnx", images, {"images": 64, "method": "minmax"})
    return model, fp32, int8


def _images(n: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))


@pytest.mark.slow
def test_openvino_logits_match_torch_and_onnx_runtime(exported):
    from cnnlab.deploy.engines import open_classifier
    from cnnlab.deploy.onnx_runtime import OnnxClassifier

    model, fp32, int8 = exported
    ov32 = open_classifier(fp32, engine="openvino", threads=1)
    assert isinstance(ov32, openvino_runtime.OpenVinoClassifier) and ov32.meta.num_classes == 10
    images = _images()
    x = torch.from_numpy(ov32.normalize(images))
    with torch.inference_mode():
        want = main_output(model(x))
    for batch in (1, 5, 32):  # the dynamic batch axis, at several sizes in turn
        got = ov32.logits(images[:batch], tta=False)
        torch.testing.assert_close(got, want[:batch], atol=1e-4, rtol=1e-4)
    # the int8 QDQ file: OpenVINO runs its own int8 kernels (on CPUs without VNNI with 7-bit weights against the
    # int16 saturation of AVX2's u8·s8 products), so not ORT's numbers to the bit: both are held to the fp32 logits
    ort8 = OnnxClassifier(int8).logits(images, tta=False)
    ov8 = openvino_runtime.OpenVinoClassifier(int8, threads=1).logits(images, tta=False)
    ort_err, ov_err = float((ort8 - want).abs().max()), float((ov8 - want).abs().max())
    print(f"int8 max |Δlogit| vs fp32 torch: onnxruntime {ort_err:.4f}, openvino {ov_err:.4f}")
    assert ov_err < max(3 * ort_err, 0.05 * float(want.abs().max()))
    assert (ov8.argmax(1) == want.argmax(1)).float().mean() >= 0.85


@pytest.mark.slow
def test_openvino_precisions_offered_by_the_cpu_only(exported):
    _, fp32, _ = exported
    offered = openvino_runtime.cpu_precisions()
    assert offered[0] == "fp32" and set(offered) <= {"fp32", "bf16", "fp16"}
    missing = next((p for p in ("bf16", "fp16") if p not in offered), None)
    if missing is not None:  # e.g. bf16 on an AVX2-only CPU: refused in one line, never emulated
        with pytest.raises(ValueError, match=f"offers {', '.join(offered)} on this CPU"):
            openvino_runtime.OpenVinoClassifier(fp32, precision=missing)
    with pytest.raises(ValueError, match="runs with onnxruntime or openvino"):
        from cnnlab.deploy.engines import open_classifier

        open_classifier(fp32, engine="tensorrt")


def test_without_the_extra_one_line_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    assert not openvino_runtime.available()
    with pytest.raises(ValueError) as err:
        openvino_runtime.OpenVinoClassifier(tmp_path / "m.onnx")
    assert str(err.value) == "running ONNX files with OpenVINO needs the openvino extra: pip install 'cnnlab[openvino]'"


def test_bench_without_the_extra_keeps_its_onnx_runtime_rows(monkeypatch):
    """bench says in one line why the OpenVINO rows are missing, and measures the others."""
    from cnnlab.deploy import bench

    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setattr(bench, "OnnxClassifier", lambda path, threads: path)
    lines = []
    engines = bench._onnx_engines("m.onnx", "m.int8.onnx", 1, lines.append)
    assert list(engines) == ["onnxruntime fp32", "onnxruntime int8"]
    assert lines == [f"no OpenVINO rows: {openvino_runtime.MISSING}"]


def test_bench_keeps_its_other_rows_when_openvino_cannot_compile_a_graph(monkeypatch):
    """Each OpenVINO row on its own: one precision the plugin cannot compile (bf16 with oneDNN capped at AVX2 on a
    CPU that lists BF16) leaves the others, and says which row is missing and why."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'cnnlab[openvino]'")
    from cnnlab.deploy import bench

    def compile_some(path, threads, precision="fp32"):
        if precision == "bf16" or path == "m.int8.onnx":
            raise ValueError(f"{path}: OpenVINO cannot compile it (an op it lacks)")
        return path

    monkeypatch.setattr(bench, "OnnxClassifier", lambda path, threads: path)
    monkeypatch.setattr(bench, "OpenVinoClassifier", compile_some)
    monkeypatch.setattr(openvino_runtime, "cpu_precisions", lambda: ["fp32", "bf16"])
    lines = []
    assert list(bench._onnx_engines("m.onnx", "m.int8.onnx", 1, lines.append)) == [
        "onnxruntime fp32",
        "onnxruntime int8",
        "openvino fp32",
    ]
    assert lines == [
        "no openvino int8 row: m.int8.onnx: OpenVINO cannot compile it (an op it lacks)",
        "no openvino bf16 row: m.onnx: OpenVINO cannot compile it (an op it lacks)",
    ]


def test_an_openvino_error_is_told_by_its_reason_line():
    trace = (
        "Exception from src/inference/src/cpp/core.cpp:117:\nException from src/inference/src/dev/plugin.cpp:59:\n"
        "Check '!getSupportedPrimitiveDescriptors().empty()' failed at src/plugins/intel_cpu/src/node.cpp:345:\n"
        "Supported primitive descriptors list is empty for node: node_max_pool2d type: Pooling\n\n"
    )
    assert openvino_runtime._reason(RuntimeError(trace)) == (
        "Supported primitive descriptors list is empty for node: node_max_pool2d type: Pooling"
    )
    assert openvino_runtime._reason(RuntimeError("")) == "RuntimeError"


def _result(rows: dict[str, tuple[float, float, float, float]]) -> dict:
    """A bench result from engine → (batch-256 samples/s, batch-1 p50 ms, accuracy, argmax agreement), eager first."""
    out = {"metric": "accuracy", "batches": [1, 256], "rows": [], "parity": {}}
    for i, (name, (rate, p50, acc, agree)) in enumerate(rows.items()):
        precision = "int8 QDQ" if name.endswith("int8") else "fp32"
        out["rows"].append(
            {
                "engine": name,
                "precision": precision,
                "accuracy": acc,
                "b1": {"p50_ms": p50},
                "b256": {"samples_per_s": rate},
            }
        )
        if i:
            out["parity"][name] = {"max_abs": 0.1, "argmax_agree": agree, "images": 256}
    return out


def test_the_recommendation_weighs_openvino_by_measured_speed_and_agreement():
    rows = {
        "pytorch fp32 eager NCHW": (1000.0, 1.0, 0.90, 1.0),
        "onnxruntime fp32": (2400.0, 0.3, 0.90, 1.0),
        "onnxruntime int8": (6000.0, 0.12, 0.90, 0.996),
        "openvino fp32": (3000.0, 0.25, 0.90, 1.0),
        "openvino int8": (7000.0, 0.10, 0.90, 0.992),
    }
    rec = recommend(_result(rows))
    assert (rec["engine"], rec["vs_eager"], rec["b1_p50_ms"], rec["left_out"]) == ("openvino int8", 7.0, 0.1, [])
    # measured slower than ORT int8 on this machine: not recommended, whatever OpenVINO does elsewhere
    rows["openvino int8"] = (5900.0, 0.09, 0.90, 0.992)
    assert recommend(_result(rows))["engine"] == "onnxruntime int8"
    # fastest, same accuracy, but its predictions part from eager's on too many images: left out
    rows["openvino int8"] = (9000.0, 0.09, 0.90, MIN_AGREEMENT - 0.01)
    rec = recommend(_result(rows))
    assert rec["engine"] == "onnxruntime int8" and rec["left_out"] == ["openvino int8"]
    assert "agree with eager on < 98%" in describe_recommendation(rec)
    # no int8 keeps the accuracy: OpenVINO fp32, the fastest float engine measured, is the one
    rows["onnxruntime int8"] = (6000.0, 0.12, 0.88, 0.99)
    rows["openvino int8"] = (7000.0, 0.10, 0.88, 0.99)
    assert recommend(_result(rows))["engine"] == "openvino fp32"


def test_export_recommended_maps_bench_rows_to_files():
    from cnnlab.cli.deploy import _exported_int8

    assert _exported_int8("openvino int8") is True and _exported_int8("onnxruntime int8") is True
    assert _exported_int8("openvino fp32") is False and _exported_int8("openvino bf16") is False
    assert _exported_int8("cnnlab evaluate path") is None and _exported_int8("pytorch fp32 eager NCHW") is None


@pytest.mark.slow
def test_openvino_runs_the_batch_it_is_given(exported):
    """OpenVINO's output buffers are reused between calls: each call's logits are its own copy."""
    _, fp32, _ = exported
    ov32 = openvino_runtime.OpenVinoClassifier(fp32, threads=1)
    x = ov32.normalize(_images(4))
    first = ov32.run(x)
    kept = first.copy()
    ov32.run(np.zeros_like(x))
    np.testing.assert_array_equal(first, kept)


# the script of the test below: two classifiers dropped in the order they were made (not the reverse), then a
# signal with a Python handler on the thread that loaded OpenVINO
DROP_THEN_SIGNAL = """
import gc, os, signal, sys
from cnnlab.deploy.openvino_runtime import OpenVinoClassifier
first = OpenVinoClassifier(sys.argv[1], threads=1)
second = OpenVinoClassifier(sys.argv[2], threads=1)
del first
gc.collect()
del second
gc.collect()
signal.signal(signal.SIGUSR1, lambda *_: print("handled"))
os.kill(os.getpid(), signal.SIGUSR1)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")
def test_classifiers_dropped_in_any_order_leave_signal_handling_safe(exported):
    """OpenVINO's CPU plugin gives the thread that loads it an alternate signal stack and, on unload, puts back the
    one it found: with a Core per classifier, dropped first-made first, the thread kept a freed stack and the next
    Python signal handler killed the process (SIGSEGV; in the test suite, a training test after `bench`). The
    classifiers share one Core. A subprocess: what fails is the interpreter."""
    _, fp32, int8 = exported
    r = subprocess.run(
        [sys.executable, "-c", DROP_THEN_SIGNAL, str(fp32), str(int8)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (r.returncode, r.stdout.strip()) == (0, "handled"), r.stderr[-2000:]


def test_every_openvino_call_uses_one_core(exported):
    _, fp32, _ = exported
    shared = openvino_runtime.core()
    openvino_runtime.OpenVinoClassifier(fp32, threads=1)
    assert openvino_runtime.core() is shared


@pytest.mark.slow
def test_openvino_compiles_a_repeated_batch_size_for_its_shape(exported, monkeypatch):
    """A batch size seen twice gets a request compiled for its fixed shape (faster than the dynamic batch axis),
    with the same logits; one seen once, or more sizes than STATIC_SHAPES, keep the dynamic request; a shape the
    graph cannot be fixed to falls back to it."""
    _, fp32, _ = exported
    ov32 = openvino_runtime.OpenVinoClassifier(fp32, threads=1)
    x = ov32.normalize(_images(8))
    dynamic = ov32.run(x)
    assert ov32._fixed == {}  # one call: no compilation for a size that may never come back
    fixed = ov32.run(x)
    assert list(ov32._fixed) == [(8, 1, 28, 28)] and ov32._fixed[(8, 1, 28, 28)] is not ov32._request
    np.testing.assert_allclose(fixed, dynamic, atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(openvino_runtime, "STATIC_SHAPES", 2)
    compiled = []
    real = ov32._compile

    def counted(shape):
        compiled.append(shape)
        if shape[0] == 3:
            raise ValueError("m.onnx: OpenVINO cannot compile it (a shape it refuses)")
        return real(shape)

    ov32._compile = counted
    for n in (3, 3, 3, 5, 5, 5):
        np.testing.assert_allclose(ov32.run(x[:n]), dynamic[:n], atol=1e-5, rtol=1e-5)
    assert compiled == [(3, 1, 28, 28)]  # once; then the dynamic request stands in for it, and 5 finds no room
    assert ov32._fixed[(3, 1, 28, 28)] is ov32._request and (5, 1, 28, 28) not in ov32._fixed
