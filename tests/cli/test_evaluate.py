"""`cnnlab evaluate` and `cnnlab predict` on a trained run, as a user meets them: reports, JSON, PNG and photo
input, flip TTA."""

import json

import numpy as np
import torch
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.images import tensor_to_image
from tests.helpers import run_cli


def test_evaluate_reproduces_metrics_exactly(toy_run, fake_idx):
    result = json.loads(run_cli("evaluate", toy_run, "--data-dir", fake_idx, "--json").stdout)
    metrics = json.loads((toy_run / "metrics.json").read_text())
    assert result["accuracy"] == metrics["test_accuracy"]
    assert len(result["confusion"]) == 10 and sum(map(sum, result["confusion"])) == 200
    assert set(result["macro_avg"]) == {"precision", "recall", "f1", "support"} and len(result["most_confused"]) <= 10
    assert (toy_run / "confusion.png").exists()
    text = run_cli("evaluate", toy_run, "--data-dir", fake_idx).stdout
    assert "confusion matrix" in text and "Ankle boot" in text and "precision" in text and "macro avg" in text


def test_predict_png_files(toy_run, fake_idx, tmp_path):
    test = load_dataset("fashion-mnist", data_dir=fake_idx).test
    files = []
    for i in range(20):
        files.append(tmp_path / f"{i}.png")
        tensor_to_image(test.images[i]).save(files[-1])
    out = json.loads(run_cli("predict", toy_run, *files, "--top", 3, "--json").stdout)
    hits = sum(r["top"][0]["index"] == int(test.labels[i]) for i, r in enumerate(out))
    assert hits >= 17 and len(out[0]["top"]) == 3
    assert abs(sum(t["probability"] for t in out[0]["top"]) - 1) < 0.2


def test_predict_rgb_photo_on_grayscale_model(toy_run, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(tmp_path / "c.jpg")
    proc = run_cli("predict", toy_run, tmp_path / "c.jpg")
    assert "converted RGB image to grayscale" in proc.stderr and "resized 40×50 to 28×28" in proc.stderr
    assert proc.stdout.startswith(str(tmp_path / "c.jpg"))


def test_flip_tta_is_the_mean_of_image_and_mirror_logits(toy_run, fake_idx):
    from cnnlab.infer import predict_logits
    from cnnlab.io import load_model

    model, meta = load_model(toy_run)
    images = load_dataset("fashion-mnist", data_dir=fake_idx).test.images[:40]
    plain = predict_logits(model, images, meta.mean, meta.std, "cpu", "fp32")
    mirror = predict_logits(model, images.flip(3), meta.mean, meta.std, "cpu", "fp32")
    tta = predict_logits(model, images, meta.mean, meta.std, "cpu", "fp32", tta=True)
    assert torch.allclose(tta, (plain + mirror) / 2, atol=1e-5) and not torch.allclose(tta, plain, atol=1e-3)
    # the run was trained without --tta: evaluate follows the run unless told; --tta changes the result
    off = json.loads(run_cli("evaluate", toy_run, "--data-dir", fake_idx, "--json").stdout)
    on = json.loads(run_cli("evaluate", toy_run, "--data-dir", fake_idx, "--json", "--tta").stdout)
    assert off["accuracy"] == json.loads((toy_run / "metrics.json").read_text())["test_accuracy"]
    assert on["loss"] != off["loss"]
