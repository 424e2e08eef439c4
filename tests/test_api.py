"""The flat Python API (cnnlab/api.py): `cnnlab.train`, `predict`, `lr_find`, `fine_tune`, and a clean `dir(cnnlab)`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab.deploy.engines import open_classifier
from cnnlab.predict import predict_files
from tests.conftest import make_images


def _quiet(*args, **kwargs) -> None:
    pass


def _same(top: list[dict], expected: list[dict]) -> bool:
    """The same classes with the same probabilities (to float error: a batch of one is computed apart)."""
    return [t["class"] for t in top] == [t["class"] for t in expected] and [t["probability"] for t in top] == (
        pytest.approx([t["probability"] for t in expected], rel=1e-4, abs=1e-6)
    )


def test_dir_lists_only_public_names():
    names = dir(cnnlab)
    assert {"train", "predict", "lr_find", "fine_tune", "create_model", "__version__"} <= set(names)
    assert not [n for n in names if n.startswith("_") and n != "__version__"]
    assert "annotations" not in names and "importlib" not in names


def test_the_functions_keep_their_names_beside_the_packages():
    """cnnlab/train/ and cnnlab/predict.py have the names of two functions: the modules are callable, so
    `cnnlab.train(...)` trains and every import form of the modules still works."""
    import cnnlab.predict
    import cnnlab.train.config as config
    from cnnlab.api import predict, train
    from cnnlab.train import Trainer
    from cnnlab.train.config import TrainConfig

    assert callable(cnnlab.train) and callable(cnnlab.predict)
    assert cnnlab.train.__name__ == "cnnlab.train" and cnnlab.predict.predict_files  # the modules, with contents
    assert config.TrainConfig is TrainConfig and cnnlab.Trainer is Trainer
    assert cnnlab.runtime.__name__ == "cnnlab.runtime"  # other submodules are attributes as before
    assert train.__module__ == predict.__module__ == "cnnlab.api"


def test_calling_the_modules_calls_the_functions(monkeypatch):
    import cnnlab.api

    monkeypatch.setattr(cnnlab.api, "train", lambda *a, **kw: ("train", a, kw))
    monkeypatch.setattr(cnnlab.api, "predict", lambda *a, **kw: ("predict", a, kw))
    assert cnnlab.train(data="x", epochs=2) == ("train", (), {"data": "x", "epochs": 2})
    assert cnnlab.predict("run", ["a.png"], top=2) == ("predict", ("run", ["a.png"]), {"top": 2})


@pytest.mark.parametrize(
    ("call", "close"),
    [
        (lambda: cnnlab.train(epoch=3), "epochs"),
        (lambda: cnnlab.train(batchsize=3), "batch_size"),
        (lambda: cnnlab.lr_find(learning_rate=1e-3), None),
        (lambda: cnnlab.fine_tune("runs/x", freeze_epoch=2), "freeze_epochs"),
    ],
)
def test_an_unknown_keyword_is_one_line_naming_the_close_fields(call, close, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError) as e:
        call()
    text = str(e.value)
    assert "\n" not in text and "unknown keyword" in text
    assert (close in text) if close else "fields of TrainConfig" in text
    assert not (tmp_path / "runs").exists()  # refused before anything was made


def test_a_bad_value_is_the_configs_own_error(tmp_path):
    with pytest.raises(ValueError, match="--optimizer"):
        cnnlab.train(optimizer="adamm", out=tmp_path / "r")


@pytest.mark.slow
def test_train_writes_a_run_and_returns_its_result(fake_idx, tmp_path):
    result = cnnlab.train(
        data_dir=fake_idx,
        epochs=1,
        out=tmp_path / "r",
        batch_size=32,
        val_split=100,
        max_train_samples=200,
        verbose=0,
        log=_quiet,
    )
    assert result.out == tmp_path / "r" and (result.out / "model.safetensors").exists()
    written = json.loads((result.out / "metrics.json").read_text())
    assert result.metrics["test_accuracy"] == written["test_accuracy"]
    assert 0 <= result.metrics["test_accuracy"] <= 1 and result.metrics["epochs"] == 1
    assert json.loads((result.out / "config.json").read_text())["batch_size"] == 32


def test_predict_takes_files_pil_images_and_arrays(toy_run, tmp_path):
    """Every kind of image gives the prediction of the same pixels as a file, with the stored normalisation."""
    images, labels = make_images(3, seed=5)
    files = []
    for i, im in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(files[-1])
    expected = predict_files(open_classifier(toy_run), files, 3)
    by_file = cnnlab.predict(toy_run, files)
    assert by_file == expected and len(by_file[0]["top"]) == 3
    assert {"class", "index", "probability"} == set(by_file[0]["top"][0])
    pil = cnnlab.predict(toy_run, [Image.fromarray(im) for im in images])
    stack = cnnlab.predict(toy_run, images)  # (N, H, W) uint8: three images
    one_float = cnnlab.predict(toy_run, images[0].astype(np.float32) / 255, top=1)  # one image, float in [0, 1]
    for got in (pil, stack):
        assert all(map(_same, [g["top"] for g in got], [e["top"] for e in expected])) and got[0]["file"] is None
    assert one_float[0]["top"][0]["class"] == expected[0]["top"][0]["class"] and len(one_float[0]["top"]) == 1
    rgb = cnnlab.predict(toy_run, np.repeat(images[0][:, :, None], 3, axis=2))  # a colour array: converted, noted
    assert _same(rgb[0]["top"], expected[0]["top"]) and "grayscale" in rgb[0]["notes"][0]
    assert cnnlab.predict(toy_run, str(files[0]))[0]["file"] == str(files[0])
    with pytest.raises(ValueError, match="uint8 .* or float in"):
        cnnlab.predict(toy_run, images[0].astype(np.int32))


@pytest.mark.slow
def test_lr_find_returns_the_suggestion_and_the_curve(fake_idx, tmp_path):
    found = cnnlab.lr_find(data_dir=fake_idx, batch_size=32, steps=12, max_lr=1.0, out=tmp_path, log=_quiet, verbose=0)
    assert set(found) == {"lrs", "losses", "suggested_lr", "png"}
    assert len(found["lrs"]) == len(found["losses"]) >= 3 and found["lrs"][0] == pytest.approx(1e-7)
    assert found["lrs"][0] <= found["suggested_lr"] <= found["lrs"][-1]
    assert (tmp_path / "lr_find.png").exists()


def test_fine_tune_starts_from_the_source_run(toy_run, fake_idx, tmp_path):
    result = cnnlab.fine_tune(
        toy_run,
        data_dir=fake_idx,
        epochs=2,
        out=tmp_path / "ft",
        batch_size=32,
        val_split=100,
        max_train_samples=200,
        verbose=0,
        log=_quiet,
    )
    config = json.loads((result.out / "config.json").read_text())
    assert config["init_from"] == str(toy_run) and config["model"] == "lenet5"  # the source's architecture
    assert config["freeze_epochs"] == 1 and config["backbone_lr_mult"] == 1.0  # the transfer defaults
    assert str(toy_run) in json.dumps(result.metrics["init_from"])  # the provenance, as `--init-from` records it
