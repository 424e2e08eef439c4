"""The FastAPI application of `cnnlab serve`: the page (static/), and a JSON API under /api/.

    GET  /api/health                      {"status": "ok", ...}
    GET  /api/models                      the served models: task, classes (and their colours), input size, test
                                          accuracy and the task's main metric, data set
    POST /api/predict                     multipart: image (file), model, top → the top-k classes; for a model
                                          of another task its prediction (`predict_task`)
    POST /api/explain                     multipart: image, model, method, target, format=png|array, features
                                          → the input as the network sees it, the saliency map, feature maps
    GET  /api/models/{id}/random          a random test image of the model's data set (PNG) and its true label
                                          (a scene's: the classes it holds)
    GET  /favicon.ico                     the page's icon (static/favicon.svg)

/api/predict and /api/explain note a blank input (`images.blank_notes`): a network names a class even for nothing.

Localization, detection and segmentation models are served too: /api/predict answers with the fields of the
task's `Task.json` (what `cnnlab predict --json` prints): a localizer's class, probability, top classes and box,
a detector's objects (class, score, box), boxes as x1, y1, x2, y2 in pixels of the model's input; a segmenter's
pixels per class, and the mask itself as `mask_png`, a PNG data URL of the class indices (a palette PNG, colours
those of `Task.draw`, the background index 0 transparent), the size of the model's input. Explanations are for
classifiers only.

Every model is loaded once at start, as a `cnnlab.infer.Classifier`: a run folder or model file as its torch model
(a BatchNorm-folded copy in inference mode), an .onnx file through ONNX Runtime. Prediction runs without a lock on
Starlette's thread pool; explanations need gradients and forward hooks, so they run on the torch model as trained,
one request at a time per model, waiting in the event loop rather than on a thread (an ONNX model predicts only).
Uploads are read into memory with a byte limit (`images.MAX_BYTES`) and parsed there; nothing a client sends
becomes a path or a file, and nothing is spooled to disk.

Safety (`limits`): only requests addressed to this server and, under /api/, sent by its own page are answered;
every request reserves its memory (upload, decoded pixels, activations) from one budget before it decodes
anything. Test images come only from data the user named when starting the server (`--data`, `--data-dir`) or
from a named data set in its standard places: a path recorded in a served model file is a hint, never opened on
its own (`image_source`).
"""

from __future__ import annotations

import copy
import io
import random
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

import cnnlab
from cnnlab import explain as ex
from cnnlab.deploy.onnx_runtime import OnnxClassifier, is_onnx_path
from cnnlab.files import real_path
from cnnlab.infer import Classifier, TorchClassifier
from cnnlab.io import DataRecord, RunMeta, load_model, resolve_model_path
from cnnlab.predict import predict_images, top_classes
from cnnlab.run.splits import run_record, run_splits
from cnnlab.runtime import resolve_device
from cnnlab.serve import images
from cnnlab.serve.images import UploadError
from cnnlab.serve.limits import (
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PENDING,
    MAX_FEATURE_MAPS,
    ExplainQueue,
    MemoryBudget,
    ModelCost,
    SameOrigin,
    decode_bytes,
    model_cost,
)
from cnnlab.tasks import Task
from cnnlab.tasks.drawing import COLOURS

STATIC = files("cnnlab.serve") / "static"
MAX_TOP = 20
MAX_OVERLAY_SIDE = 1024  # pixels: the overlay is the input upscaled up to 8 ×, never beyond this
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields, on top of the image's byte limit
METRIC_NAMES = {"accuracy": "test accuracy", "iou": "test mean IoU", "map": "test mAP", "miou": "test mIoU"}


