"""`cnnlab explain`: each method writes a PNG and prints its path; bad input gets one clear line."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main

METHODS = [
    ["filters"],
    ["filters", "--layer", "features.3"],
    ["featuremaps", "--image", "{img}", "--layer", "features.4"],
    ["saliency", "--image", "{img}", "--method", "all", "--target", "Trouser"],
    ["maximize", "--layer", "features.4", "--channel", "0-3", "--steps", "16"],
    ["maximize", "--class", "0,1", "--steps", "8"],
    ["patches", "--layer", "features.4", "--channel", "1", "--top", "4", "--data-dir", "{data}"],
    ["top-losses", "--data-dir", "{data}", "--top", "4"],
    ["embedding", "--n", "60", "--thumbnails", "--data-dir", "{data}"],
]


@pytest.fixture(scope="module")
def rgb_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (56, 56, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("args", METHODS, ids=lambda a: "-".join(a[:2]))
def test_each_method_writes_a_png(args, toy_run, fake_idx, rgb_image, tmp_path, capsys):
    out = tmp_path / "x.png"
    args = [a.format(img=rgb_image, data=fake_idx) for a in args]
    assert main(["explain", str(toy_run), *args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width >= 400
    if "--image" in args:  # a 56×56 RGB file for a 28×28 grayscale model: converted as for prediction, and said
        assert "converted RGB image to grayscale" in captured.err and "resized 56×56 to 28×28" in captured.err
    if args[0] == "maximize":
        assert "activation" in captured.out and "→" in captured.out


def test_layers_and_edges_and_errors(toy_run, rgb_image, tmp_path, capsys):
    assert main(["explain", str(toy_run), "layers"]) == 0
    assert "features.3    Conv2d      16×10×10" in capsys.readouterr().out
    assert main(["explain", "edges", str(rgb_image), "--out", str(tmp_path / "e.png")]) == 0
    out = capsys.readouterr().out
    assert "cross-correlation" in out and (tmp_path / "e.png").exists()
    assert main(["explain", str(toy_run), "featuremaps", "--image", str(rgb_image), "--layer", "classifier.2"]) == 2
    assert "no spatial map" in capsys.readouterr().err
    assert main(["explain", str(toy_run), "filters", "--layer", "conv9"]) == 2
    assert "valid layers: features, features.0" in capsys.readouterr().err


def test_explain_help_as_a_subprocess(toy_run):
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "explain", str(toy_run), "-h"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0
    for method in ("filters", "featuremaps", "saliency", "maximize", "patches", "embedding", "top-losses", "edges"):
        assert method in proc.stdout


def test_default_names_follow_the_content(toy_run, fake_idx, rgb_image, tmp_path, monkeypatch, capsys):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(toy_run / "model.safetensors", run)
    cases = [
        (["filters"], "explain-filters.png"),
        (["filters", "--layer", "features.3"], "explain-filters-features.3.png"),
        (["maximize", "--layer", "features.4", "--channel", "0", "--steps", "2"], "explain-maximize-features.4.png"),
        (
            ["patches", "--layer", "features.4", "--channel", "1", "--top", "2", "--n", "50", "--data-dir", fake_idx],
            "explain-patches-features.4-channel1.png",
        ),
        (["embedding", "--n", "40", "--data-dir", fake_idx], "explain-embedding.png"),
        (["embedding", "--n", "40", "--thumbnails", "--data-dir", fake_idx], "explain-embedding-thumbnails.png"),
    ]
    for args, name in cases:
        assert main(["explain", str(run), *map(str, args)]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == str(run / name)
    assert {p.name for p in run.glob("explain-*.png")} == {name for _, name in cases}
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "edges", str(rgb_image)]) == 0
    assert capsys.readouterr().out.strip().endswith("edges plot: explain-edges.png")
    assert (tmp_path / "explain-edges.png").exists()
