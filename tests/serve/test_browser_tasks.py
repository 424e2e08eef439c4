"""`cnnlab serve` of a detection and a segmentation model in headless chromium: the page says the task, draws the
boxes (label and score) or the mask over the uploaded image on its overlay canvas, lists them in a legend, hides
the classifier's explanation cards, and drops the overlay of a model no longer chosen.

One server for the module (`python -m cnnlab serve DETECT SEGMENT`, the tiny runs of conftest.py).
$CNNLAB_SERVE_TASK_SCREENSHOTS (a folder), when set, receives serve_detect.png and serve_segment.png.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.serve.test_browser import ARGS, CHROMIUM, Page, serving, sync_api
from tests.tasks.helpers import CLASSES

pytestmark = pytest.mark.slow  # the fixtures train two tiny runs and start a server

# the overlay's pixels: how many are drawn (alpha > 0), and the RGBA of the first one
OVERLAY_PIXELS = """() => {
  const c = document.getElementById('overlay');
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0, first = null;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) { n += 1; first = first || Array.from(px.slice(i - 3, i + 1)); }
  return {drawn: n, first};
}"""

# the overlay's RGBA just inside a box's left side (x, y as fractions of the image; the outline is 2 of the
# canvas's 280 units wide, starting 1 unit in)
EDGE = """([x, y]) => {
  const c = document.getElementById('overlay');
  const px = c.getContext('2d').getImageData(Math.round((x + 2 / 280) * c.width), Math.round(y * c.height), 1, 1);
  return Array.from(px.data);
}"""


@pytest.fixture(scope="module")
def server(detect_run, segment_run):
    (detect, detect_scenes), (segment, segment_scenes) = detect_run, segment_run
    data = ["--data", f"coco:{detect_scenes}", "--data", f"masks:{segment_scenes}"]
    with serving(str(detect), str(segment), *data) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    p = Page(browser, server)
    yield p
    p.page.close()
    p.check()


def _api_predict(server: str, model: str, image: Path) -> dict:
    """What /api/predict answers for `image` (a multipart form made by hand: no client library needed)."""
    boundary = "cnnlab-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server}/api/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def _pct(p: float) -> str:
    """A probability as the page writes it (app.js pct)."""
    return f"{100 * p:.{0 if p >= 0.995 or p < 0.001 else 1}f} %"


def _upload(p, path: Path) -> None:
    """Choose a file and wait until its prediction is drawn on the overlay."""
    before = p.evaluate("window.cnnlabOverlays")
    p.set_input_files("#file", str(path))
    p.wait_for_function(f"window.cnnlabOverlays > {before}")


def _screenshot(p, name: str) -> None:
    folder = os.environ.get("CNNLAB_SERVE_TASK_SCREENSHOTS")
    if folder:
        p.screenshot(path=str(Path(folder) / name), full_page=True)


def test_a_detect_model_draws_its_boxes_with_labels_over_the_image(page, server, detect_run):
    _, scenes = detect_run
    image = scenes / "images" / "test" / "000000.png"
    want = _api_predict(server, "tiny-detect", image)["objects"]
    p = page.open()
    assert p.inner_text("#task") == "detection" and "test mAP" in p.inner_text("#model-info")
    assert p.is_hidden("#explain-card") and p.is_hidden("#features-card")
    _upload(p, image)
    assert p.get_attribute("#prediction", "data-objects") == str(len(want)) and want
    rows = p.locator("#legend li")
    assert [rows.nth(i).get_attribute("data-class") for i in range(rows.count())] == [o["class"] for o in want]
    assert rows.nth(0).locator(".num").inner_text() == _pct(want[0]["score"])  # as the label on the box
    assert p.evaluate(OVERLAY_PIXELS)["drawn"] > 100  # box outlines and label tags
    x1, y1, x2, y2 = want[0]["box"]  # its left side, at the displayed image's scale: 32 model pixels = the canvas
    edge = p.evaluate(EDGE, [x1 / 32, (y1 + y2) / 64])
    assert edge[3] > 0, edge
    _screenshot(p, "serve_detect.png")

    p.click("#clear")  # nothing of the old image stays on the overlay
    assert p.evaluate(OVERLAY_PIXELS)["drawn"] == 0 and p.locator("#legend li").count() == 0


def test_a_segment_model_overlays_its_mask_with_a_legend_of_colours(page, server, segment_run, detect_run):
    _, scenes = segment_run
    image = scenes / "images" / "test" / "000000.png"
    want = _api_predict(server, "tiny-segment", image)
    p = page.open()
    _upload(p, detect_run[1] / "images" / "test" / "000000.png")  # a detection first: its boxes must go
    before = p.evaluate("window.cnnlabUpdates")
    p.select_option("#model", "tiny-segment")  # the same image, asked of the segmentation model
    p.wait_for_function(f"window.cnnlabUpdates > {before}")
    _upload(p, image)
    assert p.inner_text("#task") == "segmentation" and "test mIoU" in p.inner_text("#model-info")
    legend = p.inner_text("#legend")
    for name, n in want["pixels"].items():
        assert name in legend and f"{n:,}" in legend
    rows = p.locator("#legend li")
    assert rows.count() == len(CLASSES) + 1  # every class's colour, those found first
    found = [c for c in want["pixels"] if c != "background"]
    assert p.get_attribute("#prediction", "data-classes") == ",".join(found)
    assert found  # the tiny model finds the shape
    drawn = p.evaluate(OVERLAY_PIXELS)  # the class colours at half opacity; the background stays the image
    colours = p.evaluate("fetch('/api/models').then((r) => r.json()).then((j) => j.models[1].colours)")
    rgb = [list(bytes.fromhex(c[1:])) for c in colours[1:]]
    assert drawn["drawn"] > 0 and 120 <= drawn["first"][3] <= 135
    assert any(max(abs(a - b) for a, b in zip(c, drawn["first"][:3], strict=True)) <= 3 for c in rgb)
    _screenshot(p, "serve_segment.png")
