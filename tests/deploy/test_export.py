"""ONNX export: parity with torch for each family, the metadata round trip, and the bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cnnlab.deploy.export import export_onnx, to_onnx_proto
from cnnlab.deploy.onnx_runtime import OnnxClassifier
from cnnlab.io import RunMeta, save_model
from cnnlab.models import create_model, main_output
from tests.helpers import run_cli


def _meta(model: nn.Module, c: int, size: int, **values) -> RunMeta:
    classes = [f"class {i}" for i in range(model.model_args["num_classes"])]
    record = {"classes": classes, "input_size": [c, size, size], "mean": [0.4] * c, "std": [0.3] * c}
    return RunMeta.for_model(model, **record, dataset="fashion-mnist", **values)


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


@pytest.mark.slow
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
    path = export_onnx(model, _meta(model, c, size), tmp_path / "m.onnx")
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


@pytest.mark.slow
def test_metadata_round_trip(tmp_path):
    model = create_model("lenet5", num_classes=10, in_chans=1)
    meta = _meta(model, 1, 28, tta=True, metrics={"test_accuracy": 0.9})
    path = export_onnx(model, meta, tmp_path / "m.onnx", "runs/x")
    back = OnnxClassifier(path).meta
    assert back.replace(export=None) == meta and back.mode == "L"
    assert back.export.source_run == "runs/x" and back.export.precision == "fp32"
    # the plain props a stranger reads without cnnlab
    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(props["classes"]) == list(meta.classes) and json.loads(props["input_size"]) == [1, 28, 28]
    assert json.loads(props["mean"]) == [0.4] and json.loads(props["std"]) == [0.3]
    assert props["input_mode"] == "L" and props["tta"] == "flip" and props["source_run"] == "runs/x"
    assert "(x - mean)/std" in props["preprocess"]
    assert json.loads(props["cnnlab"])["bn_folded"] is True


@pytest.mark.slow
def test_untraceable_module_is_named():
    class Gate(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # data-dependent control flow

    model = nn.Sequential(nn.Conv2d(1, 4, 3), Gate(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"cannot trace module '1' \(Gate\)"):
        to_onnx_proto(model.eval(), [1, 8, 8])


@pytest.mark.slow
def test_export_input_size_flag(tmp_path):
    model = create_model("lenet5", num_classes=10, in_chans=1).eval()
    save_model(tmp_path / "model.safetensors", model, _meta(model, 1, 28))
    run_cli("export", tmp_path / "model.safetensors", "--input", "1,28,28", "--out", tmp_path / "m.onnx")
    assert OnnxClassifier(tmp_path / "m.onnx").meta.input_size == (1, 28, 28)
    err = run_cli(
        "export", tmp_path / "model.safetensors", "--input", "3,28,28", "--out", tmp_path / "c.onnx", code=2
    ).stderr
    assert "'mean' must be 3 number(s)" in err and not (tmp_path / "c.onnx").exists()


@pytest.mark.slow
def test_bad_onnx_files(tmp_path, fake_idx):
    from PIL import Image

    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(tmp_path / "a.png")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    err = run_cli("predict", junk, tmp_path / "a.png", code=2).stderr
    assert "not a valid ONNX model" in err and len(err.strip().splitlines()) == 1

    # a foreign classifier: no cnnlab metadata
    model = create_model("lenet5", num_classes=10, in_chans=1)
    path = export_onnx(model, _meta(model, 1, 28), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    err = run_cli("evaluate", tmp_path / "foreign.onnx", "--data-dir", fake_idx, code=2).stderr
    assert "without cnnlab metadata" in err and "--input" in err and len(err.strip().splitlines()) == 1
    stdout = run_cli(
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
    ).stdout
    top = json.loads(stdout)[0]["top"]
    assert len(top) == 3 and top[0]["class"] == str(top[0]["index"])


class _Means(nn.Module):
    """Global average pooling written the three ways models write it, and a mean over the channels."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv1d(2, 6, 3) if how == "1d" else nn.Conv2d(2, 6, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6 if how != "channels" else 25, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        if self.how == "adaptive":
            y = self.pool(y).flatten(1)
        elif self.how == "channels":  # not global pooling: stays a ReduceMean
            y = y.mean(1).flatten(1)
        else:  # x.mean over the spatial axes, keeping no dims
            y = y.mean(tuple(range(2, y.ndim)))
        return self.fc(y)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, opset", [("adaptive", None), ("mean", None), ("1d", None), ("channels", None), ("adaptive", 17)]
)
def test_global_average_pooling_is_written_as_an_average_pool(how, opset):
    """The file's global mean is an AveragePool over the whole map (OpenVINO ran its ReduceMean slowly), in the
    exporter's opset and converted to an older one (17: before the rewrite, the converter could not take a model with
    global pooling there), with the same outputs."""
    torch.manual_seed(0)
    model = _Means(how).eval()
    size = [2, 7] if how == "1d" else [2, 7, 7]
    proto = to_onnx_proto(model, size, opset)
    ops = [n.op_type for n in proto.graph.node]
    if how == "channels":
        assert "ReduceMean" in ops and "AveragePool" not in ops
    else:
        assert "ReduceMean" not in ops and ops.count("AveragePool") == 1
        pool = next(n for n in proto.graph.node if n.op_type == "AveragePool")
        assert list(onnx.helper.get_attribute_value(pool.attribute[0])) == [5] * (len(size) - 1)
    onnx.checker.check_model(proto, full_check=True)
    read = {i for n in proto.graph.node for i in n.input}
    assert all(t.name in read for t in proto.graph.initializer)  # the rewritten mean's axes went with it
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(4, *size)
    with torch.inference_mode():
        want = model(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], want, atol=1e-5, rtol=1e-5)


class _Taps(nn.Module):
    """A ReLU that only a max pool reads (moved), one a second layer also reads and one that is the output (kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)

    def forward(self, x):
        a = self.pool(torch.relu(self.conv1(x)))  # moved
        b = torch.relu(self.conv2(a))  # read by the pool and by the sum: stays
        return torch.relu(self.pool(b) + b[:, :, ::2, ::2])  # the graph's output: stays


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fast", "taps"])
def test_relus_after_pools_moves_only_a_relu_that_only_a_max_pool_reads(name):
    """The OpenVINO engine's copy of the graph: the same outputs, each moved ReLU now after its pool."""
    from cnnlab.deploy.export import relus_after_pools

    torch.manual_seed(0)
    model = create_model("CL8k3-MP4-BN-CL16k3-MP4-GAP-FC10", num_classes=10, in_chans=1) if name == "fast" else _Taps()
    proto = to_onnx_proto(_randomize_bn(model.eval()), [1, 12, 12])
    before = proto.SerializeToString()
    moved = relus_after_pools(onnx.load_from_string(before))
    onnx.checker.check_model(moved, full_check=True)
    kinds = [n.op_type for n in moved.graph.node]
    pairs = [(a, b) for a, b in zip(kinds, kinds[1:], strict=False) if {a, b} == {"Relu", "MaxPool"}]
    want = [("MaxPool", "Relu")] * 2 if name == "fast" else [("MaxPool", "Relu"), ("Relu", "MaxPool")]
    assert pairs == want
    x = np.random.default_rng(0).normal(size=(3, 1, 12, 12)).astype(np.float32)
    run = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (before, moved.SerializeToString())]
    np.testing.assert_array_equal(*(s.run(None, {"input": x})[0] for s in run))
