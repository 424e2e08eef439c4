"""`cnnlab serve` in a real browser: headless chromium (the system's, driven by playwright) against the real server.

One server for the module: `python -m cnnlab serve RUN RUN` (the tiny trained run twice, as the models `toy-lenet`
and `toy-lenet-2`), started as a subprocess. Each test opens its own page; the `page` fixture fails a test whose
page fetched from elsewhere, got an answer of 400 or more it did not ask for, or raised a script error.
The first test saves a screenshot (in pytest's tmp folder, and at $CNNLAB_SERVE_SCREENSHOT when set).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import square_png

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
NOTATION = "CL32-MP4-CL64-MP4-CL128-MP2-CL256-MP2-FC1024-DO50-FC512-DO50-FC256-FC128-FC10"  # a long model name

if CHROMIUM is None:
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does as root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the Python playwright package is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(*args: str):
    """`python -m cnnlab serve ARGS` as a true subprocess, on a free port: yields its address. The browser needs a
    server that runs until it is stopped, and it is stopped as a user does (SIGTERM), which only a process can
    receive."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "cnnlab", "serve", *args, "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"cnnlab serve exited: {proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("cnnlab serve did not answer within 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(serve_run, fake_idx):
    """The tiny trained run served twice, as the models `toy-lenet` and `toy-lenet-2`."""
    with serving(str(serve_run), str(serve_run), "--data-dir", str(fake_idx)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


# The forms the page sends, recorded in the page (chromium does not show a request's body when it holds a blob):
# window.cnnlabSent holds one promise per POST of {path, fields}, a file field as base64.
RECORD_FORMS = """
window.cnnlabSent = [];
const send = window.fetch;
async function field(v) {
  if (typeof v === 'string') return v;
  const bytes = new Uint8Array(await v.arrayBuffer());
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return {base64: btoa(text)};
}
window.fetch = function (input, init) {
  if (init && init.body instanceof FormData) {
    const entries = [...init.body.entries()];
    window.cnnlabSent.push(Promise.all(entries.map(async ([k, v]) => [k, await field(v)]))
      .then((e) => ({path: new URL(String(input), location.href).pathname, fields: Object.fromEntries(e)})));
  }
  return send.apply(this, arguments);
};
"""


class Page:
    """A page of the server in chromium that records what it must not do, and the forms it sent to the API."""

    def __init__(self, browser, server: str, width: int = 1280, height: int = 900):
        self.server = server
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.outside: list[str] = []
        self.bad: list[str] = []
        self.errors: list[str] = []
        self.page.add_init_script(RECORD_FORMS)
        self.page.on("request", self._request)
        self.answered: list[str] = []  # the paths of the answers the page got, in order
        self.page.on("response", self._response)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, r) -> None:
        if not r.url.startswith((self.server, "data:")):
            self.outside.append(r.url)

    def _response(self, r) -> None:
        self.answered.append(r.url.removeprefix(self.server))
        if r.status >= 400:
            self.bad.append(f"{r.status} {r.url}")

    def wait_for_answers(self, *paths: str, since: int = 0) -> None:
        """Wait until the page has had an answer from each of `paths` (after its first `since` answers)."""
        for _ in range(400):
            if set(paths) <= set(self.answered[since:]):
                return
            self.page.wait_for_timeout(25)
        pytest.fail(f"no answer from {set(paths) - set(self.answered[since:])}")

    def open(self) -> sync_api.Page:
        self.page.goto(self.server + "/")
        self.page.wait_for_function("document.getElementById('model-info').textContent.includes('lenet5')")
        return self.page

    def sent(self) -> list[tuple[str, dict]]:
        """(path, form fields) of every form the page sent, in order; a file as its bytes."""
        forms = self.page.evaluate("Promise.all(window.cnnlabSent)")
        decode = lambda v: base64.b64decode(v["base64"]) if isinstance(v, dict) else v  # noqa: E731
        return [(f["path"], {k: decode(v) for k, v in f["fields"].items()}) for f in forms]

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.outside, f"the page fetched from elsewhere: {self.outside}"
        assert not self.bad, f"answers of 400 or more: {self.bad}"


