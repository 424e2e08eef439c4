"""`cnnlab train --init-from`, `cnnlab features`, and the one-line errors of bad sources, as a user runs them."""

import json

import numpy as np
import pytest
import torch

from cnnlab.io import read_meta
from tests.helpers import run_cli

FAST = ["--precision", "fp32", "--verbose", "0", "--batch-size", "32"]


@pytest.fixture(scope="module")
def run_a(fake_idx, tmp_path_factory):
    """Network A: lenet5 trained one epoch on the 10-class toy data (Fashion-MNIST file names)."""
    out = tmp_path_factory.mktemp("a") / "run"
    run_cli("train", "--data-dir", fake_idx, "--epochs", "1", "--val-split", "100", "--out", out, *FAST)
    return out


def test_fine_tune_from_a_run_records_the_source_and_evaluate_works(run_a, shapes_npz, tmp_path):
    out = tmp_path / "b"
    log = run_cli(
        "train",
        "--data",
        f"npz:{shapes_npz}",
        "--init-from",
        str(run_a),
        "--epochs",
        "2",
        "--freeze-epochs",
        "1",
        "--init-always",  # the toy source is barely trained: the fit check's decision is tests/train/test_fit_check.py's
        "--lr",
        "3e-3",
        "--val-split",
        "0",
        "--out",
        str(out),
        *FAST,
    ).stdout
    assert f"init from {run_a} (cnnlab run): 4 of 10 tensors loaded" in log  # the two convolutions
    assert "classifier classifier.4: new, 4 classes (the source's had 10 outputs)" in log
    assert "fully connected layers classifier.0, classifier.2: new (only the body is transferred)" in log
    assert "frozen for 1 epoch(s)" in log and "epoch 2: the whole model trains" in log
    meta = read_meta(out)
    assert meta.model == "lenet5" and list(meta.classes) == ["sq", "ring", "plus", "x"]
    info = meta.init_from
    assert info["source"] == str(run_a) and info["kind"] == "cnnlab run" and info["dataset"] == "fashion-mnist"
    assert info["report"]["head"] == "new" and info["freeze"] == "features" and info["backbone_lr_mult"] == 1.0
    assert info["report"]["new_layers"] == ["classifier.0", "classifier.2"] and info["keep_fc"] is False
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init_from"]["source"] == str(run_a)
    assert json.loads((out / "config.json").read_text())["init_from"] == str(run_a)
    result = json.loads(run_cli("evaluate", out, "--json").stdout)
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])
    kept = tmp_path / "b_kept"
    args = ["--data", f"npz:{shapes_npz}", "--init-from", str(run_a), "--epochs", "1", "--val-split", "0"]
    args += ["--init-always"]
    log = run_cli("train", *args, "--keep-fc", "--out", str(kept), *FAST).stdout
    assert f"init from {run_a} (cnnlab run): 8 of 10 tensors loaded" in log and "fully connected" not in log
    # a run written before --keep-fc existed (no keep_fc in its config) loaded them: it resumes as it was trained
    config = json.loads((kept / "config.json").read_text())
    del config["keep_fc"]
    (kept / "config.json").write_text(json.dumps(config))
    log = run_cli("train", "--resume", str(kept), "--epochs", "2").stdout
    assert "8 of 10 tensors loaded" in log and json.loads((kept / "metrics.json").read_text())["epochs"] == 2


def test_features_writes_codes_and_a_linear_probe(run_a, shapes_npz, tmp_path):
    out = tmp_path / "codes.npz"
    text = run_cli("features", run_a, "--data", f"npz:{shapes_npz}", "--out", out, "--probe").stdout
    # other data than the run's: their own default split (10 % of train for validation)
    assert "lenet5 codes of" in text and "84 features; train 180, val 20, test 100" in text
    assert "linear probe (logistic regression" in text
    codes = np.load(out)
    assert codes["train_codes"].shape == (180, 84) and codes["test_labels"].shape == (100,)
    assert list(codes["classes"]) == ["sq", "ring", "plus", "x"]


def test_features_says_each_step_on_stderr_and_keeps_json_on_stdout(run_a, shapes_npz):
    proc = run_cli("features", run_a, "--data", f"npz:{shapes_npz}", "--probe", "--json")
    assert json.loads(proc.stdout)["probe"]["test_n"] == 100  # stdout is the JSON alone
    stages = [line for line in proc.stderr.splitlines() if line.startswith("features: ")]
    assert stages == [
        "features: train split (1/3), CNN codes of 180 images …",
        "features: val split (2/3), CNN codes of 20 images …",
        "features: test split (3/3), CNN codes of 100 images …",
        "features: fitting the linear probe (logistic regression on 180 training codes of 84 features) …",
        "features: scoring the linear probe on every split …",
    ]


def test_bad_sources_are_one_line_errors(run_a, fake_idx, tmp_path):
    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    torch.save({"w": Evil()}, tmp_path / "evil.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    cases = {
        str(tmp_path / "evil.pth"): "refused: the file needs code to load",
        str(tmp_path / "nope"): "no such run folder, model file or weight file",
        str(tmp_path / "wrong.pth"): "the weights do not fit lenet5: only 0 of its 4 backbone tensors match",
    }
    for source, message in cases.items():
        proc = run_cli(
            "train",
            "--data-dir",
            fake_idx,
            "--init-from",
            source,
            "--model",
            "lenet5",
            "--out",
            tmp_path / "x",
            "--overwrite",
            *FAST,
            code=None,
        )
        err = proc.stderr.strip()
        assert proc.returncode == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "pwned").exists()
    # --init-strict: a new input size changes lenet5's first Linear → an error naming the shapes
    proc = run_cli(
        "train",
        "--data-dir",
        fake_idx,
        "--image-size",
        "32",
        "--init-from",
        run_a,
        "--init-strict",
        "--out",
        tmp_path / "y",
        *FAST,
        code=None,
    )
    err = proc.stderr
    assert (
        proc.returncode == 2
        and "wrong shape (1, left as initialized): classifier.0.weight [120, 400] (source) vs [120, 576]" in err
    )
