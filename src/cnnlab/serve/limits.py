"""What `cnnlab serve` answers, and what a request may cost it, decided before any work is done.

- `SameOrigin` (ASGI middleware): the server answers only requests addressed to it. The `Host` header must name
  the address the connection arrived at, a loopback name, or a name given with `--allow-host` (a web page whose
  DNS name is re-bound to 127.0.0.1 sends its own name: DNS rebinding). Under /api/, a request that carries an
  `Origin` must come from the page of this very server, and a browser's cross-site request is refused: another
  site's page cannot make the server predict, explain or read test images.
- `MemoryBudget`: the bytes the requests in progress may use together (`--max-memory`) and how many requests may be
  in the server at once. Each request reserves its estimated cost — its upload, its pixels decoded and converted
  (`decode_bytes`, from the image header), the model's activations (`ModelCost`, traced on the meta device) — and
  waits, without holding a thread, until the budget has room; a request larger than the whole budget is 413, a
  full queue 503.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from cnnlab.serve.images import UploadError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_MEMORY = 1024 * 2**20  # bytes the requests in progress may use together
DEFAULT_MAX_PENDING = 64  # requests in the server at once (reading, waiting or working); more are 503
MAX_EXPLAIN_WAITING = 8  # explanations waiting for one model (they run one at a time); more are 503
MAX_FEATURE_MAPS = 64

# peak bytes per pixel of decoding an upload and converting it to L or RGB (measured on 4096² images, with room
# for an EXIF rotation's copy); a mode not listed costs the largest
_DECODE_BYTES_PER_PIXEL = {"1": 9, "L": 9, "P": 24, "RGB": 12, "YCbCr": 12, "CMYK": 13, "I;16": 11, "I": 14, "F": 14}
_DECODE_WORST = 26  # RGBA, LA, PA: converted to RGBA and composited on white


def decode_bytes(width: int, height: int, mode: str) -> int:
    """The peak memory of decoding a width × height image stored in `mode` and converting it for a model."""
    return width * height * _DECODE_BYTES_PER_PIXEL.get(mode, _DECODE_WORST)


@dataclass(frozen=True)
class ModelCost:
    """What one request costs a served model beyond its upload: its activations (bytes, one image, fp32, the task's
    head included), its raw outputs (bytes, one image) and the input's pixels (the explanation's pictures and a
    segmentation's mask are made at the input size)."""

    activations: int
    pixels: int
    outputs: int = 0

    @property
    def predict(self) -> int:
        # flip TTA runs the batch twice; the outputs are averaged and decoded (a mask: argmax, counts, a PNG)
        return 2 * self.activations + 3 * self.outputs + 16 * self.pixels

    def explain(self, fmt: str, features: bool) -> int:
        """Saliency keeps every activation and its gradient (×3); the heat map, colour maps, overlay and PNGs cost
        about 200 bytes a pixel; feature maps as JSON numbers about 48 bytes a value (8 as PNGs)."""
        out = 3 * self.activations + 200 * self.pixels
        if features:
            out += MAX_FEATURE_MAPS * self.pixels * (48 if fmt == "array" else 8)
        if fmt == "array":
            out += 2 * 48 * self.pixels  # the input and the saliency map as JSON numbers
        return out


def model_cost(meta) -> ModelCost:
    """The `ModelCost` of a model's `RunMeta`, its task's model traced on the meta device (nothing allocated); a
    model the tracer cannot follow is charged 64 fp32 maps per input pixel."""
    from cnnlab.inspect import activation_bytes

    c, h, w = meta.input_size
    task = meta.make_task()
    outputs = 4 * math.prod(task.output_shape)
    try:
        activations = activation_bytes(meta.model, meta.model_args, meta.input_size, build=task.build)
    except Exception:  # an op without a meta kernel: a generous guess instead
        activations = 64 * 4 * c * h * w + outputs
    return ModelCost(activations, h * w, outputs)


