"""The CLI as a user meets it: real subprocesses, files on disk."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.images import tensor_to_image


def cnnlab(*args, check=True, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cnnlab {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained_run(fake_idx, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "toy"
    proc = cnnlab(
        "train",
        "--data",
        "fashion-mnist",
        "--data-dir",
        fake_idx,
        "--model",
        "lenet5",
        "--epochs",
        3,
        "--batch-size",
        32,
        "--lr",
        3e-3,
        "--val-split",
        100,
        "--out",
        out,
    )
    assert "test accuracy" in proc.stdout and str(out) in proc.stdout
    return out


def test_run_folder_contents(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"model.safetensors", "config.json", "history.csv", "metrics.json", "curves.png"} <= names
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.9 < metrics["test_accuracy"] <= 1 and metrics["epochs"] == 3 and metrics["train_seconds"] > 0
    assert {"torch", "cnnlab", "python"} <= set(metrics["versions"]) and "cpu" in metrics["hardware"]
    history = (trained_run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy") and len(history) == 4
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"] == "lenet5" and config["epochs"] == 3
    with Image.open(trained_run / "curves.png") as im:
        assert im.width > 600


def test_evaluate_reproduces_metrics_exactly(trained_run, fake_idx):
    proc = cnnlab("evaluate", trained_run, "--data-dir", fake_idx, "--json")
    result = json.loads(proc.stdout)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert result["accuracy"] == metrics["test_accuracy"]
    assert len(result["confusion"]) == 10 and sum(map(sum, result["confusion"])) == 200
    assert set(result["macro_avg"]) == {"precision", "recall", "f1", "support"} and len(result["most_confused"]) <= 10
    assert (trained_run / "confusion.png").exists()
    text = cnnlab("evaluate", trained_run, "--data-dir", fake_idx).stdout
    assert "confusion matrix" in text and "Ankle boot" in text and "precision" in text and "macro avg" in text


def test_predict_png_files(trained_run, fake_idx, tmp_path):
    test = load_dataset("fashion-mnist", data_dir=fake_idx).test
    files = []
    for i in range(20):
        files.append(tmp_path / f"{i}.png")
        tensor_to_image(test.images[i]).save(files[-1])
    out = json.loads(cnnlab("predict", trained_run, *files, "--top", 3, "--json").stdout)
    hits = sum(r["top"][0]["index"] == int(test.labels[i]) for i, r in enumerate(out))
    assert hits >= 17 and len(out[0]["top"]) == 3
    assert abs(sum(t["probability"] for t in out[0]["top"]) - 1) < 0.2


def test_predict_rgb_photo_on_grayscale_model(trained_run, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(tmp_path / "c.jpg")
    proc = cnnlab("predict", trained_run, tmp_path / "c.jpg")
    assert "converted RGB image to grayscale" in proc.stderr and "resized 40×50 to 28×28" in proc.stderr
    assert proc.stdout.startswith(str(tmp_path / "c.jpg"))


def test_existing_run_folder_refused(trained_run, fake_idx):
    proc = cnnlab("train", "--data-dir", fake_idx, "--epochs", 1, "--out", trained_run, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr


def test_unknown_model_lists_close_names(fake_idx, tmp_path):
    proc = cnnlab("train", "--data-dir", fake_idx, "--model", "lenet_5", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "did you mean: lenet5" in proc.stderr


def test_missing_dataset_message(tmp_path):
    (tmp_path / "data").mkdir()  # a run folder may not sit inside the data folder
    proc = cnnlab("train", "--data", "mnist", "--data-dir", tmp_path / "data", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "cnnlab datasets get mnist" in proc.stderr


def test_summary_and_list():
    out = cnnlab("summary", "lecture_cnn").stdout
    assert "1,413,834" in out and "256×3×3" in out
    assert "lenet5" in cnnlab("summary", "--list").stdout
    info = json.loads(cnnlab("summary", "lenet5", "--input", "3x32x32", "--classes", 5, "--json").stdout)
    assert info["output"] == [5] and info["layers"][0]["output"] == [6, 32, 32]


def test_datasets_listing(fake_idx):
    out = cnnlab("datasets", "--data-dir", fake_idx).stdout
    assert f"found: {fake_idx}" in out and "cifar10" in out


def test_config_file_and_flags(fake_idx, tmp_path):
    (tmp_path / "recipe.yaml").write_text("model: lenet5\nepochs: 3\nbatch-size: 64\noptimizer: sgd\nlr: 0.05\n")
    cnnlab(
        "train",
        "--config",
        tmp_path / "recipe.yaml",
        "--epochs",
        1,
        "--data-dir",
        fake_idx,
        "--out",
        tmp_path / "r",
        "--precision",
        "fp32",
    )
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["optimizer"] == "sgd" and cfg["batch_size"] == 64


def test_ctrl_c_keeps_last_finished_epoch(fake_idx, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnnlab",
            "train",
            "--data-dir",
            fake_idx,
            "--model",
            "lecture_cnn",
            "--epochs",
            "200",
            "--batch-size",
            "16",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a suite started in the background of a script (`cmd &`) passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until one epoch has finished
        hist = out / "history.csv"
        if hist.exists() and len(hist.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "interrupted" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] and metrics["epochs"] >= 1 and metrics["test_accuracy"] is not None
    cnnlab("evaluate", out, "--data-dir", fake_idx, "--json")  # the folder is a valid run


def test_flip_tta_is_the_mean_of_image_and_mirror_logits(trained_run, fake_idx):
    from cnnlab.infer import predict_logits
    from cnnlab.io import load_model

    model, meta = load_model(trained_run)
    images = load_dataset("fashion-mnist", data_dir=fake_idx).test.images[:40]
    plain = predict_logits(model, images, meta.mean, meta.std, "cpu", "fp32")
    mirror = predict_logits(model, images.flip(3), meta.mean, meta.std, "cpu", "fp32")
    tta = predict_logits(model, images, meta.mean, meta.std, "cpu", "fp32", tta=True)
    assert torch.allclose(tta, (plain + mirror) / 2, atol=1e-5) and not torch.allclose(tta, plain, atol=1e-3)
    # the run was trained without --tta: evaluate follows the run unless told; --tta changes the result
    off = json.loads(cnnlab("evaluate", trained_run, "--data-dir", fake_idx, "--json").stdout)
    on = json.loads(cnnlab("evaluate", trained_run, "--data-dir", fake_idx, "--json", "--tta").stdout)
    assert off["accuracy"] == json.loads((trained_run / "metrics.json").read_text())["test_accuracy"]
    assert on["loss"] != off["loss"]