@pytest.fixture
def page(browser, server):
    p = Page(browser, server)
    yield p
    p.page.close()
    p.check()


def _upload(page, path: Path, index: int = 3) -> None:
    """Choose a file and wait until its prediction and saliency are shown."""
    before = page.evaluate("window.cnnlabUpdates")
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"window.cnnlabUpdates > {before}")
    page.wait_for_function("(document.getElementById('saliency')?.src || '').startsWith('data:image/png')")


def _draw(page, steps: int = 15) -> None:
    box = page.locator("#canvas").bounding_box()
    x0, y0 = box["x"] + 0.7 * box["width"], box["y"] + 0.2 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, steps):
        page.mouse.move(x0 - 8 * i * box["width"] / 280, y0 + 12 * i * box["height"] / 280)
    page.mouse.up()


RESULTS_EMPTY = """() => ({
    prediction: document.getElementById('prediction').textContent,
    model: document.getElementById('prediction').dataset.model || null,
    bars: document.querySelectorAll('#bars .bar').length,
    images: document.querySelectorAll('#explain-card img, #features img').length,
    notes: document.getElementById('notes').textContent + document.getElementById('hint').textContent,
    error: document.getElementById('error').textContent,
})"""


@pytest.fixture
def square(tmp_path) -> Path:
    png = tmp_path / "square.png"
    png.write_bytes(square_png(3))
    return png


def test_page_in_chromium(page, browser, serve_run, square, tmp_path):
    """Upload, draw, a random test image, another saliency method, the API docs: all from the server itself."""
    from cnnlab.io import read_meta

    classes = read_meta(serve_run).classes
    p = page.open()
    _upload(p, square)
    assert p.get_attribute("#prediction", "data-class") == classes[3]
    assert p.locator("#bars .bar").count() == 5
    assert p.locator("#features img").count() == 6
    seen = p.get_attribute("#seen", "src")

    before = p.evaluate("window.cnnlabUpdates")
    _draw(p)  # a stroke over the image: the prediction updates from the canvas
    p.wait_for_function(f"window.cnnlabUpdates > {before}")
    p.wait_for_function(f"document.getElementById('seen').src !== {seen!r}")
    assert p.get_attribute("#prediction", "data-class") in classes

    p.click("#random")  # a random test image with its true label
    p.wait_for_function("document.getElementById('truth').textContent.includes('true label')")
    p.select_option("#method", "gradcam")
    p.wait_for_function("document.getElementById('saliency')?.dataset.method === 'gradcam'")
    docs = Page(browser, page.server)  # the API docs render from the app's own files too
    docs.page.goto(page.server + "/docs")
    docs.page.wait_for_selector(".opblock-summary")
    assert docs.page.locator(".opblock").count() >= 5  # health, models, predict, explain, random
    docs.page.close()
    assert not docs.outside, docs.outside
    shot = tmp_path / "serve.png"
    p.screenshot(path=str(shot), full_page=True)
    if os.environ.get("CNNLAB_SERVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["CNNLAB_SERVE_SCREENSHOT"])
    assert shot.stat().st_size > 10_000


def test_before_any_input_the_panes_say_so_without_broken_images(page):
    p = page.open()
    p.wait_for_selector("#examples .thumb img")
    assert p.evaluate("document.querySelectorAll('img:not([src]), img[src=\"\"]').length") == 0
    assert p.locator("#saliency").count() == 0 and p.locator("#seen").count() == 0
    for frame in ("#seen-frame", "#saliency-frame", "#features", "#prediction"):
        assert "Draw or upload an image" in p.inner_text(frame)
    assert p.is_hidden("#features-legend")


def test_clear_empties_every_result_pane(page, square):
    p = page.open()
    _upload(p, square)
    p.click("#clear")
    state = p.evaluate(RESULTS_EMPTY)
    assert state == {
        "prediction": "Draw or upload an image",
        "model": None,
        "bars": 0,
        "images": 0,
        "notes": "",
        "error": "",
    }
    assert p.evaluate("document.querySelectorAll('img:not([src])').length") == 0


def test_another_model_drops_the_old_results_and_asks_the_new_one(page, square):
    p = page.open()
    _upload(p, square)
    assert p.get_attribute("#prediction", "data-model") == "toy-lenet"
    # in the same task as the change: nothing of the first model's answer is left on the page
    switch = "() => { const s = document.getElementById('model'); s.value = 'toy-lenet-2'; "
    state = p.evaluate(switch + f"s.dispatchEvent(new Event('change')); return ({RESULTS_EMPTY})(); }}")
    assert (state["model"], state["bars"], state["images"]) == (None, 0, 0)
    p.wait_for_function("document.getElementById('prediction').dataset.model === 'toy-lenet-2'")
    p.wait_for_function("(document.getElementById('saliency')?.src || '').startsWith('data:image/png')")
    sent = page.sent()
    assert [path for path, _ in sent] == ["/api/predict", "/api/explain"] * 2
    assert [f["model"] for _, f in sent] == ["toy-lenet"] * 2 + ["toy-lenet-2"] * 2


def test_an_error_is_shown_alone(page, square, tmp_path):
    p = page.open()
    _upload(p, square)
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"hello, not an image")
    mark = len(page.answered)
    p.set_input_files("#file", str(bad))
    p.wait_for_function("document.getElementById('error').textContent.includes('not an image')")
    page.wait_for_answers("/api/predict", "/api/explain", since=mark)  # the explanation's may come later
    assert sorted(page.bad) == sorted(f"415 {page.server}/api/{verb}" for verb in ("predict", "explain"))
    page.bad.clear()  # those were asked for
    state = p.evaluate(RESULTS_EMPTY)
    assert (state["model"], state["bars"], state["images"], state["notes"]) == (None, 0, 0, "")
    assert state["prediction"] == ""


