"""cnnlab's benchmarks, run as modules from the repository root (`python -m benchmarks.suite.run --quick`).

suite/: the harness behind BENCHMARKS.md; features/: one script per feature measurement; archive/: finished
explorations. benchmarks/README.md lists every script with its command. This package imports nothing but pathlib:
the Keras peer runs `benchmarks.suite.keras_course` in a venv without torch or cnnlab.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root
RESULTS_DIR = ROOT / "benchmarks" / "results"  # raw, machine-written result files (JSON)