@dataclass
class Served:
    """One model as the server holds it."""

    id: str
    path: Path
    classifier: Classifier  # torch (BN folded, channels_last, eval) or ONNX Runtime: run lock-free by predict
    explainer: torch.nn.Module | None  # the model as trained: gradients and hooks, one request at a time (a
    # classifier's torch model only: not ONNX, not another task)
    cost: ModelCost
    test_source: DataRecord | str  # where its test images may come from, or why they may not (`image_source`)
    task: Task  # what its outputs are (classify, localize, detect, segment): decodes them
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: ExplainQueue = field(default_factory=ExplainQueue)  # explanations waiting, in the event loop
    _test: Any = None  # the test ImageSet once loaded, or the reason it is not available (str)
    _test_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def meta(self) -> RunMeta:
        return self.classifier.meta

    def info(self) -> dict:
        m, task = self.meta, self.task
        metric = task.main_metric
        return {
            "id": self.id,
            "model": m.model,
            "file": self.path.name,
            "classes": list(m.classes),
            "input_size": list(m.input_size),
            "channels": m.channels,
            "dataset": m.dataset,
            "test_accuracy": m.metrics.get("test_accuracy"),
            "epochs": m.metrics.get("epochs"),
            "precision": self.classifier.precision,
            "methods": list(ex.METHODS) if self.explainer is not None else [],
            "task": task.name,
            "task_args": dict(task.args),
            "metric": {"name": METRIC_NAMES.get(metric, f"test {metric}"), "value": m.metrics.get(f"test_{metric}")},
            "colours": class_colours(task),
        }

    def test_set(self):
        """The test split of the model's data set, loaded on first use (never downloaded); a str says why not."""
        with self._test_lock:
            if self._test is None and isinstance(self.test_source, str):
                self._test = self.test_source
            elif self._test is None:
                try:
                    meta = self.meta.replace(data=self.test_source)
                    self._test = run_splits(meta, allow_download=False).split("test")
                except Exception as e:  # not installed, unreadable, another shape: the page says so
                    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else e.__class__.__name__
                    print(f"cnnlab serve: test images of {self.id}: {first}", file=sys.stderr)
                    self._test = (
                        f"test images of {self.meta.dataset or self.id} are not available on the server: {first} "
                        "(cnnlab serve --data-dir / --data)"
                    )
            return self._test


def image_source(meta: RunMeta, where: Path, data_dir: str | None, named: Sequence[str]) -> DataRecord | str:
    """Where the test images of a served model may come from: a data set the model records (or its run folder's
    config.json does) when it is a named one (read from `data_dir` or its standard places, never from a folder the
    file names) or a folder:/npz:/csv: source at the same place as one the user named (`named`, `serve --data`).
    A path in a model file is a hint, never opened on its own; a str says why there are no test images."""
    record, _ = run_record(meta.replace(export=None), where)  # not the config.json of a source_run the file names
    if record is None:
        return "the model does not record its data set"
    kind, sep, path = record.source.partition(":")
    if not sep:  # a named data set: its standard places, or the --data-dir the user gave
        return DataRecord(record.source, data_dir, record.val_split, record.seed, record.max_train_samples)
    for source in named:
        k, s, p = source.partition(":")
        if s and k == kind and real_path(p) == real_path(path):
            return DataRecord(source, None, record.val_split, record.seed, record.max_train_samples)
    return (
        f"the model's data set {kind}:… is not served: name it when starting the server "
        f"(cnnlab serve … --data {kind}:PATH)"
    )


def _model_id(path: Path, taken: set[str]) -> str:
    p = path if is_onnx_path(path) else resolve_model_path(path)
    base = p.parent.name if p.name == "model.safetensors" else p.stem
    base = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in base) or "model"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def load_served(
    paths: Sequence[str | Path], data_dir: str | None = None, data: Sequence[str] = ()
) -> dict[str, Served]:
    """Load every RUN (run folder, .safetensors model file, or .onnx file: predictions only) once.

    data_dir / data: where test images may come from (`image_source`)."""
    if not paths:
        raise ValueError("serve needs at least one run folder or model file")
    served: dict[str, Served] = {}
    device = resolve_device("cpu")
    for raw in paths:
        path = Path(raw)
        sid = _model_id(path, set(served))
        if is_onnx_path(path):  # ONNX Runtime predicts; explanations need the torch model (gradients, hooks)
            classifier, explainer = OnnxClassifier(path), None
        else:
            model, meta = load_model(path)
            classifier, path = TorchClassifier(model, meta, device), resolve_model_path(path)
            explainer = model.eval() if meta.task == "classify" else None  # saliency explains a class score
            if explainer is not None and classifier.net is model:  # nothing folded: predict must not share it
                classifier.net = copy.deepcopy(model).eval()
        meta = classifier.meta
        source = image_source(meta, path, data_dir, data)
        served[sid] = Served(sid, path, classifier, explainer, model_cost(meta), source, meta.make_task())
    return served


