"""The screenshot of `cnnlab serve`: the page in headless chromium with a random test image of one class (docs/serve.md).

    PYTHONPATH=src python scripts/serve_screenshot.py runs/NAME [--class "Ankle boot"] [--out docs/images/serve.png]

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
    args = p.parse_args()

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", args.run, "--port", str(port)], env=env)
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
            page.select_option("#method", args.method)
            for _ in range(60):  # a test image of the class, predicted right
                before = page.evaluate("window.cnnlabUpdates")
                page.click("#random")
                page.wait_for_function(f"window.cnnlabUpdates > {before}")
                page.wait_for_function("(document.getElementById('saliency')?.src || '').startsWith('data:')")
                truth = page.locator("#truth b").text_content()
                if truth == args.cls and page.get_attribute("#prediction", "data-class") == args.cls:
                    break
            page.wait_for_timeout(500)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
