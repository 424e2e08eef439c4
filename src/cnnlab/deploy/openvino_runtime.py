"""An exported ONNX file run by OpenVINO's CPU plugin behind the `cnnlab.infer.Classifier` protocol.

The same file `cnnlab export` writes (fp32, or the int8 QDQ file: OpenVINO turns its QuantizeLinear /
DequantizeLinear pairs into int8 convolutions), the same normalisation, flip TTA and graph checks as
`OnnxClassifier` — only the forward pass is OpenVINO's. The float precision is OpenVINO's
INFERENCE_PRECISION_HINT: fp32 always, bf16 / fp16 only where the CPU plugin lists them among its
OPTIMIZATION_CAPABILITIES (`cpu_precisions`; an AVX2-only Zen 3 lists neither). OpenVINO comes with
`cnnlab[openvino]`.

Every file is compiled by one `ov.Core` per process (`core()`), kept until the interpreter exits. The CPU plugin
(2026.4.1) gives the thread that loads it an alternate signal stack of its own (`sigaltstack`, ~10 KB) and, when its
Core is destroyed, puts back the stack it found then and unmaps its own. With a Core per file, Cores destroyed in
another order than created (first before second) leave the thread with the first one's unmapped stack; the next
signal with a Python handler on that thread (Python installs its handlers with SA_ONSTACK) made the kernel kill the
process with SIGSEGV, so a `bench` followed by training in the same test process died in the middle of the training
test. One Core loads the plugin once and never unloads it early.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from cnnlab.deploy.export import relus_after_pools
from cnnlab.deploy.onnx_runtime import OnnxClassifier

MISSING = "running ONNX files with OpenVINO needs the openvino extra: pip install 'cnnlab[openvino]'"
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # cnnlab's precision name → OpenVINO's element type
CAPABILITIES = {"BF16": "bf16", "FP16": "fp16"}  # the CPU plugin's OPTIMIZATION_CAPABILITIES → precision
# Input shapes a classifier compiles the file for, each on its second call: OpenVINO runs a fixed shape faster than
# the file's dynamic batch axis (the fast recipe's model, bf16, AMX, batch 256: 1.12–1.16× the samples/s), and a
# compilation takes 40–120 ms, so a size seen once (the last, partial batch) keeps the dynamic one.
STATIC_SHAPES = 3


def require_openvino():
    """The openvino module, or one line naming the extra to install."""
    try:
        import openvino
    except ImportError:
        raise ValueError(MISSING) from None
    return openvino


_core = None
_core_lock = threading.Lock()


def core():
    """This process's one `openvino.Core` (created on first use, never dropped: see the module's docstring)."""
    global _core
    ov = require_openvino()  # each call: a caller that made openvino unimportable is told so
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def available() -> bool:
    try:
        require_openvino()
    except ValueError:
        return False
    return True


def cpu_precisions() -> list[str]:
    """The float precisions OpenVINO's CPU plugin computes in on this CPU: 'fp32', then 'bf16' / 'fp16' where listed."""
    caps = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ["fp32"] + [name for cap, name in CAPABILITIES.items() if cap in caps]


def compile_onnx(path: str | Path, threads: int | None = None, precision: str = "fp32", shape=None):
    """An OpenVINO CompiledModel of an ONNX file on the CPU: one stream (latency hint), `threads` threads; for
    the file's own input shape or, given `shape`, that one fixed. Each ReLU that feeds only a max pool runs after
    it (`export.relus_after_pools`: the same numbers, 1.06× the speed of the fast recipe's model)."""
    import onnx

    cpu = core()
    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        model = cpu.read_model(relus_after_pools(onnx.load(str(path))).SerializeToString())
        if shape is not None:
            model.reshape(list(shape))
        return cpu.compile_model(model, "CPU", config)
    except Exception as e:  # OpenVINO raises RuntimeError with a multi-line trace of its own
        raise ValueError(f"{path}: OpenVINO cannot compile it ({_reason(e)[:160]})") from None


def _reason(error: Exception) -> str:
    """The line of an OpenVINO error that says what failed: its trace lists "Exception from <source file>" and
    "Check '…' failed at …" lines first, the reason last."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (said or lines or [type(error).__name__])[-1]


class OpenVinoClassifier(OnnxClassifier):
    """An exported ONNX classifier whose forward pass runs in OpenVINO (CPU) in `precision` ('fp32', or one of
    `cpu_precisions()`); an int8 QDQ file runs its quantized layers in int8 whatever `precision` says.
    The metadata, input checks and preprocessing are `OnnxClassifier`'s."""

    engine = "openvino"

    def __init__(
        self,
        path: str | Path,
        input_size=None,
        mean=None,
        std=None,
        threads: int | None = None,
        tta: bool | None = None,
        precision: str = "fp32",
    ) -> None:
        if precision not in HINTS:
            raise ValueError(f"--precision {precision}: OpenVINO runs fp32, bf16 or fp16")
        if precision not in (offered := cpu_precisions()):
            raise ValueError(f"--precision {precision}: OpenVINO's CPU plugin offers {', '.join(offered)} on this CPU")
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        self._ov = require_openvino()
        self._request = compile_onnx(path, threads, precision).create_infer_request()
        self._compile = lambda shape: compile_onnx(path, threads, precision, shape).create_infer_request()
        self._fixed: dict[tuple, object] = {}  # input shape → request compiled for it (STATIC_SHAPES at most)
        self._seen: set[tuple] = set()  # shapes run once on the dynamic request
        super().__init__(path, input_size, mean, std, threads, tta)  # metadata and graph checks (ONNX Runtime)
        self.session = None  # ONNX Runtime only read the graph; OpenVINO runs it
        self.compute_precision = precision

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits of an already normalised float32 batch."""
        # the batch shared, not copied in (the call is synchronous); the output copied out, since the request
        # reuses its buffer. A quarter less overhead per call than `infer({0: x})`: 0.20 against 0.27 ms of CPU
        # time for the fast recipe's model at batch 1, Zen 3.
        request = self._request_for(tuple(x.shape))
        request.set_input_tensor(self._ov.Tensor(np.ascontiguousarray(x), shared_memory=True))
        request.infer()
        return request.get_output_tensor().data.copy()

    def _request_for(self, shape: tuple) -> object:
        """The request compiled for `shape` — made on the shape's second call while fewer than STATIC_SHAPES are
        — else the dynamic one (also where the graph cannot be fixed to the shape)."""
        if shape in self._fixed:
            return self._fixed[shape]
        if shape not in self._seen or len(self._fixed) >= STATIC_SHAPES:
            if len(self._seen) < 1024:  # a bound on what a stream of odd sizes can make it remember
                self._seen.add(shape)
            return self._request
        try:
            self._fixed[shape] = self._compile(shape)
        except ValueError:
            self._fixed[shape] = self._request
        return self._fixed[shape]
