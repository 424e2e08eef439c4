"""`cnnlab train` as a user meets it: the run folder, refusals, config files and flags, Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from tests.helpers import run_cli, subprocess_env


def test_run_folder_contents(toy_run):
    names = {p.name for p in toy_run.iterdir()}
    assert {"model.safetensors", "config.json", "history.csv", "metrics.json", "curves.png"} <= names
    metrics = json.loads((toy_run / "metrics.json").read_text())
    assert 0.9 < metrics["test_accuracy"] <= 1 and metrics["epochs"] == 3 and metrics["train_seconds"] > 0
    assert {"torch", "cnnlab", "python"} <= set(metrics["versions"]) and "cpu" in metrics["hardware"]
    history = (toy_run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy") and len(history) == 4
    config = json.loads((toy_run / "config.json").read_text())
    assert config["model"] == "lenet5" and config["epochs"] == 3
    with Image.open(toy_run / "curves.png") as im:
        assert im.width > 600


def test_existing_run_folder_refused(toy_run, fake_idx):
    proc = run_cli("train", "--data-dir", fake_idx, "--epochs", 1, "--out", toy_run, code=None)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr


def test_unknown_model_lists_close_names(fake_idx, tmp_path):
    proc = run_cli("train", "--data-dir", fake_idx, "--model", "lenet_5", "--out", tmp_path / "r", code=None)
    assert proc.returncode == 2 and "did you mean: lenet5" in proc.stderr


def test_missing_dataset_message(tmp_path):
    (tmp_path / "data").mkdir()  # a run folder may not sit inside the data folder
    proc = run_cli("train", "--data", "mnist", "--data-dir", tmp_path / "data", "--out", tmp_path / "r", code=None)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "cnnlab datasets get mnist" in proc.stderr


@pytest.mark.slow
def test_config_file_and_flags(fake_idx, tmp_path):
    (tmp_path / "recipe.yaml").write_text("model: lenet5\nepochs: 3\nbatch-size: 64\noptimizer: sgd\nlr: 0.05\n")
    run_cli(
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


@pytest.mark.slow
def test_ctrl_c_keeps_last_finished_epoch(fake_idx, tmp_path):
    """A true subprocess: Ctrl-C is a SIGINT delivered to a process, which this test sends to a running
    `python -m cnnlab train` once its first epoch is written."""
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
        env=subprocess_env(),
        # as from a terminal: a suite started in the background of a script (`cmd &`) passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300  # a hang guard, not a speed check
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
    run_cli("evaluate", out, "--data-dir", fake_idx, "--json")  # the folder is a valid run


def test_recipe_epochs_yield_to_the_budget():
    from cnnlab.cli import build_parser
    from cnnlab.cli.train import _train_values

    args = build_parser().parse_args(["train", "--recipe", "fast", "--time-budget", "30s"])
    assert "epochs" not in _train_values(args)  # the recipe's 2 epochs would end a 30 s run early
    args = build_parser().parse_args(["train", "--recipe", "fast", "--time-budget", "30s", "--epochs", "3"])
    assert _train_values(args)["epochs"] == 3
