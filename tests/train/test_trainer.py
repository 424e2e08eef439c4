import pytest
import torch

from cnnlab.data import ImageSet, InMemoryLoader, Normalize
from cnnlab.models import create_model
from cnnlab.train import Callback, EarlyStopping, Trainer, build_optimizer
from cnnlab.train.losses import ClassificationLoss
from tests.conftest import make_images


def _loaders(n=400):
    x, y = make_images(n)
    data = ImageSet(torch.from_numpy(x)[:, None], torch.from_numpy(y).long(), [str(i) for i in range(10)])
    norm = Normalize([0.2], [0.3])
    return InMemoryLoader(data, 32, shuffle=True, transform=norm), InMemoryLoader(data, 100, transform=norm)


def _trainer(callbacks=(), lr=3e-3, precision="fp32"):
    model = create_model("lenet5")
    return Trainer(
        model, build_optimizer("adam", model.parameters(), lr), device="cpu", precision=precision, callbacks=callbacks
    )


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs):
        if batch == 0:
            self.events.append(f"batch_end {batch} {logs['batch_size']}")

    def on_epoch_end(self, epoch, logs):
        self.events.append(f"epoch_end {epoch}")
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "samples_per_s"} <= set(logs)

    def on_train_end(self, logs):
        self.events.append("train_end")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_learns_toy_task(precision):
    train, val = _loaders()
    rec = Recorder()
    trainer = _trainer([rec], precision=precision)
    history = trainer.fit(train, 4, val)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.9
    assert rec.events[:3] == ["train_begin", "epoch_begin 0", "batch_end 0 32"]
    assert rec.events[-2:] == ["epoch_end 3", "train_end"]
    assert trainer.step == 4 * len(train)


def _trainer_bn():
    model = create_model("CL8k3-BN-MP4-CL16k3-BN-MP4-GAP-FC10", num_classes=10, in_chans=1)
    return Trainer(model, build_optimizer("sgd", model.parameters(), 0.1, momentum=0.9), device="cpu")


@pytest.mark.parametrize("make", [_trainer, _trainer_bn], ids=["lenet5", "batchnorm"])
def test_evaluate_matches_manual_computation(make):
    train, val = _loaders(200)
    trainer = make()
    assert trainer.evaluates_folded()  # on the CPU: a copy with BatchNorm folded into the convolutions
    trainer.fit(train, 1)
    trainer.model.train()
    model = trainer.model
    with torch.no_grad():  # the reference: plain torch, eval mode
        model.eval()
        logits = torch.cat([model(x.contiguous()) for x, _ in val.batches()])
        model.train()
    res = trainer.evaluate(val)
    assert res["accuracy"] == pytest.approx((logits.argmax(1) == val.labels).float().mean().item())
    assert res["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, val.labels).item(), rel=1e-5)
    assert trainer.model is model and model.training  # validation leaves the training model as it found it


def test_stop_from_callback_keeps_the_first_reason():
    class StopAfterOne(Callback):
        def on_epoch_end(self, epoch, logs):
            self.trainer.stop("enough")
            self.trainer.stop("a later reason")

    train, _ = _loaders(100)
    trainer = _trainer([StopAfterOne()])
    assert len(trainer.fit(train, 10)) == 1
    assert trainer.stop_reason == "enough" and not trainer.diverged
    trainer.stop("the loss became nan", diverged=True)  # a divergence is the more important news
    assert trainer.stop_reason == "the loss became nan" and trainer.diverged


def test_callbacks_run_by_order_not_by_list_position(tmp_path):
    from cnnlab.train.callbacks import Checkpoint, CSVLogger, LRScheduler, TerminateOnNaN

    seen = []

    class Spy(Callback):
        order = 85  # between the checkpoint (80) and the reports (90)

        def on_epoch_end(self, epoch, logs):
            seen.append([type(c).__name__ for c in self.trainer.callbacks.callbacks])

    cbs = [CSVLogger(tmp_path / "h.csv"), Spy(), Checkpoint(tmp_path / "c.pt"), TerminateOnNaN(), LRScheduler()]
    train, _ = _loaders(64)
    _trainer(cbs).fit(train, 1)
    assert seen[0] == ["LRScheduler", "TerminateOnNaN", "Checkpoint", "Spy", "CSVLogger"]


class ListLoader:
    """A BatchLoader that is not an InMemoryLoader: fixed batches, an epoch counter as its whole state."""

    def __init__(self, batches):
        self.data, self.batch_size, self.epoch = batches, batches[0][0].shape[0], 0

    def __len__(self):
        return len(self.data)

    @property
    def num_samples(self):
        return sum(len(y) for _, y in self.data)

    def batches(self, start=0):
        yield from self.data[start:]
        self.epoch += 1

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]