def test_a_tap_on_the_canvas_is_not_predicted(page, square, tmp_path):
    p = page.open()
    _upload(p, square)
    p.click("#clear")
    asked = len(page.sent())
    box = p.locator("#canvas").bounding_box()
    p.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a dot of the stroke's width
    p.wait_for_function("document.getElementById('prediction').textContent.includes('blank')")
    p.wait_for_timeout(300)  # past the drawing's debounce: still nothing sent
    assert len(page.sent()) == asked
    assert p.evaluate(RESULTS_EMPTY)["bars"] == 0
    before = p.evaluate("window.cnnlabUpdates")
    _draw(p)  # a stroke is predicted
    p.wait_for_function(f"window.cnnlabUpdates > {before}")
    empty = tmp_path / "empty.png"
    Image.new("L", (40, 30), 200).save(empty)  # an upload of one colour is not sent either
    asked = len(page.sent())
    p.set_input_files("#file", str(empty))
    p.wait_for_function("document.getElementById('prediction').textContent.startsWith('The image is blank')")
    assert len(page.sent()) == asked and p.evaluate(RESULTS_EMPTY)["images"] == 0


def test_a_picture_that_is_not_square_reaches_the_network_as_the_canvas_shows_it(page, tmp_path):
    wide = np.full((28, 56), 60, np.uint8)  # gray, not black: the padding shows
    wide[8:16, 40:48] = 255  # a bright square towards the right
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    p = page.open()
    _upload(p, path)
    form = next(f for path, f in page.sent() if path == "/api/predict")
    sent = np.asarray(Image.open(io.BytesIO(form["image"])).convert("L"))
    assert sent.shape == (56, 56)  # padded to a square, not stretched: 14 black rows above and below
    assert sent[:14].max() == 0 and sent[42:].max() == 0
    assert np.abs(sent[14:42].astype(int) - wide).max() <= 2
    url = p.evaluate("document.getElementById('canvas').toDataURL()")
    shown = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L")
    small = [np.asarray(im.resize((28, 28), Image.Resampling.BOX), float) for im in (shown, Image.fromarray(sent))]
    assert np.abs(small[0] - small[1]).mean() < 2  # the canvas and the network's input agree, bars included
    assert "padded 56×28 with black to 56×56" in p.inner_text("#notes")
    seen = p.get_attribute("#seen", "src")  # the network's input, as the server made it: 28×28, bars kept
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(seen.split(",", 1)[1]))).convert("L"), int)
    assert seen.shape == (28, 28) and seen[:6].max() == 0 and seen[22:].max() == 0
    assert abs(seen[8:20, :16].mean() - 60) < 3


