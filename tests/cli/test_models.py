"""`cnnlab summary`, `cnnlab models` and `cnnlab datasets` as a user meets them."""

import json

import pytest

from cnnlab.models.notation import COURSE_LENET5
from tests.helpers import run_cli


@pytest.mark.slow
def test_summary_and_list():
    out = run_cli("summary", "lecture_cnn").stdout
    assert "1,413,834" in out and "256×3×3" in out
    assert "lenet5" in run_cli("summary", "--list").stdout
    info = json.loads(run_cli("summary", "lenet5", "--input", "3x32x32", "--classes", 5, "--json").stdout)
    assert info["output"] == [5] and info["layers"][0]["output"] == [6, 32, 32]


def test_datasets_listing(fake_idx):
    out = run_cli("datasets", "--data-dir", fake_idx).stdout
    assert f"found: {fake_idx}" in out and "cifar10" in out


@pytest.mark.slow
def test_cli_summary_depth_json_and_notation():
    out = json.loads(run_cli("summary", "resnet18", "--input", "3x64x64", "--depth", "1", "--json").stdout)
    assert [r["name"] for r in out["layers"]][-3:] == ["avgpool", "dropout", "fc"] and out["notation"] is None
    assert out["layers"][4]["name"] == "layer1" and out["layers"][4]["type"] == "Sequential"
    assert run_cli("summary", "lenet5", "--notation").stdout.strip() == "CL6-MP4-CL16p0-MP4-FC120-FC84-FC10"
    proc = run_cli("summary", "resnet18", "--notation", code=None)
    assert proc.returncode == 2 and "not a plain chain" in proc.stderr
    text = run_cli("summary", COURSE_LENET5, "--classes", 5).stdout
    assert "64×7×7" in text and "1,606,144" in text and "notation: CL32-MP4-CL64-MP4-FC512-FC5" in text
