import math

import pytest
import torch

from cnnlab.models import create_model
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import Checkpoint, EarlyStopping, LRScheduler
from cnnlab.train.monitor import Monitor, resolve_mode


@pytest.mark.parametrize(
    ("metric", "mode"),
    [("val_loss", "min"), ("loss", "min"), ("val_accuracy", "max"), ("accuracy", "max"), ("val_f1", "max")],
)
def test_auto_mode_reads_the_name(metric, mode):
    assert resolve_mode(metric) == mode


def test_min_delta_and_non_finite_values():
    m = Monitor("val_loss", min_delta=0.1)
    assert m.update({"val_loss": 1.0}) and m.best == 1.0
    assert not m.update({"val_loss": 0.95})  # better, but not by more than min_delta
    assert m.update({"val_loss": 0.8})
    assert not m.update({"val_loss": math.nan}) and m.best == 0.8
    up = Monitor("val_accuracy")
    assert (
        up.update({"val_accuracy": 0.5}) and up.update({"val_accuracy": 0.7}) and not up.update({"val_accuracy": 0.6})
    )


def test_missing_metric_falls_back_or_says_what_is_logged():
    assert Monitor("val_loss", fallback="loss").value({"loss": 2.0}) == 2.0
    with pytest.raises(ValueError, match="'val_loss' is not logged.*logged: loss"):
        Monitor("val_loss").value({"loss": 2.0})
    with pytest.raises(ValueError, match="min, max"):
        Monitor("val_loss", mode="lowest")


def _trainer(callbacks):
    model = create_model("lenet5", num_classes=10, in_chans=1)
    return Trainer(
        model, build_optimizer("sgd", model.parameters(), 0.1), device="cpu", precision="fp32", callbacks=callbacks
    )


def test_best_checkpoint_on_accuracy_keeps_the_highest_epoch(tmp_path):
    # before the shared monitor, every metric was lower-is-better: val_accuracy kept the worst epoch
    ckpt = Checkpoint(tmp_path / "last.pt", best_path=tmp_path / "best.pt", monitor="val_accuracy")
    trainer = _trainer([ckpt])
    for epoch, acc in enumerate([0.5, 0.9, 0.7]):
        trainer.epoch = epoch
        ckpt.on_epoch_end(epoch, {"loss": 1.0, "val_accuracy": acc})
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 2 and best["value"] == 0.9


def test_early_stopping_and_plateau_share_the_monitor():
    stopper = EarlyStopping("val_accuracy", patience=2)
    plateau = LRScheduler("plateau", unit="epoch", patience=1, monitor="val_accuracy", gamma=0.5)
    trainer = _trainer([stopper, plateau])
    stopper.on_train_begin({})
    plateau.on_train_begin({})
    for epoch, acc in enumerate([0.5, 0.6, 0.55, 0.58]):
        logs = {"loss": 1.0, "val_accuracy": acc}
        stopper.on_epoch_end(epoch, logs)
        plateau.on_epoch_end(epoch, logs)
    assert stopper.best_epoch == 1 and trainer.stop_training and "val_accuracy" in trainer.stop_reason
    assert plateau.scale == 0.25  # two epochs without a higher accuracy, patience 1: halved twice
