"""`cnnlab lr-find`, `cnnlab augment` and the training flags, as a user runs them."""

import json
import os
import subprocess
import sys

from PIL import Image

from cnnlab.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cnnlab(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cnnlab {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_lr_find_writes_plot_and_suggests(fake_idx, tmp_path):
    proc = cnnlab(
        "lr-find",
        "--data-dir",
        fake_idx,
        "--batch-size",
        32,
        "--precision",
        "fp32",
        "--steps",
        40,
        "--min-lr",
        1e-5,
        "--max-lr",
        1,
        "--out",
        tmp_path,
    )
    lr = float(proc.stdout.split("suggested learning rate: ")[1].split()[0])
    assert 1e-5 < lr < 1
    with Image.open(tmp_path / "lr_find.png") as im:
        assert im.width > 500


def test_augment_grid_png(fake_idx, tmp_path):
    out = tmp_path / "grid.png"
    proc = cnnlab("augment", "--data-dir", fake_idx, "--n", 16, "--augment", "flip,rotate=20,cutout=8", "--out", out)
    assert "16 samples of fashion-mnist" in proc.stdout and "rotate=20" in proc.stdout
    with Image.open(out) as im:  # 4 × 4 tiles of [original | augmented], 2 × 1.45 inches each at 110 dpi
        assert im.size == (880, round((4 * 1.45 + 0.7) * 110))
    assert "mixup=0.2" in cnnlab("augment", "--list").stdout


def test_training_flags_and_config_file(fake_idx, tmp_path):
    (tmp_path / "recipe.yaml").write_text(
        "model: lenet5\nepochs: 2\noptimizer: sgd\nlr: 0.05\nschedule: linear\nlr-end: 0.005\nschedule-unit: epoch\ndecay-length: 2\n"
        "augment: flip,translate=2\nlabel-smoothing: 0.1\ngrad-clip: 5\naccumulate: 2\nweight-decay: 1e-4\n"
    )
    cnnlab(
        "train",
        "--config",
        tmp_path / "recipe.yaml",
        "--data-dir",
        fake_idx,
        "--out",
        tmp_path / "r",
        "--precision",
        "fp32",
        "--batch-size",
        32,
        "--epochs",
        3,
    )
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["epochs"] == 3 and cfg["schedule"] == "linear" and cfg["accumulate"] == 2
    rows = (tmp_path / "r" / "history.csv").read_text().splitlines()
    lrs = [float(r.split(",")[rows[0].split(",").index("lr")]) for r in rows[1:]]
    assert lrs == [0.05, 0.0275, 0.005]  # per epoch: ε_k = (1 − k/τ)·0.05 + (k/τ)·0.005 with τ = 2 epochs


def test_incompatible_flags_explain_themselves(fake_idx, tmp_path, capsys):
    cases = [
        (["--patience", 2, "--val-split", 0], "--val-split 0 leaves no validation data"),
        (["--optimizer", "gd", "--accumulate", 4], "--accumulate does not go with --optimizer gd"),
        (["--optimizer", "adamm"], "choose from gd, sgd, adam, adamw, rmsprop"),
        (["--schedule", "exp"], "choose from constant, linear, step, cosine, onecycle, plateau"),
        (["--step-size", 3], "--step-size applies to --schedule step"),
        (["--time-limit", "soon"], "use seconds or a unit"),
    ]
    for flags, message in cases:  # in-process: the same main() the console script calls
        code = main(["train", "--data-dir", str(fake_idx), "--out", str(tmp_path / "x"), *map(str, flags)])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (flags, err)
    assert not (tmp_path / "x").exists()  # refused before a run folder was made
