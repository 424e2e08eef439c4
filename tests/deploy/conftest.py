"""The deployment tests need the deploy extra; their trained run is `toy_run` (tests/conftest.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")
pytest.importorskip("onnxscript", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")
