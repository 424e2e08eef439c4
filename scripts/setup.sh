#!/usr/bin/env bash
# Create .venv and install torch 2.13.0 (CPU) first, then cnnlab; pass "dev" to add the test tools (and the serve and deploy extras).
# Sourced by main.sh and test.sh; safe to run again (pip skips what is installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# torch first and pinned: an open range would pull the newest CUDA build (gigabytes)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "setup: installing torch 2.13.0 (CPU wheel, about 200 MB: a minute or two on a first install) …"
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
extra=""
if [ "${1:-}" = "dev" ]; then extra="[dev,serve,deploy]"; fi
echo "setup: installing cnnlab${extra} and its dependencies (pip skips what is already installed) …"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import cnnlab, torch; print(f'cnnlab {cnnlab.__version__}, torch {torch.__version__}')"
