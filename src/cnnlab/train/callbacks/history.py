"""CSV history: one row per finished epoch, written as it finishes (history.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

from cnnlab.train.callbacks.base import ORDER_REPORT, Callback


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file; the columns are fixed by the first epoch. A run that stops mid-epoch
    ends with that epoch's row, its `epoch` fractional (2.37 = 37 % of the third epoch) and without validation.

    Without `append` the file starts afresh, holding the trainer's history so far (the epochs a resumed run already
    has), so a run killed between writing a row and its checkpoint does not keep the row twice.
    """

    order = ORDER_REPORT

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.append = append
        self.fields: list[str] | None = None

    def on_train_begin(self, logs: dict) -> None:
        if self.append and self.path.exists():
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f), None)
            return
        self.path.unlink(missing_ok=True)
        self.fields = None
        for row in self.trainer.history:  # a resumed run: the file is rewritten from the checkpoint's history
            self._write(row)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._write({"epoch": epoch + 1, **logs})

    def on_train_end(self, logs: dict) -> None:
        # an epoch cut short (time limit or budget, Ctrl-C): its row, with a fractional epoch, closes the file
        if logs.get("partial"):
            self._write({k: v for k, v in logs["partial"].items() if k != "partial"})

    def _write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
