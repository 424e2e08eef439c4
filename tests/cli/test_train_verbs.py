"""`cnnlab lr-find`, `cnnlab augment` and the training flags, as a user runs them."""

import json

import pytest
from PIL import Image

from tests.helpers import run_cli


@pytest.mark.slow
def test_lr_find_writes_plot_and_suggests(fake_idx, tmp_path):
    proc = run_cli(
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
    # its progress is the loss against the LR: a running accuracy at a changing LR means nothing
    progress = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert progress and all("loss: " in line and "lr: " in line and "accuracy" not in line for line in progress)
    with Image.open(tmp_path / "lr_find.png") as im:
        assert im.width > 500


@pytest.mark.slow
def test_augment_grid_png(fake_idx, tmp_path):
    out = tmp_path / "grid.png"
    proc = run_cli("augment", "--data-dir", fake_idx, "--n", 16, "--augment", "flip,rotate=20,cutout=8", "--out", out)
    assert "16 samples of fashion-mnist" in proc.stdout and "rotate=20" in proc.stdout
    with Image.open(out) as im:  # 4 × 4 tiles of [original | augmented], 2 × 1.45 inches each at 110 dpi
        assert im.size == (880, round((4 * 1.45 + 0.7) * 110))
    assert "mixup=0.2" in run_cli("augment", "--list").stdout


@pytest.mark.slow
def test_training_flags_and_config_file(fake_idx, tmp_path):
    (tmp_path / "recipe.yaml").write_text(
        "model: lenet5\nepochs: 2\noptimizer: sgd\nlr: 0.05\nschedule: linear\nlr-end: 0.005\nschedule-unit: epoch\ndecay-length: 2\n"
        "augment: flip,translate=2\nlabel-smoothing: 0.1\ngrad-clip: 5\naccumulate: 2\nweight-decay: 1e-4\n"
    )
    run_cli(
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


def test_incompatible_flags_explain_themselves(fake_idx, tmp_path):
    cases = [
        (["--patience", 2, "--val-split", 0], "--val-split 0 leaves no validation data"),
        (["--optimizer", "gd", "--accumulate", 4], "--accumulate does not go with --optimizer gd"),
        (["--optimizer", "adamm"], "choose from gd, sgd, adam, adamw, rmsprop"),
        (["--schedule", "exp"], "choose from constant, linear, step, cosine, onecycle, plateau"),
        (["--step-size", 3], "--step-size applies to --schedule step"),
        (["--pct-start", 0.2], "--pct-start applies to --schedule onecycle"),
        (["--schedule", "onecycle", "--pct-start", 1], "in (0, 1)"),
        (["--time-limit", "soon"], "use seconds or a unit"),
    ]
    for flags, message in cases:
        err = run_cli("train", "--data-dir", fake_idx, "--out", tmp_path / "x", *flags, code=2).stderr
        assert message in err, (flags, err)
    assert not (tmp_path / "x").exists()  # refused before a run folder was made


def test_pct_start_moves_the_one_cycle_peak(fake_idx, tmp_path):
    from cnnlab.train.schedules import make_schedule

    flags = ["--schedule", "onecycle", "--schedule-unit", "epoch", "--pct-start", 0.5, "--lr", 0.1, "--epochs", 4]
    run_cli("train", "--data-dir", fake_idx, "--out", tmp_path / "r", "--precision", "fp32", *flags)
    rows = (tmp_path / "r" / "history.csv").read_text().splitlines()
    lrs = [float(r.split(",")[rows[0].split(",").index("lr")]) for r in rows[1:]]
    expected = [0.1 * make_schedule("onecycle", total=4, pct_start=0.5)(k) for k in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-6) and lrs.index(max(lrs)) == 1  # the peak at half the run
    assert expected != pytest.approx([0.1 * make_schedule("onecycle", total=4)(k) for k in range(4)])
