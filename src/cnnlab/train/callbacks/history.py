"""CSV history: one row per finished epoch, written as it finishes (history.csv)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cnnlab.io import atomic_write
from cnnlab.train.callbacks.base import ORDER_REPORT, Callback


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file; the columns are fixed by the first epoch. A run that stops
    mid-epoch ends with that epoch's row, its `epoch` fractional (2.37 = 37 % of the third epoch) and without
    validation.

    Without `append` the file starts afresh, holding the trainer's history so far (the epochs a resumed run already
    has), so a run killed between writing a row and its checkpoint does not keep the row twice. The whole file is
    rewritten atomically at every row (it is small): a kill mid-write leaves the previous rows whole, never half a
    line.
    """

    order = ORDER_REPORT

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.append = append
        self.fields: list[str] | None = None
        self.rows: list[dict] = []

    def on_train_begin(self, logs: dict) -> None:
        if self.append and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.rows = list(reader)
                self.fields = list(reader.fieldnames or []) or None
            return
        self.fields, self.rows = None, []
        for row in self.trainer.history:  # a resumed run: the file is rewritten from the checkpoint's history
            self._add(row)
        if not self.rows:
            self.path.unlink(missing_ok=True)
        else:
            self._flush()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._add({"epoch": epoch + 1, **logs})
        self._flush()

    def on_train_end(self, logs: dict) -> None:
        # an epoch cut short (time limit or budget, Ctrl-C): its row, with a fractional epoch, closes the file
        if logs.get("partial"):
            self._add({k: v for k, v in logs["partial"].items() if k != "partial"})
            self._flush()

    def _add(self, row: dict) -> None:
        if self.fields is None:
            self.fields = list(row)
        self.rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def _flush(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fields or [], extrasaction="ignore", lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(self.rows)
        text = buf.getvalue()
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text, newline=""))
