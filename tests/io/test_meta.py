"""RunMeta: one typed reader, validator and writer of a model's metadata, for model files and ONNX props alike."""

from __future__ import annotations

import json

import pytest

from cnnlab.io import DataRecord, ExportInfo, MetaError, RunMeta
from cnnlab.models import create_model

GOOD = {
    "model": "lenet5",
    "model_args": {"num_classes": 3, "in_chans": 1},
    "classes": ["a", "b", "c"],
    "input_size": [1, 28, 28],
    "mean": [0.3],
    "std": [0.2],
}


def test_round_trip_through_json():
    meta = RunMeta.from_dict(
        {**GOOD, "tta": True, "precision": "bf16", "data": {"source": "mnist", "val_split": 0.1, "seed": 2}}, "f"
    )
    assert meta.classes == ("a", "b", "c") and meta.input_size == (1, 28, 28) and meta.mode == "L"
    assert meta.data == DataRecord("mnist", val_split=0.1, seed=2) and meta.tta and meta.precision == "bf16"
    again = RunMeta.from_json(json.dumps(meta.to_dict()), "f")
    assert again == meta and again.to_dict()["format"] == "cnnlab.model/1"


def test_for_model_fills_what_is_not_given_from_the_models_defaults():
    model = create_model("lenet5", num_classes=4)
    meta = RunMeta.for_model(model, dataset="x")
    assert meta.model == "lenet5" and meta.classes == ("0", "1", "2", "3") and meta.input_size == (1, 28, 28)
    assert len(meta.mean) == 1 and meta.dataset == "x"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_size": [1, 28]}, "'input_size' [1, 28] is not [C, H, W]"),
        ({"input_size": [1, 100000, 28]}, "out of range"),
        ({"classes": []}, "'classes' must be a list of 1"),
        ({"classes": ["a", 2, "c"]}, "'classes' must be names"),
        ({"mean": [0.3, 0.3]}, "'mean' must be 1 number(s)"),
        ({"std": [0.0]}, "'std' [0.0] must be > 0"),
        ({"std": [float("nan")]}, "'std' [nan] is not finite"),
        ({"model_args": {"num_classes": 4}}, "num_classes 4 differs from its 3 class names"),
        ({"precision": "fp8"}, "'precision' 'fp8'"),
        ({"data": {"val_split": 3}}, "'data' must be a mapping with a 'source'"),
        ({"data": {"source": "x", "seed": "3"}}, "data 'seed' '3' is not a whole number"),
    ],
)
def test_a_file_that_lies_is_refused_naming_the_file_and_key(change, message):
    with pytest.raises(MetaError) as e:
        RunMeta.from_dict({**GOOD, **change}, "some/model.safetensors")
    assert str(e.value).startswith("some/model.safetensors: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_keys_and_non_mappings():
    with pytest.raises(MetaError, match="no 'std'"):
        RunMeta.from_dict({k: v for k, v in GOOD.items() if k != "std"}, "f")
    with pytest.raises(MetaError, match="not a mapping"):
        RunMeta.from_dict([1, 2], "f")
    with pytest.raises(ValueError, match="not valid JSON"):
        RunMeta.from_json("{", "f")


def test_onnx_props_round_trip_and_plain_facts():
    meta = RunMeta.from_dict({**GOOD, "tta": True, "dataset": "d", "metrics": {"test_accuracy": 0.5}}, "f")
    props = meta.onnx_props(ExportInfo("int8", "runs/x", {"format": "QDQ"}))
    assert json.loads(props["classes"]) == ["a", "b", "c"] and props["tta"] == "flip" and props["precision"] == "int8"
    assert props["input_mode"] == "L" and props["source_run"] == "runs/x" and props["dataset"] == "d"
    back = RunMeta.from_onnx_props(props, "m.onnx")
    assert back.replace(export=None) == meta
    assert back.export == ExportInfo("int8", "runs/x", {"format": "QDQ"})


def test_onnx_props_without_or_with_foreign_metadata():
    with pytest.raises(ValueError, match="without cnnlab metadata; to run it as a classifier give --input"):
        RunMeta.from_onnx_props({}, "m.onnx")
    with pytest.raises(ValueError, match="this cnnlab reads cnnlab.onnx/1"):
        RunMeta.from_onnx_props({"cnnlab": json.dumps({"format": "other/9"})}, "m.onnx")
    lying = json.loads(RunMeta.from_dict(GOOD, "f").onnx_props()["cnnlab"])
    lying["input_size"] = [1, 1, 100000]
    with pytest.raises(MetaError, match="m.onnx: 'input_size' .* is out of range"):
        RunMeta.from_onnx_props({"cnnlab": json.dumps(lying)}, "m.onnx")


def test_foreign_classifier_metadata():
    meta = RunMeta.foreign("net.onnx", (3, 32, 32), [0.5] * 3, [0.25] * 3, 5, "net.onnx")
    assert meta.classes == ("0", "1", "2", "3", "4") and meta.mode == "RGB" and meta.export == ExportInfo()
