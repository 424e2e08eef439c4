import math

import pytest
import torch
from torch import nn

from cnnlab.data import Compose, InMemoryLoader, Normalize
from cnnlab.data.augment import Augment
from cnnlab.io import load_checkpoint
from cnnlab.run.setup import build
from cnnlab.run.train import train_run
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import Callback, Checkpoint, EarlyStopping, TensorBoard, TerminateOnNaN, TimeLimit
from cnnlab.train.callbacks.time_limit import parse_duration
from cnnlab.train.config import TrainConfig
from tests.train.helpers import loaders, make_trainer, toy_set


def _cfg(fake_idx, tmp_path, **kw):
    base = {
        "data_dir": str(fake_idx),
        "batch_size": 32,
        "val_split": 100,
        "precision": "fp32",
        "epochs": 2,
        "lr": 3e-3,
        "verbose": 0,
        "out": str(tmp_path / "run"),
    }
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_nan_from_a_huge_lr_stops_naming_the_step(fake_idx, tmp_path):
    lines = []
    cfg = _cfg(fake_idx, tmp_path, optimizer="sgd", lr=1e4, epochs=5, checkpoint_every=2)
    result = train_run(cfg, log=lines.append)
    reason = result.metrics["stop_reason"]
    assert reason.startswith("the loss became nan at step ") and "lr 10000" in reason
    bad_step = int(reason.split("at step ")[1].split()[0])
    assert any("keeping the weights of the last good checkpoint" in line for line in lines)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] < bad_step  # the checkpoint predates the divergence …
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())  # … and holds finite weights
    assert result.metrics["epochs"] < 5 and result.metrics["test_accuracy"] is not None


@pytest.mark.slow
def test_time_limit_stops_cleanly_then_evaluates(fake_idx, tmp_path):
    result = train_run(_cfg(fake_idx, tmp_path, epochs=10_000, time_limit="1s"), log=lambda s: None)
    m = result.metrics
    # evaluated after the stop; no accuracy bound: what 1 s of training reaches depends on the machine's load
    assert m["stop_reason"].startswith("time limit of 1 s reached") and 0 <= m["test_accuracy"] <= 1
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == m["steps"]  # resumable from there
    assert parse_duration("1.5m") == 90 and parse_duration(30) == 30
    with pytest.raises(ValueError, match="60s, 5m"):
        TimeLimit("soon")


def test_early_stopping_restores_the_best_epoch():
    class Sabotage(Callback):  # from the third epoch on a huge LR makes the validation loss worse
        def on_epoch_begin(self, epoch, logs):
            if epoch >= 2:
                self.trainer.optimizer.param_groups[0]["lr"] = 0.5

    train, val = loaders(200)
    stopper = EarlyStopping("val_loss", patience=2)
    trainer = make_trainer([Sabotage(), stopper])
    history = trainer.fit(train, 10, val)
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    assert len(history) < 10 and stopper.best_epoch == best and best < len(history) - 1
    assert trainer.evaluate(val)["loss"] == pytest.approx(history[best]["val_loss"], rel=1e-5)


class _Crash(Callback):
    """Stands in for a kill: raises at a given (epoch, batch) after the checkpoint of that batch was written."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_batch_end(self, batch, logs):
        if (self.trainer.epoch + 1, batch) == self.at:
            raise RuntimeError("killed")


def _dropout_run(tmp_path, extra=(), state=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 26 * 26, 10))
    aug = Augment("flip,translate=2,erase=0.5,mixup", num_classes=10, seed=3)
    train = InMemoryLoader(toy_set(200), 16, shuffle=True, transform=Compose([aug, Normalize([0.2], [0.3])]), seed=1)
    ckpt = Checkpoint(tmp_path / "ckpt.pt", every_steps=4)
    trainer = Trainer(
        model,
        build_optimizer("sgd", model, 0.01),
        device="cpu",
        precision="fp32",
        callbacks=[ckpt, *extra],
        mix=aug.mix,
    )
    trainer.track("augment", aug)
    if state is not None:
        trainer.load_state_dict(state)
    trainer.fit(train, 3)
    return trainer


def test_resume_mid_epoch_is_exact_with_dropout_and_augmentation(tmp_path):
    want = _dropout_run(tmp_path / "a")
    with pytest.raises(RuntimeError, match="killed"):
        _dropout_run(tmp_path / "b", [_Crash(epoch=1, batch=9)])
    torch.rand(100)  # the global RNG moves on in between, as in a new process
    state = load_checkpoint(tmp_path / "b" / "ckpt.pt")
    assert state["epoch"] == 0 and 0 < state["batch"] < 13  # the crash came mid-epoch, after step 20
    got = _dropout_run(tmp_path / "b", state=state)
    for (k, p), q in zip(want.model.state_dict().items(), got.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    assert [h["loss"] for h in got.history] == [h["loss"] for h in want.history]


@pytest.mark.slow
def test_seed_makes_runs_reproducible(fake_idx, tmp_path):
    kw = {"epochs": 1, "augment": "flip,translate=2,cutmix", "label_smoothing": 0.1, "schedule": "onecycle"}
    runs = [
        train_run(_cfg(fake_idx, tmp_path / str(i), seed=s, **kw), log=lambda s: None) for i, s in enumerate((7, 7, 8))
    ]
    weights = [load_checkpoint(r.out / "checkpoint.pt")["model"] for r in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


@pytest.mark.slow
def test_user_callbacks_and_best_checkpoint(fake_idx, tmp_path):
    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs):
            Count.epochs += 1

    result = train_run(_cfg(fake_idx, tmp_path), callbacks=[Count()], log=lambda s: None)
    assert Count.epochs == 2
    best = load_checkpoint(result.out / "best.pt")
    assert best["value"] == min(h["val_loss"] for h in result.history) and best["monitor"] == "val_loss"


@pytest.mark.parametrize("scheme", ["glorot_uniform", "he_normal"])
def test_init_scheme_by_name(fake_idx, tmp_path, scheme):
    setup = build(_cfg(fake_idx, tmp_path, init=scheme).validate(), torch.device("cpu"), log=lambda s: None)
    w = setup.model.classifier[0].weight  # Linear 400 → 120
    fan_in, fan_out = w.shape[1], w.shape[0]
    bound = math.sqrt(6 / (fan_in + fan_out))
    if scheme == "glorot_uniform":  # the course's U[−√6/√(n_in+n_out), +√6/√(n_in+n_out)]
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    else:  # N(0, 2 / fan_out)
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train, val = loaders(100)
    make_trainer([TerminateOnNaN(), TensorBoard(tmp_path / "tb")]).fit(train, 2, val)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"loss/train", "loss/val", "accuracy/val", "lr/train"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]
