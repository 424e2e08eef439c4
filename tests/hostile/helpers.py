"""What the hostile tests share: `cnnlab` in a subprocess (memory limit, a SIGKILL at a chosen write), the
one-line refusal contract, snapshots of what the user owns, and small files that lie."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from cnnlab.io import save_model
from cnnlab.models import create_model

SRC = str(Path(__file__).resolve().parents[2] / "src")
KILLER = str(Path(__file__).with_name("sigkill_writer.py"))

META = {
    "classes": [str(i) for i in range(10)],
    "input_size": [1, 28, 28],
    "mean": [0.3],
    "std": [0.3],
    "precision": "fp32",
    "dataset": "fashion-mnist",
}


def env(**extra: str) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "CNNLAB_OFFLINE": "1",
        "MALLOC_ARENA_MAX": "2",  # under RLIMIT_AS: glibc's per-thread arenas reserve 64 MB of address space each
        **extra,
    }


def cnnlab(
    *args, cwd=None, memory_gb: float | None = None, timeout: float = 300, **extra
) -> subprocess.CompletedProcess:
    """`python -m cnnlab ARGS`, its address space limited to `memory_gb` when given."""

    def limit():
        if memory_gb:
            size = int(memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        preexec_fn=limit,
        env=env(**extra),
    )


def killed_at(target: str, *args, cwd=None) -> subprocess.CompletedProcess:
    """`cnnlab ARGS`, SIGKILLed while `target` (a dotted writer, e.g. `onnx.save_model`) has written half a file."""
    return subprocess.run(
        [sys.executable, KILLER, target, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env(),
    )


def refused(proc: subprocess.CompletedProcess, *names: str) -> str:
    """The run failed with one error line that names each of `names`, and no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for name in names:
        assert str(name) in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → bytes): what the user owns, to compare after a refusal."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def model_file(path: Path, **meta) -> Path:
    """A LeNet-5 model file (28×28 gray, 10 classes) with `meta` changed in its RunMeta."""
    save_model(path, create_model("lenet5", num_classes=10, in_chans=1), **{**META, **meta})
    return path


def lying_model_file(path: Path, model: str = "lenet5", model_args: dict | None = None, **changes) -> Path:
    """A model file whose metadata record is written as given (no validation on the way out)."""
    args = model_args or {"num_classes": 10, "in_chans": 1}
    net = create_model(model, **args)
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    record = {"format": 1, "model": model, "model_args": args, **META, **changes}
    save_file(tensors, path, metadata={"cnnlab": json.dumps(record)})
    return path


def tiny_npz(path: Path, n: int = 40, side: int = 28, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    y = np.arange(n) % classes
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    return path


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident memory) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def run_cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`cnnlab ARGS` in this process (fast, for refusals that happen before any work): its exit status and what it
    printed. An exception that escapes the CLI propagates (a traceback is a bug)."""
    from cnnlab.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    saved = warnings.formatwarning
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if cwd is not None:
                os.chdir(cwd)
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 2
        finally:
            os.chdir(here)
            warnings.formatwarning = saved
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


def foreign_onnx(path: Path, output: str = "logits", input_type: str = "float") -> Path:
    """An ONNX file without cnnlab metadata: float (or uint8) N×1×28×28 in; out N×10 logits (a linear layer),
    N×1×28×28 (an identity: not a classifier) or a scalar (a sum)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if input_type == "float" else TensorProto.UINT8
    x = helper.make_tensor_value_info("input", elem, ["N", 1, 28, 28])
    if output == "logits":
        w = numpy_helper.from_array(np.zeros((784, 10), np.float32), "w")
        nodes = [
            helper.make_node("Cast", ["input"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("Flatten", ["x"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["y"]),
        ]
        y, inits = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10]), [w]
    elif output == "image":
        nodes, inits = [helper.make_node("Identity", ["input"], ["y"])], []
        y = helper.make_tensor_value_info("y", elem, ["N", 1, 28, 28])
    else:  # a scalar
        nodes, inits = [helper.make_node("ReduceSum", ["input"], ["y"], keepdims=0)], []
        y = helper.make_tensor_value_info("y", elem, [])
    graph = helper.make_graph(nodes, "foreign", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save_model(model, path)
    return path


def with_onnx_record(src: Path, dst: Path, **changes) -> Path:
    """A copy of a cnnlab ONNX file whose `cnnlab` metadata record has `changes` (lies)."""
    import onnx

    model = onnx.load(src)
    props = {p.key: p for p in model.metadata_props}
    record = json.loads(props["cnnlab"].value)
    record.update(changes)
    props["cnnlab"].value = json.dumps(record)
    onnx.save_model(model, dst)
    return dst


def torch_bomb(path: Path, numel: int) -> Path:
    """A torch file of {'model': {'w': float32 tensor of `numel`}} whose storage is deflated zeros: a small file
    that inflates to numel × 4 bytes when torch.load reads it."""
    import struct
    import zipfile

    import torch

    small = 70000  # > 65535: pickled as a 4-byte integer, which the real size replaces in place
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(small)}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/0"):
                member = zipfile.ZipInfo(info.filename)
                member.compress_type = zipfile.ZIP_DEFLATED
                member._compresslevel = 1  # fast; Python ≥ 3.13 names it compress_level
                chunk = bytes(16 * 2**20)
                with out.open(member, "w", force_zip64=True) as f:
                    for _ in range(numel * 4 // len(chunk)):
                        f.write(chunk)
                continue
            if info.filename.endswith("data.pkl"):
                data = data.replace(struct.pack("<i", small), struct.pack("<i", numel))
            out.writestr(info.filename, data, zipfile.ZIP_STORED)
    return path
