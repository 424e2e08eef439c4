"""CSV history: one row per finished epoch, written as it finishes (history.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

from cnnlab.train.callbacks.base import Callback


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file; the columns are fixed by the first epoch."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.append = append
        self.fields: list[str] | None = None

    def on_train_begin(self, logs: dict) -> None:
        if self.append and self.path.exists():
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f), None)
        elif self.path.exists():
            self.path.unlink()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        row = {"epoch": epoch + 1, **logs}
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
