"""int8 quantization: 7-bit weights (ORT's reduce_range) exactly where the CPU has no int8 dot-product instructions."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")
pytest.importorskip("onnxscript", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from cnnlab.deploy import quantize  # noqa: E402
from cnnlab.io.meta import RunMeta  # noqa: E402
from cnnlab.models import create_model  # noqa: E402


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory):
    from cnnlab.deploy.export import export_onnx

    torch.manual_seed(0)
    model = create_model("CL8k3-MP4-FC10", num_classes=10, in_chans=1).eval()
    meta = RunMeta.for_model(model, classes=[str(i) for i in range(10)], input_size=[1, 28, 28], mean=[0.3], std=[0.35])
    return export_onnx(model, meta, tmp_path_factory.mktemp("q") / "m.onnx")


def _weight_range(path) -> tuple[int, int]:
    """The smallest and largest int8 weight stored in a QDQ file."""
    values = [
        numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    big = [v for v in values if v.size > 16]  # weights, not zero points
    return int(min(v.min() for v in big)), int(max(v.max() for v in big))


@pytest.mark.parametrize(("flags", "seven_bits"), [((), True), (("avx512_vnni",), False), (("amx_int8",), False)])
def test_weights_use_seven_bits_only_without_vnni(fp32_file, tmp_path, monkeypatch, flags, seven_bits):
    monkeypatch.setattr(quantize, "cpu_int8_dot_flags", lambda: flags)
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = quantize.quantize_int8(fp32_file, tmp_path / "m.int8.onnx", images, {"images": 20, "method": "minmax"})
    low, high = _weight_range(out)
    assert (low >= -64 and high <= 64) if seven_bits else (low <= -100 or high >= 100)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    weights = json.loads(props["cnnlab"])["quantization"]["weights"]
    assert ("7-bit" in weights) == seven_bits
