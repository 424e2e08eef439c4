"""`cnnlab serve` in a real browser: headless chromium (the system's, driven by playwright) against the real server.

Starts `python -m cnnlab serve RUN --port P` on a free port with the tiny trained run, uploads a PNG, checks that the
predicted class and a saliency image appear, draws a stroke on the canvas, checks that the prediction updates, and
saves a screenshot (in pytest's tmp folder, and at $CNNLAB_SERVE_SCREENSHOT when set).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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

if CHROMIUM is None:
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does as root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the Python playwright package is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(serve_run, fake_idx):
    """`python -m cnnlab serve` as a true subprocess: the browser needs a server that runs until it is stopped, and
    the test stops it as a user does (SIGTERM), which only a process can receive."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "cnnlab", "serve", str(serve_run), "--port", str(port), "--data-dir", str(fake_idx)]
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


def test_page_in_chromium(server, serve_run, tmp_path):
    """Against `cnnlab serve` running as a true subprocess (the `server` fixture), in headless chromium."""
    from cnnlab.io import read_meta

    classes = read_meta(serve_run).classes
    png = tmp_path / "square.png"
    png.write_bytes(square_png(3))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside = []
        page.on("request", lambda r: None if r.url.startswith((server, "data:")) else outside.append(r.url))
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model-info').textContent.includes('lenet5')")

        # upload a PNG: the predicted class and the saliency image appear
        page.set_input_files("#file", str(png))
        page.wait_for_function(f"document.getElementById('prediction').textContent.startsWith({classes[3]!r})")
        page.wait_for_function("(document.getElementById('saliency').src || '').startsWith('data:image/png')")
        assert page.locator("#bars .bar").count() == 5
        assert page.locator("#features img").count() == 6
        seen = page.get_attribute("#seen", "src")

        # draw a stroke: the prediction updates from the canvas
        before = page.evaluate("window.cnnlabUpdates")
        box = page.locator("#canvas").bounding_box()
        x0, y0 = box["x"] + 0.7 * box["width"], box["y"] + 0.2 * box["height"]
        page.mouse.move(x0, y0)
        page.mouse.down()
        for i in range(1, 15):
            page.mouse.move(x0 - 8 * i, y0 + 12 * i)
        page.mouse.up()
        page.wait_for_function(f"window.cnnlabUpdates > {before}")
        page.wait_for_function(f"document.getElementById('seen').src !== {seen!r}")
        assert page.get_attribute("#prediction", "data-class") in classes

        # a random test image with its true label
        page.click("#random")
        page.wait_for_function("document.getElementById('truth').textContent.includes('true label')")

        page.select_option("#method", "gradcam")
        page.wait_for_function("document.getElementById('saliency').dataset.method === 'gradcam'")
        # the API docs render from the app's own files too
        docs = browser.new_page()
        docs.on("request", lambda r: None if r.url.startswith((server, "data:")) else outside.append(r.url))
        docs.goto(server + "/docs")
        docs.wait_for_selector(".opblock-summary")
        assert docs.locator(".opblock").count() >= 5  # health, models, predict, explain, random
        shot = tmp_path / "serve.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("CNNLAB_SERVE_SCREENSHOT"):
            shutil.copy(shot, os.environ["CNNLAB_SERVE_SCREENSHOT"])
        browser.close()
    assert shot.stat().st_size > 10_000
    assert not errors, errors
    assert not outside, f"the page fetched from elsewhere: {outside}"
