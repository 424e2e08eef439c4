"""`cnnlab serve` of detection and segmentation models (and their ONNX files) through FastAPI's test client: the
JSON of each task, the same prediction as `cnnlab predict --json` on the same image, test images with their objects,
the limits and the one-line errors of the classifier path."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from tests.tasks.helpers import CLASSES

pytestmark = pytest.mark.slow  # the fixtures train two tiny runs (about 20 s together)


def _client(*paths, **kw):
    from fastapi.testclient import TestClient

    from cnnlab.serve.app import create_app

    return TestClient(create_app(list(paths), **kw), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(detect_run, segment_run):
    (detect, detect_scenes), (segment, segment_scenes) = detect_run, segment_run
    with _client(detect, segment, data=[f"coco:{detect_scenes}", f"masks:{segment_scenes}"]) as c:
        yield c


def _image(scenes, k: int = 0):
    return scenes / "images" / "test" / f"{k:06d}.png"


def _post(client, model: str, path) -> dict:
    r = client.post("/api/predict", files={"image": ("x.png", path.read_bytes(), "image/png")}, data={"model": model})
    assert r.status_code == 200, r.text
    return r.json()


def _cli_predict(capsys, run, image, *extra) -> dict:
    capsys.readouterr()
    assert main(["predict", str(run), str(image), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)[0]


def test_models_say_their_task_metric_and_colours(client):
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    detect, segment = models["tiny-detect"], models["tiny-segment"]
    assert detect["task"] == "detect" and detect["classes"] == CLASSES and detect["task_args"]["score"] == 0.05
    assert detect["metric"]["name"] == "test mAP" and 0 <= detect["metric"]["value"] <= 1
    assert detect["methods"] == [] and detect["colours"] == ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]
    assert segment["task"] == "segment" and segment["classes"] == ["background", *CLASSES]
    assert segment["metric"]["name"] == "test mIoU" and segment["colours"][:2] == ["#000000", "#e6194b"]


@pytest.mark.parametrize("k", [0, 1])
def test_detect_gives_the_boxes_of_cnnlab_predict(client, detect_run, capsys, k):
    run, scenes = detect_run
    got = _post(client, "tiny-detect", _image(scenes, k))
    want = _cli_predict(capsys, run, _image(scenes, k))
    assert got["model"] == "tiny-detect" and got["task"] == "detect" and got["notes"] == []
    assert got["objects"] == want["objects"] and got["objects"]  # score ≥ 0.05: the tiny model finds something
    for o in got["objects"]:
        assert o["class"] == CLASSES[o["index"]] and 0 <= o["box"][0] <= o["box"][2] <= 32 and 0 < o["score"] <= 1


def test_localize_gives_the_class_and_box_of_cnnlab_predict(localize_run, capsys):
    run, scenes = localize_run
    with _client(run) as c:
        got = _post(c, "tiny-localize", _image(scenes))
        assert c.get("/api/models").json()["models"][0]["metric"]["name"] == "test mean IoU"
    want = _cli_predict(capsys, run, _image(scenes), "--top", "5")  # the page asks for 5 (of 4 here)
    assert got["task"] == "localize" and {k: got[k] for k in ("class", "probability", "box", "top")} == {
        k: want[k] for k in ("class", "probability", "box", "top")
    }
    assert len(got["top"]) == 4 and got["class"] == got["top"][0]["class"] and len(got["box"]) == 4


def _mask(url: str) -> tuple[np.ndarray, Image.Image]:
    assert url.startswith("data:image/png;base64,")
    im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return np.asarray(im), im


def test_segment_gives_the_mask_and_pixels_of_cnnlab_predict(client, segment_run, capsys, tmp_path):
    run, scenes = segment_run
    got = _post(client, "tiny-segment", _image(scenes))
    want = _cli_predict(capsys, run, _image(scenes), "--out", str(tmp_path))
    assert got["task"] == "segment" and got["pixels"] == want["pixels"] and sum(got["pixels"].values()) == 32 * 32
    mask, im = _mask(got["mask_png"])
    assert im.mode == "P" and im.info["transparency"] == 0  # the background shows the image
    assert np.array_equal(mask, np.asarray(Image.open(tmp_path / "000000.mask.png")))  # predict --out's mask
    classes = ["background", *CLASSES]
    assert {classes[i]: int((mask == i).sum()) for i in np.unique(mask)} == got["pixels"]
    assert im.getpalette()[3:6] == [0xE6, 0x19, 0x4B]  # class 1 in the first drawing colour, as Task.draw paints


def test_random_test_images_name_the_classes_they_hold(client, detect_run):
    r = client.get("/api/models/tiny-detect/random?seed=1")
    assert r.status_code == 200, r.text
    label = r.json()["label"]
    assert label["index"] is None and label["class"] and set(label["class"].split(", ")) <= set(CLASSES)
    label = client.get("/api/models/tiny-segment/random?seed=1").json()["label"]
    assert label["index"] is None and set(label["class"].split(", ")) <= set(CLASSES)


def test_explanations_are_refused_in_one_line(client, detect_run):
    _, scenes = detect_run
    png = {"image": ("x.png", _image(scenes).read_bytes(), "image/png")}
    r = client.post("/api/explain", files=png, data={"model": "tiny-detect"})
    assert r.status_code == 400 and r.json() == {
        "error": "model 'tiny-detect' is a detect model: explanations are for classifiers only"
    }


def test_the_upload_limits_hold_for_every_task(detect_run, segment_run):
    (detect, scenes), (segment, _) = detect_run, segment_run
    big = io.BytesIO()
    Image.open(_image(scenes)).resize((200, 200)).save(big, format="PNG")
    with _client(detect, segment, max_bytes=1000, max_pixels=64 * 64) as c:
        for model in ("tiny-detect", "tiny-segment"):
            r = c.post("/api/predict", files={"image": ("x.png", big.getvalue(), "image/png")}, data={"model": model})
            assert r.status_code == 413 and "limit of 1,000 bytes" in r.json()["error"]
            small = _image(scenes).read_bytes()
            assert c.post("/api/predict", files={"image": ("x.png", small, "image/png")}).status_code == 200
            r = c.post("/api/predict", files={"image": ("x.png", b"not a png", "image/png")}, data={"model": model})
            assert r.status_code == 415 and "not an image" in r.json()["error"]


@pytest.mark.parametrize("which", ["detect", "segment"])
def test_an_onnx_file_of_a_task_model_is_served_the_same_way(which, detect_run, segment_run, capsys):
    run, scenes = detect_run if which == "detect" else segment_run
    onnx = run / "model.onnx"
    if not onnx.exists():
        assert main(["export", str(run)]) == 0
    with _client(onnx) as c:
        (info,) = c.get("/api/models").json()["models"]
        assert info["task"] == which and info["methods"] == [] and info["file"] == "model.onnx"
        got = _post(c, info["id"], _image(scenes))
    want = _cli_predict(capsys, onnx, _image(scenes))
    key = "objects" if which == "detect" else "pixels"
    assert got[key] == want[key]
    if which == "segment":
        assert _mask(got["mask_png"])[0].shape == (32, 32)


def test_a_requests_memory_counts_the_task_head(segment_run):
    """The decoder of a segmentation runs at the input's size: its maps are charged to each prediction."""
    from cnnlab.inspect import activation_bytes
    from cnnlab.io import read_meta
    from cnnlab.serve.limits import model_cost

    meta = read_meta(segment_run[0])
    cost = model_cost(meta)
    backbone = activation_bytes(meta.model, meta.model_args, meta.input_size)
    assert cost.activations > 2 * backbone and cost.outputs == 4 * len(meta.classes) * 32 * 32
    assert cost.predict >= 2 * cost.activations + 3 * cost.outputs
