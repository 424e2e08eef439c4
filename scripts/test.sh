#!/usr/bin/env bash
# The test command: same set-up as the main job plus the dev extras, then the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh dev
.venv/bin/python -m pytest -q "$@"