def _long_names(route) -> None:
    """/api/models as served, with the second model's name a long notation string."""
    body = route.fetch().json()
    body["models"][1]["model"] = NOTATION
    route.fulfill(json=body)


def test_the_model_picker_stays_compact_with_long_names(page):
    page.page.route("**/api/models", _long_names)
    p = page.open()
    assert p.locator("#model option").count() == 2
    assert p.locator("#model").bounding_box()["width"] <= 240
    assert NOTATION in p.get_attribute("#model option >> nth=1", "title")
    assert p.inner_text("#model option >> nth=1") == "toy-lenet-2"


def test_the_page_fits_a_phone(browser, server, square):
    page = Page(browser, server, width=390, height=844)
    page.page.route("**/api/models", _long_names)
    p = page.open()
    p.select_option("#model", "toy-lenet-2")
    _upload(p, square)
    p.wait_for_selector("#examples .thumb img")
    assert p.evaluate("document.scrollingElement.scrollWidth") <= 390
    canvas = p.locator("#canvas").bounding_box()
    assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= 390
    page.page.close()
    page.check()


def test_the_file_chooser_opens_from_the_keyboard(page, square):
    p = page.open()
    choosers = []  # listening from the start: playwright turns the interception on without waiting for it
    p.on("filechooser", lambda chooser: choosers.append(chooser))
    for _ in range(40):  # Tab through the page as a keyboard user does
        p.keyboard.press("Tab")
        if p.evaluate("document.activeElement.id") == "choose":
            break
    else:
        pytest.fail("no control to choose a file is reachable with Tab")
    for key in ("Enter", " "):
        opened = len(choosers)
        p.keyboard.press(key)
        for _ in range(400):
            if len(choosers) > opened:
                break
            p.wait_for_timeout(25)
        assert len(choosers) == opened + 1, f"{key!r} did not open the file chooser"
        before = p.evaluate("window.cnnlabUpdates")
        choosers[-1].set_files(str(square))
        p.wait_for_function(f"window.cnnlabUpdates > {before}")


def test_examples_and_the_class_to_explain(page, serve_run):
    from cnnlab.io import read_meta

    classes = read_meta(serve_run).classes
    p = page.open()
    p.wait_for_function("document.querySelectorAll('#examples .thumb img').length === 6")
    p.click("#examples .thumb >> nth=0")
    p.wait_for_function("document.getElementById('truth').textContent.includes('true label')")
    p.wait_for_function("(document.getElementById('saliency')?.src || '').startsWith('data:image/png')")
    predicted = p.get_attribute("#prediction", "data-class")
    other = next(k for k, name in enumerate(classes) if name != predicted)
    asked = len(page.sent())
    p.select_option("#target-class", str(other))
    p.wait_for_function(f"document.getElementById('saliency').dataset.target === {classes[other]!r}")
    sent = page.sent()[asked:]
    assert [path for path, _ in sent] == ["/api/explain"]  # the prediction stands
    assert sent[0][1]["target"] == str(other)
    assert p.get_attribute("#prediction", "data-class") == predicted
    assert p.inner_text("#target") == classes[other]


