"""Peak memory of `cnnlab serve` under concurrent large uploads: the server's VmHWM (peak RSS) and VmRSS after.

    PYTHONPATH=src python scripts/serve_peak_rss.py [--requests 50] [--image rgba|f] [--route predict|explain]

Writes a LeNet-5 model file and one 4096×4096 image (a ~75 KB RGBA PNG, or a ~100 KB mode-F TIFF) to a temporary
folder, starts `python -m cnnlab serve` on a free port of 127.0.0.1, sends the image `--requests` times at once
(one thread per request), and prints the status codes and the server process's memory from /proc (Linux).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 4096


def test_image(kind: str) -> tuple[bytes, str]:
    """A large image that compresses well: random 64×64 blocks on a flat background."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    if kind == "rgba":
        arr = np.full((SIDE, SIDE, 4), 200, np.uint8)
        arr[:64, :64] = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
        Image.fromarray(arr, "RGBA").save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    arr = np.zeros((SIDE, SIDE), np.float32)
    arr[:64, :64] = rng.random((64, 64), dtype=np.float32)
    Image.fromarray(arr, "F").save(buf, format="TIFF", compression="tiff_adobe_deflate")
    return buf.getvalue(), "image/tiff"


def multipart(data: bytes, ctype: str) -> tuple[bytes, str]:
    boundary = "cnnlab-peak-rss"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x"\r\nContent-Type: {ctype}\r\n\r\n'
    )
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def memory(pid: int) -> dict[str, float]:
    """VmHWM (peak resident) and VmRSS of `pid`, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def post(url: str, body: bytes, ctype: str) -> int:
    req = urllib.request.Request(url, body, {"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return -1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--image", choices=("rgba", "f"), default="rgba")
    p.add_argument("--route", choices=("predict", "explain"), default="predict")
    args = p.parse_args()

    from cnnlab.io import save_model
    from cnnlab.models import create_model

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "lenet.safetensors"
        save_model(model, create_model("lenet5", num_classes=10, in_chans=1), classes=[str(i) for i in range(10)])
        data, ctype = test_image(args.image)
        body, form_type = multipart(data, ctype)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", str(model), "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{base}/api/health", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            before = memory(server.pid)
            statuses: list[int] = []
            started = time.perf_counter()
            threads = [
                threading.Thread(target=lambda: statuses.append(post(f"{base}/api/{args.route}", body, form_type)))
                for _ in range(args.requests)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
            time.sleep(1.0)
            after = memory(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    result = {
        "requests": args.requests,
        "image": f"{SIDE}x{SIDE} {args.image} ({len(data) / 1e3:.0f} KB)",
        "route": args.route,
        "statuses": dict(Counter(statuses)),
        "seconds": round(seconds, 2),
        "rss_before_mb": before["VmRSS"],
        "peak_rss_mb": after["VmHWM"],
        "rss_after_mb": after["VmRSS"],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
