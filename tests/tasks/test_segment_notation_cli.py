"""A U-Net written in the course notation, trained as it is by `cnnlab train --task segment` (no decoder on top),
then read back by summary."""

import json

import pytest

from cnnlab.io import load_model
from cnnlab.models.notation import PixelClassifier, to_notation
from tests.helpers import run_cli
from tests.tasks.helpers import CLASSES, write_scene_set

UNET = "CL8k3-BN-SK-MP4-CL16k3-BN-SK-MP4-CL32k3-BN-UT16-CC-CL16k3-BN-UR8-CC-CL8k3-BN-CL5k1"


@pytest.mark.slow
def test_a_notation_unet_trains_as_the_whole_segmentation_model(tmp_path):
    scenes = write_scene_set(tmp_path / "scenes", n_train=64, n_test=16, formats=("masks",))
    out = tmp_path / "run"
    args = ["train", "--task", "segment", "--data", f"masks:{scenes}", "--model", UNET, "--epochs", "1"]
    run_cli(*args, "--batch-size", "16", "--val-split", "16", "--verbose", "0", "--threads", "1", "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segment" and 0 <= metrics["test_miou"] <= 1
    model, meta = load_model(out)
    assert isinstance(model, PixelClassifier) and meta.model == UNET and meta.task_args == {}
    assert not any(name.startswith("head.") for name in model.state_dict())  # the net itself, no second decoder
    k = len(CLASSES) + 1  # background and the four shapes: CL5k1 is already right
    assert to_notation(model) == UNET and model.classifier.out_channels == k
    text = run_cli("summary", out).stdout
    row = next(line.split() for line in text.splitlines() if line.startswith("classifier "))
    assert row[1:4] == ["Conv2d", "1/1/0", f"{k}×32×32"] and row[-1] == "1"  # jump 1: back at full resolution
    assert f"notation: {UNET}" in text


def test_a_notation_net_that_ends_below_the_input_size_is_refused(tmp_path):
    scenes = write_scene_set(tmp_path / "scenes", n_train=8, n_test=4, formats=("masks",))
    args = ["train", "--task", "segment", "--data", f"masks:{scenes}", "--model", "CL8k3-MP4-CL5k1"]
    err = run_cli(*args, "--out", tmp_path / "run", code=2).stderr
    assert "gives 5×16×16 outputs for 1×32×32 inputs; segment needs 5×32×32" in err
    assert not (tmp_path / "run").exists()
