"""The screenshot of `cnnlab serve`: the page in headless chromium with a random test image of one class (docs/serve.md).

    PYTHONPATH=src python scripts/serve_screenshot.py runs/NAME [--class "Ankle boot"] [--out docs/images/serve.png]

For a detection or segmentation run, the first random test image (from --seed on) whose classes, each as often as
it holds them, are those predicted and that holds at least --objects objects (docs/images/serve_detect.png,
serve_segment.png): `python scripts/serve_screenshot.py runs/DETECT --data coco:SCENES --out ...`.

Needs the serve extra, the Python playwright package and Debian's chromium (/usr/bin/chromium); only 127.0.0.1 is
contacted.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--class", dest="cls", default="Ankle boot", help="true class of the test image to show")
    p.add_argument("--method", default="smoothgrad")
    p.add_argument("--out", default=str(ROOT / "docs/images/serve.png"))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--data", help="a task run's data (coco:PATH, masks:PATH), for its random test images")
    p.add_argument("--objects", type=int, default=2, help="a task run: objects the image holds, at least")
    args = p.parse_args()

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    data = ["--data", args.data] if args.data else []
    server = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", args.run, "--port", str(port), *data], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 600}, device_scale_factor=1)
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.length > 0")
            if page.evaluate("document.body.dataset.task") == "classify":
                classified(page, args)
            else:
                found(page, args)
            page.wait_for_selector("#examples .thumb img")
            page.wait_for_timeout(500)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(args.out)
    return 0


def classified(page, args) -> None:
    """A test image of the class, predicted right, with its saliency."""
    page.select_option("#method", args.method)
    for _ in range(60):
        before = page.evaluate("window.cnnlabUpdates")
        page.click("#random")
        page.wait_for_function(f"window.cnnlabUpdates > {before}")
        page.wait_for_function("(document.getElementById('saliency')?.src || '').startsWith('data:')")
        truth = page.locator("#truth b").text_content()
        if truth == args.cls and page.get_attribute("#prediction", "data-class") == args.cls:
            return


def found(page, args) -> None:
    """A task model: a test image of at least `args.objects` objects whose classes are those predicted (boxes: each
    as often; a mask: the classes it paints), drawn over the image."""
    for _ in range(200):
        before = page.evaluate("window.cnnlabOverlays")
        page.click("#random")
        page.wait_for_function(f"window.cnnlabOverlays > {before}")
        truth = sorted(filter(None, page.locator("#truth b").text_content().split(", ")))
        if page.evaluate("document.body.dataset.task") == "segment":
            predicted = sorted(filter(None, (page.get_attribute("#prediction", "data-classes") or "").split(",")))
            truth = sorted(set(truth))
        else:
            rows = page.locator("#legend li")
            predicted = sorted(rows.nth(i).get_attribute("data-class") for i in range(rows.count()))
        if len(truth) >= args.objects and predicted == truth:
            return


if __name__ == "__main__":
    sys.exit(main())
