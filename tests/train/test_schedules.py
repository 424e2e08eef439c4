import pytest
import torch

from cnnlab.train.callbacks import Callback, LRScheduler
from cnnlab.train.schedules import linear_decay, make_schedule
from tests.train.helpers import loaders, make_trainer


@pytest.mark.parametrize("k, want", [(0, 0.1), (50, 0.0505), (100, 0.001), (200, 0.001)])
def test_course_linear_decay_values(k, want):
    # ε_k = (1 − α) ε_0 + α ε_τ, α = k/τ, with ε_0 = 0.1, ε_τ = 0.001, τ = 100; constant ε_τ after τ
    assert linear_decay(k, 100, 0.1, 0.001) == pytest.approx(want)
    assert 0.1 * make_schedule("linear", total=100, end_ratio=0.01)(k) == pytest.approx(want)


def _torch_lrs(make, steps, lr=0.1):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize(
    "name, kw, make",
    [
        ("onecycle", {}, lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=50, cycle_momentum=False)),
        (
            "onecycle",
            {"pct_start": 0.15},
            lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=50, pct_start=0.15, cycle_momentum=False),
        ),
        ("cosine", {}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50)),
        ("step", {"step_size": 15, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 15, 0.5)),
    ],
)
def test_schedules_match_torch(name, kw, make):
    ours = [0.1 * make_schedule(name, total=50, **kw)(k) for k in range(50)]
    assert ours == pytest.approx(_torch_lrs(make, 50), rel=1e-6, abs=1e-12)


def test_warmup_ramps_then_hands_over():
    s = make_schedule("cosine", total=110, warmup=10)
    ramp = [s(k) for k in range(10)]
    assert ramp == sorted(ramp) and 0 < ramp[0] < ramp[-1] < 1
    assert s(10) == pytest.approx(1.0) and s(60) == pytest.approx(0.5) and s(110) == pytest.approx(0.0, abs=1e-12)


def test_unknown_schedule_lists_valid_ones():
    with pytest.raises(ValueError, match="cosine.*onecycle"):
        make_schedule("cosin", total=10)


def test_per_step_schedule_sets_each_step_lr():
    train, _ = loaders(200)  # 7 batches of 32
    seen = []

    class Spy(Callback):  # after the scheduler: records the LR each step used
        def on_batch_end(self, batch, logs):
            seen.append(self.trainer.last_lr)

    trainer = make_trainer([LRScheduler("linear", "step", end_ratio=0.1), Spy()], lr=0.01)
    trainer.fit(train, 2)
    tau = 2 * len(train)
    assert seen == pytest.approx([linear_decay(k, tau, 0.01, 0.001) for k in range(tau)])
    assert trainer.history[-1]["lr"] == pytest.approx(seen[-1])


def test_per_epoch_schedule_and_plateau():
    train, val = loaders(200)
    trainer = make_trainer([LRScheduler("step", "epoch", step_size=1, gamma=0.5)], lr=0.01)
    trainer.fit(train, 3)
    assert [h["lr"] for h in trainer.history] == pytest.approx([0.01, 0.005, 0.0025])

    plateau = LRScheduler("plateau", "epoch", patience=1, gamma=0.1, monitor="val_loss")
    trainer = make_trainer([plateau], lr=0.01)
    trainer.fit(train, 1, val)
    plateau.on_epoch_end(1, {"val_loss": 1e9})  # no improvement for `patience` epochs → LR × gamma
    assert plateau.scale == pytest.approx(0.1)
    assert plateau.state_dict()["scale"] == pytest.approx(0.1)