# ---- the work of each request (runs on the thread pool) ----


def predict_image(s: Served, image: torch.Tensor, top: int) -> list[dict]:
    return predict_images(s.classifier, image[None], top)[0]


def predict_task(s: Served, image: torch.Tensor, top: int) -> dict:
    """The prediction of a model of another task than classification: `Task.json`'s fields, as `cnnlab predict
    --json` prints them, and for a segmentation its mask as `mask_png` (a palette PNG of the class indices, the
    colours `Task.draw`'s, background transparent: drawn over the image as it is, read back as indices)."""
    prediction = s.task.decode(s.classifier.logits(image[None]), top)[0]
    out = s.task.json(prediction)
    if "mask" in prediction:
        out["mask_png"] = images.data_url(mask_png(s.task, prediction["mask"]))
    return out


def mask_png(task: Task, mask: torch.Tensor) -> bytes:
    """uint8 (H, W) class indices → a palette PNG whose index 0 (the background) is transparent."""
    buf = io.BytesIO()
    task.mask_image(mask).save(buf, format="PNG", transparency=0)
    return buf.getvalue()


def class_colours(task: Task) -> list[str]:
    """Each class's colour as `Task.draw` paints it: a segmentation's palette (background black), else the drawing
    colours in turn."""
    palette = getattr(task, "palette", None)  # a task that paints pixels has one
    if palette is None:
        return [COLOURS[k % len(COLOURS)] for k in range(task.num_classes)]
    rgb = palette()
    return ["#" + bytes(rgb[3 * k : 3 * k + 3]).hex() for k in range(task.num_classes)]


def _colormap(values: np.ndarray, name: str) -> np.ndarray:
    """Values on 0–1 (H, W) → uint8 RGB (H, W, 3) through a matplotlib colormap (no backend needed)."""
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)


def _overlay(pixels: np.ndarray, heat: np.ndarray, scale: int = 8, alpha: float = 0.55) -> np.ndarray:
    """The heat map (inferno) blended over the image, upscaled `scale` × (image: nearest, heat: bilinear)."""
    from PIL import Image

    h, w = heat.shape
    scale = max(1, min(scale, MAX_OVERLAY_SIDE // max(h, w)))
    size = (w * scale, h * scale)
    gray = pixels if pixels.ndim == 2 else pixels.mean(2).astype(np.uint8)
    base = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.NEAREST).convert("RGB"), dtype=np.float32)
    heat_big = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR))
    color = _colormap(heat_big, "inferno").astype(np.float32)
    return ((1 - alpha) * base + alpha * color).clip(0, 255).astype(np.uint8)


