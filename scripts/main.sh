#!/usr/bin/env bash
# The main job: install, get Fashion-MNIST, train, evaluate, write a report.
# Default: the `fast` recipe under a 3-minute time budget (BUDGET=30s, 10m, … changes it): the run measures its own
# speed on this machine and trains for as many steps as fit, test evaluation included.
# EPOCHS=10 trains the fast recipe for a fixed number of epochs instead; RECIPE=best trains the `best` recipe under
# its own 15-minute budget; MODEL=lecture_cnn EPOCHS=10 trains a registered model with Adam 1e-3; OUT sets the run
# folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/get-data.sh
if [ -n "${MODEL:-}" ]; then
    OUT=${OUT:-runs/main-${MODEL}}
    ARGS=(--model "$MODEL" --batch-size 128 --optimizer adam --lr 1e-3 --epochs "${EPOCHS:-10}")
else
    RECIPE=${RECIPE:-fast}
    OUT=${OUT:-runs/main-${RECIPE}}
    ARGS=(--recipe "$RECIPE")
    if [ -n "${EPOCHS:-}" ]; then
        ARGS+=(--epochs "$EPOCHS")
    elif [ -n "${BUDGET:-}" ] || [ "$RECIPE" = fast ]; then
        ARGS+=(--time-budget "${BUDGET:-3m}")
    fi
fi
.venv/bin/cnnlab train --data fashion-mnist "${ARGS[@]}" --out "$OUT" --overwrite
{
    .venv/bin/python - "$OUT/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
hw = m["hardware"]
plan = m.get("time_budget") or {}
how = (f"time budget {plan['budget_s']:g} s, ended by the {plan['ended_by']}" if plan else
       f"{m['epochs_requested'] or m['epochs']} epochs asked for")
print(f"run: {m['model']} on {m['dataset']}, {how}: {m['epochs']:g} epochs ({m['steps']:,} steps) at "
      f"{m['samples_per_s'] or 0:,.0f} samples/s, {m['precision']}, {hw['threads']} thread(s)")
print(f"machine: {hw['cpu']} ({hw['isa']}); {m['process_seconds']:.1f} s from process start to the saved run")
print()
PY
    .venv/bin/cnnlab evaluate "$OUT" --data fashion-mnist
} > "$OUT/report.txt"
cat "$OUT/report.txt"
echo
echo "report: $OUT/report.txt (confusion matrix: $OUT/confusion.png, curves: $OUT/curves.png, metrics: $OUT/metrics.json)"
