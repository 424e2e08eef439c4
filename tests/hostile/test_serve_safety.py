"""`cnnlab serve` answers only this machine's pages, reads only data the user named, and bounds its memory.

Host and Origin are checked (DNS rebinding, cross-site requests); a data path inside a served model file is a hint,
never opened; concurrent large uploads share one memory budget (a request waits for room, a full queue is 503);
a flood of slow explanations holds no thread that a prediction needs; the command line refuses bad ports and
limits in one line."""

from __future__ import annotations

import io
import re
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import train_toy_run
from tests.hostile.helpers import env, lying_model_file, model_file, peak_rss_mb, refused, run_cli

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'cnnlab[serve]'")


@pytest.fixture(scope="module")
def run(fake_idx, tmp_path_factory) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("serve-safety") / "toy", fake_idx, epochs=1)


def client(*paths, **kwargs):
    from fastapi.testclient import TestClient

    from cnnlab.serve.app import create_app

    return TestClient(create_app(list(paths), **kwargs), raise_server_exceptions=False)


def png_bytes(side: int = 28, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    arr = np.full((side, side, len(mode)) if len(mode) > 1 else (side, side), 200, np.uint8)
    arr[:8, :8] = np.random.default_rng(0).integers(0, 256, arr[:8, :8].shape, dtype=np.uint8)
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def one_line(r) -> str:
    message = r.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


# ---- Host and Origin


def test_the_host_header_must_name_this_server(run):
    with client(run, allowed_hosts=["myhost.local"]) as c:
        r = c.get("/api/health", headers={"Host": "attacker.example:8000"})  # a DNS-rebound name
        assert r.status_code == 403 and "--allow-host attacker.example" in one_line(r)
        assert c.get("/", headers={"Host": "attacker.example"}).status_code == 403
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "myhost.local:8000", "testserver"):
            assert c.get("/api/health", headers={"Host": host}).status_code == 200, host


def test_cross_origin_requests_are_refused_before_any_work(run, monkeypatch):
    from cnnlab.serve import app

    calls = []
    monkeypatch.setattr(app, "predict_image", lambda *a: calls.append(a) or [])
    image = {"image": ("x.png", png_bytes(), "image/png")}
    with client(run) as c:
        r = c.post("/api/predict", files=image, headers={"Origin": "http://attacker.example"})
        assert r.status_code == 403 and "attacker.example" in one_line(r) and not calls
        r = c.post("/api/predict", files=image, headers={"Origin": "null"})  # a sandboxed page, a file:// page
        assert r.status_code == 403 and not calls
        r = c.get("/api/models/toy/random", headers={"Sec-Fetch-Site": "cross-site"})  # an <img> on another site
        assert r.status_code == 403
        assert c.post("/api/predict", files=image, headers={"Origin": "http://testserver"}).status_code == 200
        assert c.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # a link to the page is fine
    assert len(calls) == 1


# ---- a data reference inside a served model file is a hint, never a path the server opens


@pytest.fixture
def opened(monkeypatch) -> list:
    """What the server's data loading was asked to read (the call is recorded, then refused)."""
    calls = []

    def spy(spec, data_dir=None, *a, **k):
        calls.append((spec, data_dir))
        raise ValueError(f"{spec}: not here")

    monkeypatch.setattr("cnnlab.run.splits.load_dataset", spy)
    return calls


def test_a_data_path_in_a_model_file_is_never_opened(tmp_path, opened):
    secret = tmp_path / "secret.csv"
    secret.write_text("TOPSECRET line of a private file\n")
    served = lying_model_file(tmp_path / "m.safetensors", data={"source": f"csv:{secret}"})
    with client(served) as c:
        r = c.get("/api/models/m/random")
    assert r.status_code == 404 and "--data csv:" in one_line(r) and "TOPSECRET" not in r.text
    assert opened == []
    with client(served, data=[f"csv:{secret}"]) as c:  # named by the user: read
        assert c.get("/api/models/m/random").status_code == 404
    assert opened == [(f"csv:{secret}", None)]


def test_a_relative_data_path_never_resolves_against_the_server_folder(tmp_path, opened, monkeypatch):
    served = lying_model_file(tmp_path / "m.safetensors", data={"source": "npz:private.npz"})
    (tmp_path / "private.npz").write_bytes(b"PK")
    monkeypatch.chdir(tmp_path)
    with client(served) as c:
        assert c.get("/api/models/m/random").status_code == 404
    assert opened == []


def test_a_named_data_set_is_read_from_the_folder_the_user_gave_not_the_file(tmp_path, opened):
    served = lying_model_file(tmp_path / "m.safetensors", data={"source": "fashion-mnist", "data_dir": "/etc"})
    with client(served) as c:
        c.get("/api/models/m/random")
    with client(served, data_dir=str(tmp_path)) as c:
        c.get("/api/models/m/random")
    assert opened == [("fashion-mnist", None), ("fashion-mnist", str(tmp_path))]


# ---- memory: one budget for all requests; a slow explanation starves nobody


