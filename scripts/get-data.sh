#!/usr/bin/env bash
# Make Fashion-MNIST available: the Debian package when we may install it, else cnnlab's checked download.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if .venv/bin/cnnlab datasets | grep -A1 "^fashion-mnist" | grep -q "found:"; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 || true
fi
.venv/bin/cnnlab datasets get fashion-mnist
