#!/usr/bin/env bash
# The main job: install, get Fashion-MNIST, train, evaluate, write a report. MODEL / EPOCHS / OUT override.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/get-data.sh
MODEL=${MODEL:-lecture_cnn}
EPOCHS=${EPOCHS:-10}
OUT=${OUT:-runs/main-${MODEL}}
.venv/bin/cnnlab train --data fashion-mnist --model "$MODEL" --epochs "$EPOCHS" --batch-size 128 \
    --optimizer adam --lr 1e-3 --out "$OUT" --overwrite
.venv/bin/cnnlab evaluate "$OUT" --data fashion-mnist > "$OUT/report.txt"
cat "$OUT/report.txt"
echo
echo "report: $OUT/report.txt (confusion matrix: $OUT/confusion.png, curves: $OUT/curves.png, metrics: $OUT/metrics.json)"