def test_trainer_takes_any_batch_loader_and_saves_its_state():
    from cnnlab.data.loader import BatchLoader

    train, val = _loaders(96)
    loader = ListLoader(list(train.batches()))
    assert isinstance(loader, BatchLoader)
    trainer = _trainer()
    history = trainer.fit(loader, 2, ListLoader(list(val.batches())))
    assert len(history) == 2 and "val_loss" in history[-1] and trainer.step == 2 * len(loader)
    state = trainer.state_dict()
    assert state["tracked"]["loader"] == {"epoch": 2}
    again = _trainer()
    again.load_state_dict(state)
    fresh = ListLoader(loader.data)
    again.fit(fresh, 2)  # nothing left to do, but the loader's state is restored when it is tracked
    assert fresh.epoch == 2


def test_keyboard_interrupt_keeps_history():
    class CtrlC(Callback):
        def on_batch_end(self, batch, logs):
            if self.trainer.epoch == 1 and batch == 2:
                raise KeyboardInterrupt

    train, _ = _loaders(200)
    trainer = _trainer([CtrlC()])
    history = trainer.fit(train, 5)
    assert trainer.interrupted and len(history) == 2 and trainer.epoch == 1


def test_early_stopping_restores_best():
    train, val = _loaders(200)
    stopper = EarlyStopping("val_loss", patience=1)
    trainer = _trainer([stopper], lr=0.5)  # huge LR: validation loss gets worse quickly
    history = trainer.fit(train, 8, val)
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    assert stopper.best_epoch == best
    assert trainer.evaluate(val)["loss"] == pytest.approx(history[best]["val_loss"], rel=1e-5)


def test_label_smoothing_and_aux_loss():
    logits, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    f = torch.nn.functional.cross_entropy
    assert ClassificationLoss(0.1)(logits, y) == pytest.approx(f(logits, y, label_smoothing=0.1).item())
    aux = torch.randn(8, 10)
    want = f(logits, y) + 0.3 * f(aux, y)
    assert ClassificationLoss()((logits, aux), y) == pytest.approx(want.item())


@pytest.mark.slow
def test_compiled_forward_trains_the_plain_module(monkeypatch):
    """--compile wraps the training forward in torch.compile (aot_eager here: no C++ compiler needed), while the
    trainer's model stays the plain module: same losses as eager, and its state_dict keys carry no compile prefix."""
    modes = []

    def compile_with_aot_eager(model, mode=None, **kw):
        modes.append(mode)
        return real_compile(model, backend="aot_eager")

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", compile_with_aot_eager)
    x, y = next(iter(_loaders(64)[0]))
    losses = {}
    for mode in ("off", "reduce-overhead"):
        torch.manual_seed(0)
        model = create_model("lenet5")
        trainer = Trainer(
            model, build_optimizer("sgd", model.parameters(), 0.05), device="cpu", precision="fp32", compile=mode
        )
        losses[mode] = [trainer.train_step(x, y).item() for _ in range(3)]
        assert trainer.model is model and all(not k.startswith("_orig_mod") for k in trainer.state_dict()["model"])
    assert modes == ["reduce-overhead"]
    assert losses["reduce-overhead"][2] < losses["reduce-overhead"][0]  # the compiled forward's weights did update
    assert losses["reduce-overhead"] == pytest.approx(losses["off"], rel=1e-4)


def test_compile_mode_is_checked():
    from cnnlab.train.config import TrainConfig

    assert TrainConfig(compile=True).validate().compile == "default"
    with pytest.raises(ValueError, match="reduce-overhead"):
        TrainConfig(compile="fast").validate()
    with pytest.raises(ValueError, match="max-autotune"):
        model = create_model("lenet5")
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), device="cpu", compile="turbo")
