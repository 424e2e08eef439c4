"""`cnnlab explain`: each method writes a PNG and prints its path; bad input gets one clear line."""

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_cli

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
def test_each_method_writes_a_png(args, toy_run, fake_idx, rgb_image, tmp_path):
    out = tmp_path / "x.png"
    args = [a.format(img=rgb_image, data=fake_idx) for a in args]
    captured = run_cli("explain", toy_run, *args, "--out", out)
    assert captured.stdout.strip().splitlines()[-1] == str(out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width >= 400
    if "--image" in args:  # a 56×56 RGB file for a 28×28 grayscale model: converted as for prediction, and said
        assert "converted RGB image to grayscale" in captured.stderr and "resized 56×56 to 28×28" in captured.stderr
    if args[0] == "maximize":
        assert "activation" in captured.stdout and "→" in captured.stdout


def test_layers_and_edges_and_errors(toy_run, rgb_image, tmp_path):
    assert "features.3    Conv2d      16×10×10" in run_cli("explain", toy_run, "layers").stdout
    out = run_cli("explain", "edges", rgb_image, "--out", tmp_path / "e.png").stdout
    assert "cross-correlation" in out and (tmp_path / "e.png").exists()
    err = run_cli("explain", toy_run, "featuremaps", "--image", rgb_image, "--layer", "classifier.2", code=2).stderr
    assert "no spatial map" in err
    assert (
        "valid layers: features, features.0"
        in run_cli("explain", toy_run, "filters", "--layer", "conv9", code=2).stderr
    )


def test_explain_help(toy_run):
    proc = run_cli("explain", toy_run, "-h")
    for method in ("filters", "featuremaps", "saliency", "maximize", "patches", "embedding", "top-losses", "edges"):
        assert method in proc.stdout


def test_default_names_follow_the_content(toy_run, fake_idx, rgb_image, tmp_path, monkeypatch):
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
        assert run_cli("explain", run, *args).stdout.strip().splitlines()[-1] == str(run / name)
    assert {p.name for p in run.glob("explain-*.png")} == {name for _, name in cases}
    monkeypatch.chdir(tmp_path)
    assert run_cli("explain", "edges", rgb_image).stdout.strip().endswith("edges plot: explain-edges.png")
    assert (tmp_path / "explain-edges.png").exists()


def test_embedding_says_each_step_on_stderr(toy_run, fake_idx, tmp_path):
    out = tmp_path / "e.png"
    proc = run_cli("explain", toy_run, "embedding", "--n", 40, "--data-dir", fake_idx, "--out", out)
    assert proc.stdout.strip() == str(out)  # stdout: the figure's path alone
    assert [line for line in proc.stderr.splitlines() if line.startswith("embedding: ")] == [
        "embedding: CNN codes of 40 images …",
        "embedding: t-SNE of 40 codes of 84 features to 2-D …",
        "embedding: drawing 40 points …",
    ]
