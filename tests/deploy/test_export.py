"""ONNX export: parity with torch for each family, the metadata round trip, and the bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cnnlab.deploy.export import export_onnx, read_onnx_meta, to_onnx_proto
from cnnlab.deploy.onnx_runtime import OnnxClassifier
from cnnlab.io import save_model
from cnnlab.models import create_model, main_output
from tests.deploy.conftest import run_cli


def _meta(c: int, size: int, classes: int = 10) -> dict:
    return {
        "classes": [f"class {i}" for i in range(classes)],
        "input_size": [c, size, size],
        "mean": [0.4] * c,
        "std": [0.3] * c,
        "mode": "L" if c == 1 else "RGB",
        "dataset": "fashion-mnist",
        "tta": False,
        "precision": "fp32",
    }


def _randomize_bn(model: nn.Module) -> nn.Module:
    """BN statistics far from the identity, so that folding them matters."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize(
    "name, kwargs, c, size",
    [
        ("lenet5", {}, 1, 28),
        ("lecture_cnn", {}, 1, 28),
        ("resnet18", {"small_input": True}, 1, 32),
        ("googlenet", {}, 3, 32),
    ],
)
def test_onnx_parity(name, kwargs, c, size, tmp_path):
    model = _randomize_bn(create_model(name, num_classes=10, in_chans=c, **kwargs))
    path = export_onnx(model, {"model": name, "model_args": kwargs, **_meta(c, size)}, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)  # folded
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.randn(batch, c, size, size, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            want = main_output(model(x)).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4
        assert (got.argmax(1) == want.argmax(1)).all()


def test_metadata_round_trip(tmp_path):
    meta = {"model": "lenet5", "model_args": {}, **_meta(1, 28), "tta": True, "metrics": {"test_accuracy": 0.9}}
    path = export_onnx(create_model("lenet5", num_classes=10, in_chans=1), meta, tmp_path / "m.onnx", "runs/x")
    record = read_onnx_meta(path)
    for key in ("model", "classes", "input_size", "mean", "std", "mode", "dataset", "tta", "metrics"):
        assert record[key] == meta[key], key
    assert record["source_run"] == "runs/x" and record["bn_folded"]
    # the plain props a stranger reads without cnnlab
    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(props["classes"]) == meta["classes"] and json.loads(props["input_size"]) == [1, 28, 28]
    assert json.loads(props["mean"]) == [0.4] and json.loads(props["std"]) == [0.3]
    assert props["input_mode"] == "L" and props["tta"] == "flip" and props["source_run"] == "runs/x"
    assert "(x - mean)/std" in props["preprocess"]
    assert OnnxClassifier(path).meta["classes"] == meta["classes"]


def test_untraceable_module_is_named():
    class Gate(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # data-dependent control flow

    model = nn.Sequential(nn.Conv2d(1, 4, 3), Gate(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"cannot trace module '1' \(Gate\)"):
        to_onnx_proto(model.eval(), [1, 8, 8])


def test_unknown_input_size_asks_for_input(tmp_path):
    # model files always record their input size now (save_model fills it in); a model handed over in Python may not
    model = create_model("lenet5", num_classes=10, in_chans=1).eval()
    meta = {k: v for k, v in _meta(1, 28).items() if k != "input_size"}
    with pytest.raises(ValueError, match=r"--input C,H,W"):
        export_onnx(model, meta, tmp_path / "m.onnx")
    save_model(tmp_path / "model.safetensors", model, _meta(1, 28))
    run_cli("export", tmp_path / "model.safetensors", "--input", "1,28,28", "--out", tmp_path / "m.onnx")
    assert read_onnx_meta(tmp_path / "m.onnx")["input_size"] == [1, 28, 28]


def test_bad_onnx_files(tmp_path, fake_idx):
    from PIL import Image

    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(tmp_path / "a.png")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    _, err = run_cli("predict", junk, tmp_path / "a.png", code=2)
    assert "not a valid ONNX model" in err and len(err.strip().splitlines()) == 1

    # a foreign classifier: no cnnlab metadata
    path = export_onnx(create_model("lenet5", num_classes=10, in_chans=1), _meta(1, 28), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    _, err = run_cli("evaluate", tmp_path / "foreign.onnx", "--data-dir", fake_idx, code=2)
    assert "without cnnlab metadata" in err and "--input" in err and len(err.strip().splitlines()) == 1
    stdout, _ = run_cli(
        "predict",
        tmp_path / "foreign.onnx",
        tmp_path / "a.png",
        "--input",
        "1,28,28",
        "--mean",
        "0.4",
        "--std",
        "0.3",
        "--json",
    )
    top = json.loads(stdout)[0]["top"]
    assert len(top) == 3 and top[0]["class"] == str(top[0]["index"])