def test_an_explanation_too_large_for_the_budget_is_refused_at_once(tmp_path, monkeypatch):
    from cnnlab.serve import app

    monkeypatch.setattr(app, "explain_image", lambda *a, **k: pytest.fail("the explanation ran"))  # gigabytes
    served = lying_model_file(
        tmp_path / "big.safetensors",
        model="CL8k3-GAP-FC10",
        model_args={"num_classes": 10, "in_chans": 1, "img_size": 28},
        input_size=[1, 4096, 4096],  # allowed by the metadata check; a 4096² explanation needs gigabytes
    )
    with client(served) as c:
        started = time.perf_counter()
        r = c.post("/api/explain", files={"image": ("x.png", png_bytes(), "image/png")})
        assert r.status_code == 413 and "--max-memory" in one_line(r)
        assert time.perf_counter() - started < 5  # refused before any work


def test_nothing_is_spooled_to_disk_even_above_the_default_limit(run, monkeypatch):
    import tempfile

    rolled = []
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", lambda self: rolled.append(self))
    with client(run, max_bytes=20 * 2**20) as c:
        r = c.post("/api/predict", files={"image": ("x.png", b"x" * (15 * 2**20), "image/png")})
    assert r.status_code == 415 and rolled == []


class Server:
    """`create_app` under uvicorn in a thread of this process (the thread pool and event loop as deployed)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def post(url: str, data: bytes, model: str | None = None) -> int:
    import httpx

    fields = {"model": model} if model else {}
    try:
        r = httpx.post(url, files={"image": ("x.png", data, "image/png")}, data=fields, timeout=120)
    except httpx.HTTPError:
        return -1
    return r.status_code


@pytest.mark.slow
def test_a_flood_of_slow_explanations_does_not_starve_predict(run, tmp_path, monkeypatch):
    import cnnlab.explain as ex
    from cnnlab.serve.app import create_app

    saliency = ex.saliency

    def slow(*a, **k):
        time.sleep(0.3)
        return saliency(*a, **k)

    monkeypatch.setattr(ex, "saliency", slow)
    other = model_file(tmp_path / "other.safetensors")
    statuses: list[int] = []
    with Server(create_app([run, other])) as s:
        flood = [
            threading.Thread(target=lambda: statuses.append(post(f"{s.url}/api/explain", png_bytes(), "toy")))
            for _ in range(60)
        ]
        for t in flood:
            t.start()
        time.sleep(1.0)
        started = time.perf_counter()
        assert post(f"{s.url}/api/predict", png_bytes(), "other") == 200
        waited = time.perf_counter() - started
        for t in flood:
            t.join()
    assert waited < 2.0, f"a prediction waited {waited:.1f} s behind explanations of another model"
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 9  # one at work and eight waiting get through


SERVE_ADDRESS_SPACE = int(1.75 * 2**30)  # RLIMIT_AS of the server below: it peaks near 1.1 GB of address space


@pytest.mark.slow
def test_concurrent_large_uploads_stay_within_the_memory_budget(tmp_path):
    """24 uploads of a 2048² RGBA PNG at once (about 70 MB each to decode and composite): before the budget the
    server held them all (1.7 GB more, beyond its RLIMIT_AS); with --max-memory 256 it decodes them a few at a
    time, every request answered, its peak resident memory within the budget and a margin."""
    served = model_file(tmp_path / "m.safetensors")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "serve", served, "--port", "0", "--max-memory", "256"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (SERVE_ADDRESS_SPACE, SERVE_ADDRESS_SPACE)),
    )
    try:
        url = re.search(r"http://\S+?:\d+", proc.stdout.readline()).group(0)
        urllib.request.urlopen(f"{url}/api/health", timeout=30).close()
        baseline = peak_rss_mb(proc.pid)
        data, statuses = png_bytes(2048, "RGBA"), []
        threads = [
            threading.Thread(target=lambda: statuses.append(post(f"{url}/api/predict", data))) for _ in range(24)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = peak_rss_mb(proc.pid)
        assert statuses == [200] * 24
        assert peak - baseline < 256 + 160, f"peak {peak:.0f} MB over a baseline of {baseline:.0f} MB"
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(30)


# ---- the command line


@pytest.mark.parametrize(
    ("flags", "flag"),
    [(["--port", "99999"], "--port"), (["--port", "-1"], "--port"), (["--max-bytes", "0"], "--max-bytes")],
)
def test_bad_ports_and_limits_are_one_line(run, flags, flag):
    refused(run_cli("serve", run, *flags), flag)


def test_a_port_in_use_is_one_line_before_any_address_is_printed(run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        proc = run_cli("serve", run, "--port", taken.getsockname()[1])
    refused(proc, "cannot listen", "--port")
    assert "http://" not in proc.stdout


@pytest.mark.slow
def test_port_zero_prints_the_real_port(run):
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "serve", run, "--port", "0"], stdout=subprocess.PIPE, text=True, env=env()
    )
    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=30) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(30)
