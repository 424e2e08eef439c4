"""What a newcomer meets first: `--version`, `cnnlab models`, sample images to predict on, family defaults in
`summary`, a help text for every flag, and CNNLAB_QUICK for trying a documented command in seconds."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.train import apply_quick_caps, quick_mode
from tests.cli.test_options import _help, _options
from tests.helpers import run_cli


def test_version():
    import cnnlab as pkg

    assert run_cli("--version").stdout.strip() == f"cnnlab {pkg.__version__}"


def test_models_lists_with_a_pattern_and_a_description():
    lines = run_cli("models").stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert {"lenet5", "lecture_cnn", "vgg16", "resnet50"} <= set(names) and names == sorted(names)
    assert any(line.startswith("lenet5 ") and "LeNet-5" in line for line in lines)
    assert [line.split()[0] for line in run_cli("models", "resnet*").stdout.splitlines()] == [
        "resnet101",
        "resnet152",
        "resnet18",
        "resnet34",
        "resnet50",
    ]
    assert "no registered model matches 'nosuch*'" in run_cli("models", "nosuch*", code=2).stderr
    assert "vgg16" in run_cli("summary", "--list").stdout.split()


@pytest.mark.slow
def test_summary_uses_the_family_defaults():
    info = json.loads(run_cli("summary", "vgg16", "--json").stdout)
    assert info["output"] == [1000] and info["input"] == [3, 224, 224]
    info = json.loads(run_cli("summary", "lenet5", "--json").stdout)
    assert info["output"] == [10] and info["input"] == [1, 28, 28]
    info = json.loads(run_cli("summary", "resnet18", "--input", "1x32x32", "--classes", "10", "--json").stdout)
    assert info["output"] == [10] and info["input"] == [1, 32, 32]


def test_datasets_samples_writes_one_png_per_class(fake_idx, tmp_path):
    from cnnlab.data import load_dataset

    out = tmp_path / "samples"
    proc = run_cli("datasets", "samples", "fashion-mnist", "--n", 4, "--out", out, "--data-dir", fake_idx)
    files = sorted(out.glob("*.png"))
    assert len(files) == 4 and len(proc.stdout.splitlines()) == 4
    test = load_dataset("fashion-mnist", fake_idx, 0).test
    for line in proc.stdout.splitlines():  # "<path>  (<class>, test image <i>)": the file is that image
        path, rest = line.split("  (")
        cls, index = rest.rstrip(")").split(", test image ")
        with Image.open(path) as im:
            assert im.size == (28, 28) and im.mode == "L"
            assert np.asarray(im).flatten().tolist() == test.images[int(index), 0].flatten().tolist()
        assert test.classes[int(test.labels[int(index)])] == cls
        assert path.endswith(cls.lower().replace(" ", "-").replace("/", "-") + ".png")
    bad = run_cli("datasets", "samples", "fashion-mnist", "--n", 11, "--out", out, "--data-dir", fake_idx, code=None)
    assert bad.returncode == 2 and "at most" in bad.stderr


@pytest.mark.fashion
def test_shipped_sample_images_are_the_fashion_test_images(fashion_dir):
    from pathlib import Path

    from cnnlab.data import load_dataset

    folder = Path(__file__).resolve().parents[2] / "examples/images"
    test = load_dataset("fashion-mnist", fashion_dir, 0).test
    for name, index in (("ankle-boot", 0), ("pullover", 1), ("trouser", 2), ("shirt", 4), ("coat", 6)):
        with Image.open(folder / f"{name}.png") as im:
            assert np.asarray(im).flatten().tolist() == test.images[index, 0].flatten().tolist()
    assert "MIT" in (folder / "README.md").read_text() and "Zalando SE" in (folder / "README.md").read_text()


@pytest.mark.parametrize("verb", ["evaluate", "predict", "datasets", "summary", "augment", "models"])
def test_every_flag_has_help_with_one_default(verb):
    options = _options(_help(verb))
    for flag, text in options.items():
        if flag in ("-h",):
            continue
        help_ = text.split(None, 1)[1] if " " in text.strip() else ""
        assert len(help_) > 12 + len(flag), f"{verb} {flag} has no help: {text!r}"
        assert text.count("(default") <= 1 and "(default: None)" not in text, f"{verb} {flag}: {text}"


def test_quick_mode_caps_training(monkeypatch):
    monkeypatch.delenv("CNNLAB_QUICK", raising=False)
    assert not quick_mode()
    for value, on in (("1", True), ("0", False), ("yes", True), ("", False)):
        monkeypatch.setenv("CNNLAB_QUICK", value)
        assert quick_mode() is on
    capped = apply_quick_caps({"epochs": 10, "model": "lenet5"})
    assert capped == {"epochs": 1, "model": "lenet5", "max_train_samples": 2000, "time_limit": "3s"}
    assert apply_quick_caps({"max_train_samples": 300})["max_train_samples"] == 300
    assert "max_train_samples" not in apply_quick_caps({"epochs": 3}, resume=True)


@pytest.mark.slow
def test_quick_mode_train_run(fake_idx, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "--data-dir",
        fake_idx,
        "--epochs",
        4,
        "--batch-size",
        32,
        "--val-split",
        100,
        "--out",
        out,
        env={"CNNLAB_QUICK": "1"},
    )
    assert "quick mode" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 1 and config["max_train_samples"] == 2000 and config["time_limit"] == "3s"