def explain_image(
    s: Served, image: torch.Tensor, method: str, target: int | None, fmt: str, features: bool, top: int
) -> dict:
    """Saliency of `target` (default: the predicted class) and the first conv layer's maps, as PNGs or arrays."""
    with s.lock:
        x = ex.to_input(image[None], s.meta)
        heat, targets, probs = ex.saliency(s.explainer, s.meta, x, target, method)
        layer, maps = ex.feature_maps(s.explainer, s.meta, image) if features else (None, None)
    heat = heat[0].astype(np.float32)
    pixels = images.tensor_pixels(image)
    t = int(targets[0])
    out: dict[str, Any] = {
        "model": s.id,
        "method": method,
        "target": {"class": s.meta.classes[t], "index": t},
        "top": top_classes(probs[:1], s.meta.classes, top)[0],
    }
    if fmt == "array":
        out["input"] = pixels.tolist()
        out["saliency"] = np.round(heat, 4).tolist()
        if features:
            out["feature_maps"] = {"layer": layer, "maps": np.round(maps[:MAX_FEATURE_MAPS], 4).tolist()}
        return out
    out["input_png"] = images.data_url(images.png_bytes(pixels))
    out["saliency_png"] = images.data_url(images.png_bytes(_colormap(heat, "inferno")))
    out["overlay_png"] = images.data_url(images.png_bytes(_overlay(pixels, heat)))
    if features:
        shown = maps[:MAX_FEATURE_MAPS]
        lo, hi = float(shown.min()), float(shown.max())
        scaled = (shown - lo) / max(hi - lo, 1e-12)  # one scale for all maps, as `cnnlab explain featuremaps`
        out["feature_maps"] = {
            "layer": layer,
            "count": int(maps.shape[0]),
            "shape": list(maps.shape[1:]),
            "range": [lo, hi],
            "pngs": [images.data_url(images.png_bytes(_colormap(m, "viridis"))) for m in scaled],
        }
    return out


def random_test_image(s: Served, seed: int | None) -> dict:
    data = s.test_set()
    if isinstance(data, str):
        raise UploadError(404, data)
    k = random.Random(seed).randrange(len(data)) if seed is not None else random.randrange(len(data))
    return {
        "model": s.id,
        "index": k,
        "label": true_label(data.labels[k], data.kind, s.meta.classes),
        "image_png": images.data_url(images.png_bytes(images.tensor_pixels(data.images[k]))),
    }


def true_label(target: torch.Tensor, kind: str, classes: Sequence[str]) -> dict:
    """One test image's target as {"class": its class, or the classes it holds joined by ", " (none: ""),
    "index": the class index, None for a scene}."""
    if kind in ("label", "box"):  # a class, or a class and its box
        k = int(target) if kind == "label" else int(target[0])
        return {"class": classes[k], "index": k}
    if kind == "boxes":  # rows of class, x1, y1, x2, y2, padded with class −1
        held = [int(c) for c in target[:, 0].tolist() if c >= 0]
    else:  # a mask: the classes of its pixels but the background (0) and ignored ones (255)
        held = [int(c) for c in torch.unique(target).tolist() if 0 < c < len(classes)]
    return {"class": ", ".join(classes[c] for c in held), "index": None}


# ---- request parsing ----


class _InMemoryParser(MultiPartParser):
    """Starlette's multipart parser with its file spool kept in memory (the body is already capped in bytes)."""

    def __init__(self, *args, spool_max_size: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.spool_max_size = spool_max_size  # the whole body fits: nothing is written to a temporary file


async def _capped(request: Request, limit: int) -> AsyncIterator[bytes]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"request of {int(declared):,} bytes exceeds the limit of {limit:,} bytes")
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise UploadError(413, f"request body exceeds the limit of {limit:,} bytes")
        yield chunk


