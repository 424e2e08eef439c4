"""The JSON API of `cnnlab serve` through FastAPI's test client: predictions, explanations, limits, bad uploads."""

from __future__ import annotations

import base64
import io
import struct
import sys
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_cli
from tests.serve.conftest import square_png


def _png_of(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_health_and_models(client):
    assert client.get("/api/health").json()["status"] == "ok"
    (m,) = client.get("/api/models").json()["models"]
    assert m["id"] == "toy-lenet" and m["input_size"] == [1, 28, 28] and len(m["classes"]) == 10
    assert 0 <= m["test_accuracy"] <= 1 and m["dataset"] == "fashion-mnist"


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.text) > 100
    assert "http" not in client.get("/static/app.js").text.replace("http-equiv", "")  # nothing from the internet
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/predict", "/api/explain", "/api/models"}
    docs = client.get("/docs").text  # Swagger UI from the app's own files, not a CDN
    assert "/static-docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()


@pytest.mark.parametrize("k", [0, 5])
def test_predict_top_k(client, k):
    r = client.post("/api/predict", files={"image": ("x.png", square_png(k), "image/png")}, data={"top": "3"})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"model", "top", "notes"}  # a classifier's answer, as before other tasks were served
    top = r.json()["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
    assert top[0]["index"] == k  # the toy task is learned in two epochs


def test_predict_converts_and_notes(client):
    r = client.post("/api/predict", files={"image": ("big.png", square_png(0, 56, "RGB"), "image/png")})
    assert r.status_code == 200, r.text
    notes = " ".join(r.json()["notes"])
    assert "converted RGB image to grayscale" in notes and "resized 56×56 to 28×28" in notes


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "gradcam"])
def test_explain_pngs(client, method):
    r = client.post("/api/explain", files={"image": ("x.png", square_png(2), "image/png")}, data={"method": method})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == method and body["target"]["index"] == body["top"][0]["index"]
    assert _png_of(body["input_png"]).size == (28, 28)
    assert _png_of(body["saliency_png"]).size == (28, 28)
    assert _png_of(body["overlay_png"]).size == (224, 224)
    f = body["feature_maps"]
    assert f["layer"] and f["count"] == len(f["pngs"]) == 6  # LeNet-5's first conv: 6 maps


def test_explain_arrays_and_target(client):
    r = client.post(
        "/api/explain",
        files={"image": ("x.png", square_png(1), "image/png")},
        data={"format": "array", "target": "3", "features": "false"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    heat = np.array(body["saliency"])
    assert heat.shape == (28, 28) and 0 <= heat.min() and heat.max() <= 1
    assert body["target"]["index"] == 3 and "feature_maps" not in body
    assert np.array(body["input"]).shape == (28, 28)


def test_random_test_image(client):
    r = client.get("/api/models/toy-lenet/random", params={"seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert _png_of(body["image_png"]).size == (28, 28) and 0 <= body["label"]["index"] < 10


def test_random_without_data_says_why(serve_run, monkeypatch):
    from fastapi.testclient import TestClient

    from cnnlab.data import DatasetNotFound
    from cnnlab.serve import app

    def missing(*a, **k):
        raise DatasetNotFound("dataset 'fashion-mnist' not found. Looked in:\n  somewhere")

    monkeypatch.setattr("cnnlab.run.splits.load_dataset", missing)
    with TestClient(app.create_app([serve_run])) as c:
        r = c.get("/api/models/toy-lenet/random")
    assert r.status_code == 404 and "not available" in r.json()["error"]


def _bomb_png(side: int) -> bytes:
    """A valid PNG header claiming side × side pixels, with a tiny (truncated) body: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (8, 8)).save(buf, format="JPEG")
    return buf.getvalue()


def _lab_tiff() -> bytes:
    buf = io.BytesIO()
    Image.new("LAB", (8, 8)).save(buf, format="TIFF")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"hello, not an image", 415, "not an image"),
        (square_png(0)[:60], 400, "truncated"),
        (_bomb_png(6000), 413, "exceeds the limit"),
        (_bomb_png(100000), 413, "too large"),
        (_lab_tiff(), 415, "unsupported image mode"),
    ],
    ids=["empty", "text", "truncated", "bomb", "huge-bomb", "lab-mode"],
)
def test_bad_uploads_get_one_line_errors(client, payload, status, words):
    r = client.post("/api/predict", files={"image": ("../../etc/passwd", payload, "image/png")})
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert words in message and "\n" not in message
    assert client.get("/api/health").status_code == 200  # the server is still up


def test_cmyk_is_converted(client):
    r = client.post("/api/predict", files={"image": ("x.jpg", _cmyk_jpeg(), "image/jpeg")})
    assert r.status_code == 200, r.text


def test_request_errors(client):
    assert client.post("/api/predict", data={"top": "3"}).status_code == 415  # not multipart
    r = client.post("/api/predict", files={"other": ("x.png", square_png(0), "image/png")})
    assert r.status_code == 400 and "image" in r.json()["error"]
    png = {"image": ("x.png", square_png(0), "image/png")}
    assert client.post("/api/predict", files=png, data={"top": "lots"}).status_code == 400
    assert client.post("/api/predict", files=png, data={"model": "nope"}).status_code == 404
    assert client.post("/api/explain", files=png, data={"method": "magic"}).status_code == 400
    assert client.post("/api/explain", files=png, data={"target": "unicorn"}).status_code == 400
    assert client.get("/api/models/nope/random").status_code == 404
    assert client.get("/static/../../pyproject.toml").status_code == 404


def test_byte_limit(serve_run):
    from fastapi.testclient import TestClient

    from cnnlab.serve.app import create_app

    with TestClient(create_app([serve_run], max_bytes=1000)) as c:
        big = square_png(0, 200)
        assert len(big) > 1000
        r = c.post("/api/predict", files={"image": ("x.png", big, "image/png")})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        huge = b"x" * 200_000  # the whole body is refused while it streams in
        assert c.post("/api/predict", files={"image": ("x.png", huge, "image/png")}).status_code == 413


def test_concurrent_requests(client):
    png = square_png(4)
    results = []

    def work(i):
        path = "/api/explain" if i % 3 == 0 else "/api/predict"
        results.append(client.post(path, files={"image": ("x.png", png, "image/png")}).status_code)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 12


def test_a_broken_onnx_file_is_refused_in_one_line(tmp_path):
    from cnnlab.serve.app import create_app

    (tmp_path / "m.onnx").write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"m.onnx: not a valid ONNX model"):
        create_app([tmp_path / "m.onnx"])


def test_cli_parser_defaults():
    from cnnlab.cli import build_parser

    args = build_parser().parse_args(["serve", "runs/x"])
    assert (args.host, args.port, args.runs) == ("127.0.0.1", 8000, ["runs/x"])


def test_cli_names_the_extra_when_fastapi_is_missing(serve_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert "pip install 'cnnlab[serve]'" in run_cli("serve", serve_run, code=2).stderr


def test_favicon_is_served(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml") and "<svg" in r.text
    page = client.get("/").text
    assert 'rel="icon" href="/static/favicon.svg"' in page
    assert client.get("/static/favicon.svg").status_code == 200


@pytest.mark.parametrize("path", ["/api/predict", "/api/explain"])
def test_a_blank_image_is_noted(client, path):
    buf = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buf, format="PNG")
    r = client.post(path, files={"image": ("x.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    assert any("blank" in n for n in r.json()["notes"])
    r = client.post(path, files={"image": ("x.png", square_png(2), "image/png")})
    assert not any("blank" in n for n in r.json()["notes"])
