"""TensorBoard event files: every numeric epoch log as a scalar (needs the optional `tensorboard` package)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.train.callbacks.base import ORDER_REPORT, Callback


class TensorBoard(Callback):
    """Write `loss`, `accuracy`, `val_*`, `lr`, … per epoch to event files in `log_dir` (view: tensorboard --logdir).

    Raises ImportError with the install command when the tensorboard package is missing.
    """

    order = ORDER_REPORT

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "TensorBoard logging needs the tensorboard package: pip install 'cnnlab[tensorboard]'"
            ) from None
        self.log_dir = Path(log_dir)
        self._writer_cls = SummaryWriter
        self.writer = None

    def on_train_begin(self, logs: dict) -> None:
        # purge_step drops events a killed run wrote after its last checkpoint, so a resumed run does not repeat them
        self.writer = self._writer_cls(str(self.log_dir), purge_step=self.trainer.epoch + 2)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                group = "val" if key.startswith("val_") else "train"
                self.writer.add_scalar(f"{key.removeprefix('val_')}/{group}", value, epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs: dict) -> None:
        if self.writer is not None:
            self.writer.close()