async def _form(request: Request, max_bytes: int) -> dict[str, Any]:
    """The multipart form as {name: str or bytes}; query parameters fill fields the form does not have."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise UploadError(415, "send multipart/form-data with the image in the field 'image' (curl -F image=@file)")
    limit = max_bytes + FORM_OVERHEAD
    parser = _InMemoryParser(request.headers, _capped(request, limit), max_files=1, max_fields=16, spool_max_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise UploadError(400, f"malformed multipart form: {e}") from None
    out: dict[str, Any] = dict(request.query_params)
    try:
        for key, value in form.multi_items():
            out[key] = await value.read() if hasattr(value, "read") else value
    finally:
        await form.close()
    return out


def _field_int(form: dict, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if not text.strip().lstrip("-").isdigit() or not lo <= int(text) <= hi:
        raise UploadError(400, f"'{name}' must be an integer from {lo} to {hi}, got '{text[:40]}'")
    return int(text)


def _field_str(form: dict, name: str, default: str | None) -> str | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


_FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG, BMP, GIF, TIFF, WebP",
                        },
                        "model": {"type": "string", "description": "model id from /api/models (default: the first)"},
                        "top": {"type": "integer", "default": 5, "description": f"classes returned, 1–{MAX_TOP}"},
                    },
                }
            }
        },
    }
}
_EXPLAIN_DOC = copy.deepcopy(_FORM_DOC)
_EXPLAIN_DOC["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"].update(
    {
        "method": {"type": "string", "enum": list(ex.METHODS), "default": "gradient"},
        "target": {"type": "string", "description": "class name or index (default: the predicted class)"},
        "format": {"type": "string", "enum": ["png", "array"], "default": "png"},
        "features": {"type": "boolean", "default": True, "description": "include the first conv layer's feature maps"},
    }
)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def create_app(
    paths: Sequence[str | Path],
    data_dir: str | None = None,
    max_bytes: int = images.MAX_BYTES,
    max_pixels: int = images.MAX_PIXELS,
    data: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    max_memory: int = DEFAULT_MAX_MEMORY,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> FastAPI:
    """The FastAPI app serving the models of `paths` (run folders, model files or .onnx files), each loaded once here.

    data_dir / data: where the models' test images may come from: named data sets from `data_dir` or their usual
    places (never a download), folder:/npz:/csv: sources only when named in `data` (see `image_source`).
    max_bytes / max_pixels: the upload limits (bytes of the file; width × height read from its header).
    allowed_hosts: Host names the server answers besides its address and the loopback names.
    max_memory / max_pending: the bytes all requests in progress may use together, and how many may be in at once.
    """
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError(f"the upload limits must be ≥ 1 (max_bytes {max_bytes}, max_pixels {max_pixels})")
    served = load_served(paths, data_dir, data)
    # FastAPI's /docs and /redoc with Swagger UI and ReDoc served by the app itself (fastapi-offline), not a CDN
    app = FastAPIOffline(
        title="cnnlab serve",
        version=cnnlab.__version__,
        static_url="/static-docs",
        swagger_ui_parameters={"validatorUrl": None},
        description="Try trained cnnlab models: predict, explain (saliency, feature maps), random "
        'test images. Errors are JSON objects {"error": "one line"}.',
    )
    app.state.served = served
    _install_error_handlers(app)
    _install_routes(app, Requests(served, max_bytes, max_pixels, MemoryBudget(max_memory, max_pending)))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SameOrigin, allowed_hosts=tuple(allowed_hosts))
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is a JSON object {"error": "one line"} with its status; a bug answers 500 and the server runs on."""

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, e: UploadError):
        return _error(e.status, str(e))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"invalid request: {where} {first.get('msg', '')}".strip())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, e.detail)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, e: Exception):
        return _error(500, f"internal error: {e.__class__.__name__}: {e}")


@dataclass
class Requests:
    """What every request is checked against: the served models, the upload limits and the memory budget."""

    served: dict[str, Served]
    max_bytes: int
    max_pixels: int
    budget: MemoryBudget

    def model(self, sid: str | None) -> Served:
        """The model a request names (default: the first served)."""
        if sid is None:
            return next(iter(self.served.values()))
        if sid not in self.served:
            raise UploadError(404, f"unknown model '{sid[:80]}'; served: {', '.join(self.served)}")
        return self.served[sid]

    async def form(self, request: Request) -> tuple[dict, Served]:
        form = await _form(request, self.max_bytes)
        return form, self.model(_field_str(form, "model", None))

    def upload(self, form: dict) -> tuple[Any, int]:
        """The uploaded image, its header read and checked but nothing decoded, and what decoding it will cost."""
        data = form.get("image")
        if data is None:
            raise UploadError(400, "no image: send the file in the form field 'image' (curl -F image=@file)")
        if isinstance(data, str):
            raise UploadError(400, "the field 'image' must be a file upload (curl -F image=@file)")
        im = images.open_upload(data, self.max_bytes, self.max_pixels)
        return im, len(data) + decode_bytes(im.width, im.height, im.mode)

    async def decode(self, im, s: Served) -> tuple[torch.Tensor, list[str]]:
        return await run_in_threadpool(images.read_upload, im, s.meta.input_size, self.max_bytes, self.max_pixels)