def test_legends_say_what_the_colours_mean(page, square):
    p = page.open()
    _upload(p, square)
    assert p.is_visible("#saliency-legend .inferno") and "bright yellow: most" in p.inner_text("#saliency-legend")
    p.wait_for_selector("#features-legend .viridis", state="visible")
    low, high = float(p.inner_text("#feature-min")), float(p.inner_text("#feature-max"))
    assert low < high and "one colour scale for all maps" in p.inner_text("#features-legend")


def test_an_unsure_prediction_gets_a_note(page, square, serve_run):
    from cnnlab.io import read_meta

    classes = read_meta(serve_run).classes
    top = [{"class": c, "index": i, "probability": 0.1} for i, c in enumerate(classes[:5])]
    page.page.route("**/api/predict", lambda r: r.fulfill(json={"model": "toy-lenet", "top": top, "notes": []}))
    p = page.open()
    _upload(p, square)
    assert "Unsure" in p.inner_text("#hint") and "fashion-mnist" in p.inner_text("#hint")


def test_a_model_that_only_predicts_says_why_there_is_no_explanation(page, square):
    def onnx_second(route) -> None:  # what /api/models says of an .onnx file: no explanation methods
        body = route.fetch().json()
        body["models"][1]["methods"] = []
        route.fulfill(json=body)

    page.page.route("**/api/models", onnx_second)
    p = page.open()
    p.select_option("#model", "toy-lenet-2")
    assert p.is_disabled("#method") and p.is_disabled("#target-class")
    before = len(page.sent())
    p.set_input_files("#file", str(square))
    p.wait_for_function("document.getElementById('prediction').dataset.model === 'toy-lenet-2'")
    assert [path for path, _ in page.sent()[before:]] == ["/api/predict"]
    assert "ONNX" in p.inner_text("#saliency-frame") and p.locator("#explain-card img").count() == 0


def test_answers_that_arrive_after_clear_are_dropped(page, square):
    held = []  # the page's requests, held until after Clear
    page.page.route("**/api/{predict,explain}", lambda route: held.append(route))
    p = page.open()
    p.set_input_files("#file", str(square))
    for _ in range(200):
        if len(held) == 2:
            break
        p.wait_for_timeout(25)
    assert sorted(r.request.url.rsplit("/", 1)[1] for r in held) == ["explain", "predict"]
    p.click("#clear")
    for route in held:
        route.continue_()
    page.wait_for_answers("/api/predict", "/api/explain")
    p.wait_for_timeout(200)
    assert p.evaluate(RESULTS_EMPTY)["prediction"] == "Draw or upload an image"
    assert p.evaluate("window.cnnlabUpdates") == 0 and p.locator("img#saliency").count() == 0


def test_an_image_the_browser_cannot_read_leaves_nothing_on_the_canvas(page, square, tmp_path):
    p = page.open()
    _upload(p, square)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image either")
    mark = len(page.answered)
    p.set_input_files("#file", str(bad))
    p.wait_for_function("document.getElementById('error').textContent.length > 0")
    brightest = p.evaluate(
        "Math.max(...document.getElementById('canvas').getContext('2d').getImageData(0, 0, 280, 280).data"
        ".filter((_, i) => i % 4 === 0))"
    )
    assert brightest == 0
    page.wait_for_answers("/api/predict", "/api/explain", since=mark)
    page.bad.clear()  # both refusals were asked for


def test_without_test_images_the_examples_say_why(page):
    why = "test images of fashion-mnist are not available on the server: not found"
    page.page.route("**/api/models/*/random*", lambda r: r.fulfill(status=404, json={"error": why}))
    p = page.open()
    p.wait_for_function(f"document.getElementById('examples').textContent === {why!r}")
    page.wait_for_answers("/api/models/toy-lenet/random?seed=1")
    assert [a for a in page.answered if "/random" in a] == ["/api/models/toy-lenet/random?seed=1"]  # asked once
    page.bad.clear()  # the refusal was made up here
