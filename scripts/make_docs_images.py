"""Every image in docs/images/, written from the current code by one command:

    PYTHONPATH=src python scripts/make_docs_images.py [--only lab,explain,transfer,serve] [--lessons conv,xo]

- lab: every `cnnlab lab` lesson in full mode (Fashion-MNIST, never downloaded), the `--slide` variants and
  `conv --gif`: lab-*.png and lab-conv.gif;
- explain: trains `lenet5` for 5 epochs on Fashion-MNIST into --run (kept and reused unless --retrain), then runs
  `cnnlab explain` for docs/explain.md's pictures: explain-*.png (and the DeepDream objective, explain-maximize-dream.png);
- transfer: transfer.png from the saved results of benchmarks/features/transfer.py (its `--report`; no training);
- serve: serve.png, the page in headless chromium (scripts/serve_screenshot.py; needs playwright and
  /usr/bin/chromium, else skipped with the reason).

Each step prints its wall time. It lives in scripts/ beside serve_screenshot.py because it makes documentation,
not measurements (benchmarks/ compares timings against peers).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("lab", "explain", "transfer", "serve")
IMAGE = ROOT / "examples" / "images" / "ankle-boot.png"
# `cnnlab explain RUN …` for each picture of docs/explain.md: (file name, arguments)
EXPLAIN = [
    ("explain-filters.png", ["filters"]),
    ("explain-featuremaps.png", ["featuremaps", "--image", str(IMAGE), "--layer", "features.1"]),
    ("explain-saliency.png", ["saliency", "--image", str(IMAGE), "--method", "all"]),
    ("explain-maximize.png", ["maximize", "--layer", "features.4", "--channel", "0-15"]),
    (
        "explain-maximize-dream.png",  # DeepDream: a few small steps from the photo, so the boot stays visible
        ["maximize", "--layer", "features.4", "--objective", "layer", "--image", str(IMAGE), "--steps", "32"]
        + ["--lr", "0.02"],
    ),
    ("explain-patches.png", ["patches", "--layer", "features.4", "--channel", "3", "--top", "16"]),
    ("explain-embedding.png", ["embedding", "--n", "2000"]),
    ("explain-top-losses.png", ["top-losses"]),
]


def _timed(name: str, fn) -> None:
    start = time.perf_counter()
    fn()
    print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)


def lab(out: Path, lessons: list[str] | None, threads: int | None) -> None:
    from cnnlab.lab import LESSONS, run_lesson

    runs = [(name, {}) for name in lessons or LESSONS]
    runs += [(name, {"slide": True}) for name in ("conv", "xo") if lessons is None or name in lessons]
    for name, options in runs:
        if name == "conv" and not options:
            options = {"gif": True}
        label = name + (" --slide" if options.get("slide") else "")
        _timed(f"lab {label}", lambda n=name, o=options: run_lesson(n, out=out, threads=threads, **o))


def explain(out: Path, run: Path, retrain: bool) -> None:
    from cnnlab.cli import main

    if retrain or not (run / "model.safetensors").exists():
        args = ["train", "--model", "lenet5", "--epochs", "5", "--out", str(run), "--verbose", "0", "--overwrite"]
        _timed("train lenet5", lambda: _check(main(args)))
    for name, args in EXPLAIN:
        _timed(f"explain {name}", lambda n=name, a=args: _check(main(["explain", str(run), *a, "--out", str(out / n)])))
    _timed(
        "explain edges", lambda: _check(main(["explain", "edges", str(IMAGE), "--out", str(out / "explain-edges.png")]))
    )


def transfer(out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.features import transfer as bench

    bench.PLOT = out / "transfer.png"
    _timed("transfer report", lambda: bench.report(log=lambda line: None))


def serve(out: Path, run: Path) -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("[serve] skipped: the playwright package is not installed")
        return
    if not Path("/usr/bin/chromium").exists():
        print("[serve] skipped: no /usr/bin/chromium")
        return
    cmd = [sys.executable, str(ROOT / "scripts" / "serve_screenshot.py"), str(run), "--out", str(out / "serve.png")]
    _timed("serve screenshot", lambda: subprocess.run(cmd, check=True))


def _check(code: int) -> None:
    if code != 0:
        raise SystemExit(f"a cnnlab command failed with exit code {code}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(STEPS), help=f"steps to run, of {', '.join(STEPS)}")
    p.add_argument("--lessons", help="lab: only these lessons (comma-separated)")
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    p.add_argument("--run", default=str(ROOT / "runs" / "docs-lenet5"), help="the explain/serve run folder")
    p.add_argument("--retrain", action="store_true", help="train the explain run again even if it exists")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the lessons (default 1)")
    args = p.parse_args()
    steps = args.only.split(",")
    unknown = set(steps) - set(STEPS)
    if unknown:
        p.error(f"unknown step(s) {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
    out, run = Path(args.out), Path(args.run)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if "lab" in steps:
        lab(out, args.lessons.split(",") if args.lessons else None, args.threads)
    if "explain" in steps:
        explain(out, run, args.retrain)
    if "transfer" in steps:
        transfer(out)
    if "serve" in steps:
        serve(out, run)
    print(f"all: {time.perf_counter() - start:.0f} s; images in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
