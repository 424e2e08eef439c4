"""Exact resume through the real CLI: SIGKILL a run mid-epoch, resume it, compare with a run never interrupted."""

import json
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from cnnlab.io import load_checkpoint
from tests.helpers import run_cli, subprocess_env

# one thread (--threads 1 in every run, OMP_NUM_THREADS=1 in the killed process): the same kernels in the same
# order in this process and the killed one (and no slowdown on a shared, busy CPU)
ENV = subprocess_env(OMP_NUM_THREADS="1")


def _args(fake_idx, out):
    return [
        "train",
        "--data-dir",
        str(fake_idx),
        "--model",
        "lenet5",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--val-split",
        "100",
        "--precision",
        "fp32",
        "--seed",
        "3",
        "--lr",
        "3e-3",
        "--schedule",
        "cosine",
        "--warmup",
        "5",
        "--augment",
        "flip,translate=2,erase=0.5,mixup,cutmix",
        "--label-smoothing",
        "0.1",
        "--patience",
        "3",
        "--checkpoint-every",
        "5",
        "--threads",
        "1",
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def killed_and_resumed(fake_idx, tmp_path_factory):
    """The run never interrupted and the resumed one run in this process; the killed one is a true subprocess,
    because SIGKILL can only be sent to a process."""
    root = tmp_path_factory.mktemp("resume")
    run_cli(*_args(fake_idx, root / "whole"))
    # 500 training images / batch 8 = 63 steps per epoch; kill at the first step checkpoint of the second epoch
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *_args(fake_idx, root / "killed"), "--verbose", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.time() + 300  # a hang guard, not a speed check
    for line in proc.stdout:
        if line.startswith("checkpoint: epoch 2 batch") or time.time() > deadline:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(root / "killed" / "checkpoint.pt")
    resumed = run_cli("train", "--resume", root / "killed")
    return root, state, resumed


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(killed_and_resumed):
    """The killed run is a true subprocess (SIGKILL); the run never interrupted and the resume run in this process."""
    root, state, resumed = killed_and_resumed
    assert state["epoch"] == 0 and 0 < state["batch"] < 63, "the kill was meant to land mid-epoch"
    assert f"resuming {root / 'killed'} at epoch 2, batch {state['batch']}" in resumed.stdout
    whole, killed = load_file(root / "whole" / "model.safetensors"), load_file(root / "killed" / "model.safetensors")
    assert whole.keys() == killed.keys()
    for name in whole:
        assert whole[name].dtype == killed[name].dtype and whole[name].equal(killed[name]), name
    assert (root / "whole" / "history.csv").read_text().splitlines()[0] == (
        (root / "killed" / "history.csv").read_text().splitlines()[0]
    )
    loss = [line.split(",")[1] for line in (root / "whole" / "history.csv").read_text().splitlines()]
    assert loss == [line.split(",")[1] for line in (root / "killed" / "history.csv").read_text().splitlines()]
    metrics = json.loads((root / "killed" / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["epochs"] == 3
    assert metrics["test_accuracy"] == json.loads((root / "whole" / "metrics.json").read_text())["test_accuracy"]


@pytest.mark.slow
def test_resume_refuses_another_model_or_dataset(killed_and_resumed, tmp_path):
    root = killed_and_resumed[0]
    cases = [
        (["--resume", str(root / "killed"), "--model", "lecture_cnn"], "model='lenet5' there, 'lecture_cnn' here"),
        (["--resume", str(root / "killed"), "--data", "mnist"], "data='fashion-mnist' there, 'mnist' here"),
        (["--resume", str(tmp_path)], "no checkpoint.pt to resume from"),
    ]
    for flags, message in cases:
        assert message in run_cli("train", *flags, code=2).stderr
