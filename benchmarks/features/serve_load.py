"""`cnnlab serve` under load: requests/s and p50/p99 latency of POST /api/predict at 1 and 8 concurrent clients.

Starts `python -m cnnlab serve RUN` on a free port of 127.0.0.1 (loopback only: this script never contacts another
host), then runs each concurrency level for --seconds (default 30) with keep-alive HTTP/1.1 clients that send the
same PNG again and again, after a short warm-up. Client and server share the machine, so the figures are a lower
bound for the server alone. With --append the table goes to BENCHMARKS.md under "## cnnlab serve under load".

    PYTHONPATH=src python -m benchmarks.features.serve_load runs/NAME [--image shoe.png] [--seconds 30] [--append]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

from benchmarks import ROOT

HOST = "127.0.0.1"  # loopback only, by design
SECTION = "## cnnlab serve under load"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def default_png(run: str) -> bytes:
    """A test image of the run's data set when it is installed, else a drawn shape, as PNG bytes."""
    from PIL import Image, ImageDraw

    from cnnlab.io import read_meta

    c, h, w = read_meta(run).input_size
    try:
        from cnnlab.data.images import tensor_to_image
        from cnnlab.run.splits import run_splits

        test = run_splits(run, allow_download=False).split("test")
        im = tensor_to_image(test.images[0])
    except Exception:
        im = Image.new("L" if c == 1 else "RGB", (w, h))
        ImageDraw.Draw(im).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill="white")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def multipart(png: bytes) -> tuple[bytes, str]:
    boundary = "cnnlab-load-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def client(port: int, body: bytes, ctype: str, until: float, latencies: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": ctype, "Content-Length": str(len(body))}
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/predict", body, headers)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append(f"{r.status} {data[:80]!r}")
                continue
        except (OSError, http.client.HTTPException) as e:
            errors.append(repr(e))
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            continue
        latencies.append(time.perf_counter() - t0)
    conn.close()


def load(port: int, body: bytes, ctype: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    until = start + seconds
    threads = [
        threading.Thread(target=client, args=(port, body, ctype, until, latencies, errors)) for _ in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": len(errors),
        "seconds": round(elapsed, 1),
        "rps": len(lat) / elapsed,
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
        "first_error": errors[0] if errors else None,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run folder or model file to serve")
    p.add_argument("--image", help="PNG/JPEG to send (default: the first test image of the run's data set)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--clients", default="1,8", help="concurrency levels (default: 1,8)")
    p.add_argument("--append", action="store_true", help=f"append the table to BENCHMARKS.md under '{SECTION}'")
    args = p.parse_args()

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    body, ctype = multipart(Path(args.image).read_bytes() if args.image else default_png(args.run))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "serve", args.run, "--host", HOST, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if server.poll() is not None:
                sys.exit(f"cnnlab serve exited: {server.stderr.read()}")
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=1)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        load(port, body, ctype, 2, 3.0)  # warm-up
        rows = [load(port, body, ctype, int(c), args.seconds) for c in args.clients.split(",")]
    finally:
        server.terminate()
        server.wait(10)

    import torch

    from cnnlab.io import read_meta

    meta = read_meta(args.run)
    cmd = "PYTHONPATH=src python -m benchmarks.features.serve_load " + " ".join(sys.argv[1:]).replace(" --append", "")
    lines = [
        f"Measured {datetime.date.today()} with `{cmd}`: POST /api/predict (one {len(body):,}-byte multipart PNG per "
        f"request, keep-alive) against `cnnlab serve` on {HOST}, {args.seconds:.0f} s per level after a 3 s warm-up.",
        "",
        f"- model: {meta.model} ({'×'.join(map(str, meta.input_size))}), precision {meta.precision}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs visible (client and server on the same machine); "
        f"1-minute load average {load_before:.1f} before the run (other processes share the CPUs)",
        f"- torch {torch.__version__}, fastapi {version('fastapi')}, uvicorn {version('uvicorn')}, "
        f"Python {platform.python_version()}",
        "",
        "| concurrent clients | requests | requests/s | p50 latency (ms) | p99 latency (ms) | errors |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['requests']:,} | {r['rps']:,.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['errors']} |"
        )
    text = "\n".join(lines)
    print(text)
    print(json.dumps(rows, indent=2), file=sys.stderr)
    if args.append:
        path = ROOT / "BENCHMARKS.md"
        old = path.read_text()
        block = f"{SECTION}\n\n{text}\n"
        if SECTION in old:  # replace the section, keep what follows it
            head, _, rest = old.partition(SECTION)
            nxt = rest.find("\n## ")
            old = head.rstrip() + "\n\n" + block + (rest[nxt:] if nxt >= 0 else "")
            path.write_text(old)
        else:
            path.write_text(old.rstrip() + "\n\n" + block)
        print(f"appended to {path}")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