def _explain_options(form: dict, s: Served) -> dict:
    """method, target, fmt, features and top of an /api/explain form, each checked."""
    if s.task.name != "classify":
        raise UploadError(400, f"model '{s.id}' is a {s.task.name} model: explanations are for classifiers only")
    if s.explainer is None:
        raise UploadError(400, f"model '{s.id}' is an ONNX file: explanations need the torch model (serve its run)")
    method = _field_str(form, "method", "gradient")
    if method not in ex.METHODS:
        raise UploadError(400, f"unknown method '{method[:40]}'; choose one of {', '.join(ex.METHODS)}")
    fmt = _field_str(form, "format", "png")
    if fmt not in ("png", "array"):
        raise UploadError(400, f"format must be png or array, got '{fmt[:40]}'")
    try:
        target = ex.class_index(_field_str(form, "target", None), s.meta.classes)
    except ValueError as e:
        raise UploadError(400, str(e)) from None
    return {
        "method": method,
        "target": target,
        "fmt": fmt,
        "features": _field_str(form, "features", "true").lower() not in ("0", "false", "no", "off"),
        "top": _field_int(form, "top", 5, 1, MAX_TOP),
    }


def _install_routes(app: FastAPI, req: Requests) -> None:
    served = req.served

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():  # the page links static/favicon.svg; this answers browsers and tools that ask by habit
        return FileResponse(str(STATIC / "favicon.svg"), media_type="image/svg+xml")

    @app.get("/api/health", summary="Liveness and what is served")
    async def health():
        return {"status": "ok", "version": cnnlab.__version__, "models": list(served)}

    @app.get("/api/models", summary="The served models")
    async def models():
        return {
            "models": [s.info() for s in served.values()],
            "limits": {"max_bytes": req.max_bytes, "max_pixels": req.max_pixels},
        }

    @app.post("/api/predict", summary="Top-k classes of an uploaded image", openapi_extra=_FORM_DOC)
    async def predict(request: Request):
        async with req.budget.request():
            form, s = await req.form(request)
            top = _field_int(form, "top", 5, 1, MAX_TOP)
            im, cost = req.upload(form)
            async with req.budget.reserve(cost + s.cost.predict, f"this {im.width}×{im.height} image"):
                image, notes = await req.decode(im, s)
                if s.task.name == "classify":  # as it always was: {"model", "top", "notes"}
                    result = {"top": await run_in_threadpool(predict_image, s, image, top)}
                else:
                    result = {"task": s.task.name, **await run_in_threadpool(predict_task, s, image, top)}
        return {"model": s.id, **result, "notes": notes + images.blank_notes(image)}

    @app.post("/api/explain", summary="Saliency map and feature maps of an uploaded image", openapi_extra=_EXPLAIN_DOC)
    async def explain(request: Request):
        async with req.budget.request():
            form, s = await req.form(request)
            options = _explain_options(form, s)
            im, cost = req.upload(form)
            cost += s.cost.explain(options["fmt"], options["features"])
            what = f"an explanation by '{s.id}' (input {'×'.join(map(str, s.meta.input_size))})"
            req.budget.check(cost, what)  # before waiting for its turn
            async with s.queue.turn(s.id), req.budget.reserve(cost, what):
                image, notes = await req.decode(im, s)
                out = await run_in_threadpool(explain_image, s, image, **options)
        return {**out, "notes": notes + images.blank_notes(image)}

    @app.get("/api/models/{model_id}/random", summary="A random test image of the model's data set, with its label")
    async def random_image(model_id: str, seed: int | None = None):
        return await run_in_threadpool(random_test_image, req.model(model_id), seed)