class MemoryBudget:
    """Bytes the requests in progress may use together, granted first come, first served."""

    def __init__(self, total: int = DEFAULT_MAX_MEMORY, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if total < 1 or max_pending < 1:
            raise ValueError("the memory budget and the request queue must be ≥ 1")
        self.total, self.max_pending = total, max_pending
        self.used = 0  # bytes reserved by requests at work
        self.pending = 0  # requests in the server
        self._queue: deque[tuple[int, asyncio.Future]] = deque()

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """One request in the server, from its first byte to its answer; 503 when `max_pending` are already in."""
        if self.pending >= self.max_pending:
            raise UploadError(503, f"the server is busy ({self.pending} requests in progress); retry in a moment")
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    def check(self, nbytes: int, what: str) -> None:
        """413 for a request that could never fit: more than the whole budget."""
        if nbytes > self.total:
            raise UploadError(
                413,
                f"{what} needs about {_mib(nbytes)} of memory, more than the server allows all requests together "
                f"({_mib(self.total)}; cnnlab serve --max-memory)",
            )

    @asynccontextmanager
    async def reserve(self, nbytes: int, what: str) -> AsyncIterator[None]:
        """Hold `nbytes` of the budget for the block, waiting (in the event loop, no thread held) for room."""
        self.check(nbytes, what)
        if self._queue or self.used + nbytes > self.total:
            await self._wait(nbytes)
        else:
            self.used += nbytes
        try:
            yield
        finally:
            self.used -= nbytes
            self._grant()

    async def _wait(self, nbytes: int) -> None:
        granted = asyncio.get_running_loop().create_future()
        self._queue.append((nbytes, granted))
        try:
            await granted
        except asyncio.CancelledError:  # the client went away: give back what was granted meanwhile, if anything
            if granted.done() and not granted.cancelled():
                self.used -= nbytes
            self._grant()
            raise

    def _grant(self) -> None:
        while self._queue:
            nbytes, granted = self._queue[0]
            if granted.done():  # cancelled while waiting
                self._queue.popleft()
                continue
            if self.used + nbytes > self.total:
                return
            self._queue.popleft()
            self.used += nbytes
            granted.set_result(None)


class ExplainQueue:
    """One explanation at a time for a model (gradients and hooks on its module), waiting in the event loop;
    more than `MAX_EXPLAIN_WAITING` waiting is 503, so a flood of explanations holds no thread of the pool."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0

    @asynccontextmanager
    async def turn(self, model_id: str) -> AsyncIterator[None]:
        if self.waiting >= MAX_EXPLAIN_WAITING:
            raise UploadError(503, f"{self.waiting} explanations of '{model_id}' are waiting; retry in a moment")
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.lock.release()


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.0f} MiB"


def _host_name(host: str) -> str:
    """'Example.com:8000' → 'example.com'; '[::1]:8000' → '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SameOrigin:
    """ASGI middleware: refuse (403, one JSON line) a request whose Host is not this server's, and under /api/ one
    sent by another site's page (an Origin other than this server's, or Sec-Fetch-Site: cross-site)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.allowed = {*LOOPBACK, *(_host_name(h) for h in allowed_hosts)}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self.problem(scope, headers)
        if problem is None:
            return await self.app(scope, receive, send)
        body = json.dumps({"error": problem}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def problem(self, scope, headers: dict[str, str]) -> str | None:
        host = headers.get("host", "")
        name = _host_name(host)
        server = scope.get("server") or (None, None)
        if name not in self.allowed and name != str(server[0]).lower():
            return (
                f"Host '{host[:80]}' is not this server's address (a guard against DNS rebinding); to reach it "
                f"under that name start it with --allow-host {name[:80] or 'NAME'}"
            )
        if not scope.get("path", "").startswith("/api/"):
            return None
        origin = headers.get("origin")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return f"requests from the page of {origin[:80]} are refused: only this server's own page may use its API"
        if headers.get("sec-fetch-site") == "cross-site":
            return "cross-site requests are refused: only this server's own page may use its API"
        return None
