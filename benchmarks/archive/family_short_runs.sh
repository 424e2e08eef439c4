#!/usr/bin/env bash
# Archived exploration, finished: one short Fashion-MNIST run per architecture family through the real CLI, to check
# that every family trains (results in BENCHMARKS.md, "One short run per architecture family").
# Data: the first 11,000 official training images (1,000 carved off for validation, 10,000 trained on) and the first
# 2,000 test images, written as an npz; 1 epoch each, Adam 1e-3 unless stated, seed 0, auto precision.
# Usage: bash benchmarks/archive/family_short_runs.sh [OUT_DIR]   (≈ 3.5 minutes on 2 free cores)
# PYTHON names the interpreter with cnnlab installed (default: the repository's .venv/bin/python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-/tmp/cnnlab-families}
mkdir -p "$OUT"
"$PY" - "$OUT" <<'PY'
import sys
import numpy as np
from cnnlab.data import load_dataset
s = load_dataset("fashion-mnist", val_split=0)
np.savez(f"{sys.argv[1]}/fmnist_11k_2k.npz", x_train=s.train.images[:11000, 0].numpy(),
         y_train=s.train.labels[:11000].numpy(), x_test=s.test.images[:2000, 0].numpy(),
         y_test=s.test.labels[:2000].numpy(), class_names=np.array(s.classes))
PY
D="--data npz:$OUT/fmnist_11k_2k.npz --val-split 1000 --epochs 1 --overwrite --verbose 0"
run() {
    name=$1; shift
    "$PY" -m cnnlab train $D --out "$OUT/$name" "$@" > /dev/null
    "$PY" -c "import json; m = json.load(open('$OUT/$name/metrics.json')); \
print(f\"| $name | {m['test_accuracy']:.4f} | {m['train_seconds']:.1f} | {m['samples_per_s']:,.0f} | {m['parameters']:,} |\")"
}
echo "| run | test accuracy (2,000) | train s | samples/s | parameters |"
echo "|---|---|---|---|---|"
run lenet5_classic --model lenet5_classic --image-size 32
run alexnet --model alexnet --image-size 64
run resnet18 --model resnet18 --model-arg small_input=true
run vgg11_bn --model vgg11_bn --image-size 32 --optimizer sgd --lr 0.01 --momentum 0.9
run googlenet --model googlenet --image-size 32
run course_lenet5 --model CL32-MP4-CL64-MP4-FC512-FC10
