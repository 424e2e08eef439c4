import copy
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import InMemoryLoader, Normalize
from cnnlab.models import create_model
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.optim import param_groups
from tests.helpers import subprocess_env
from tests.train.helpers import toy_set

NORM = Normalize([0.2], [0.3])


def _one_step_on_everything(model, data, lr):
    """Reference: the mean loss over the whole set at once, one plain gradient step."""
    model = copy.deepcopy(model)
    loss = F.cross_entropy(model(NORM(data.images)), data.labels)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return model


def test_full_batch_gd_equals_one_step_on_the_whole_set():
    data = toy_set(100)  # 4 batches of 32 + a last one of 4: unequal batches must be weighted by their size
    model = create_model("lenet5")
    want = _one_step_on_everything(model, data, lr=0.1)
    trainer = Trainer(model, build_optimizer("gd", model, 0.1), device="cpu", precision="fp32", accumulate=0)
    trainer.fit(InMemoryLoader(data, 32, shuffle=True, transform=NORM), 1)
    assert trainer.step == 1 and trainer.updates_per_epoch == 1
    for p, q in zip(trainer.model.parameters(), want.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_accumulation_equals_the_big_batch():
    data = toy_set(128)
    a, b = create_model("lenet5"), create_model("lenet5")
    b.load_state_dict(a.state_dict())
    small = Trainer(a, build_optimizer("adam", a, 1e-3), device="cpu", precision="fp32", accumulate=4)
    small.fit(InMemoryLoader(data, 16, transform=NORM), 1)  # 8 batches of 16 → 2 steps of 64
    big = Trainer(b, build_optimizer("adam", b, 1e-3), device="cpu", precision="fp32")
    big.fit(InMemoryLoader(data, 64, transform=NORM), 1)
    assert small.step == big.step == 2
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_gradient_clipping_bounds_the_step():
    data = toy_set(32)
    model = create_model("lenet5")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(
        model, build_optimizer("sgd", model, 1.0, momentum=0), device="cpu", precision="fp32", grad_clip=0.01
    )
    trainer.fit(InMemoryLoader(data, 32, transform=NORM), 1)
    step = torch.cat([(p.detach() - q).flatten() for p, q in zip(model.parameters(), before, strict=True)])
    assert step.norm().item() == pytest.approx(0.01, rel=1e-3)  # lr 1 × gradient clipped to norm 0.01


def test_no_weight_decay_on_biases_and_norm_parameters():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and [p.ndim for p in decay["params"]] == [4, 2]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4  # conv bias, bn weight+bias, fc bias
    assert len(param_groups(model, 0.05, decay_all=True)) == 1


def test_adamw_decay_is_decoupled():
    w = torch.nn.Parameter(torch.ones(3, 3))
    opt = build_optimizer("adamw", [w], lr=0.1, weight_decay=0.5)
    w.grad = torch.zeros(3, 3)
    opt.step()  # zero gradient: only the decoupled decay moves the weight, by lr × wd × w
    torch.testing.assert_close(w.detach(), torch.full((3, 3), 1 - 0.1 * 0.5))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_each_optimizer_learns(name):
    data = toy_set(200)
    model = create_model("lenet5")
    lr = {"sgd": 0.05, "rmsprop": 1e-4}.get(name, 3e-3)
    trainer = Trainer(model, build_optimizer(name, model, lr, nesterov=name == "sgd"), device="cpu", precision="fp32")
    history = trainer.fit(InMemoryLoader(data, 32, shuffle=True, transform=NORM), 3)
    assert history[-1]["loss"] < history[0]["loss"]


def test_bad_optimizer_names_and_flags():
    params = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match="gd, sgd, adam, adamw, rmsprop"):
        build_optimizer("nag", params, 0.1)
    with pytest.raises(ValueError, match="--nesterov needs --optimizer sgd"):
        build_optimizer("adam", params, 0.1, nesterov=True)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimizers_update_exactly_as_torchs_own(name):
    """cnnlab's optimizers skip torch's dynamo guards only: same updates, state dicts torch's classes load."""
    torch.manual_seed(0)
    a = torch.nn.Linear(5, 3)
    b = copy.deepcopy(a)
    ours = build_optimizer(name, a.parameters(), 0.05, weight_decay=1e-2)
    base = type(ours).__mro__[1]
    assert base.__module__.startswith("torch.optim") and isinstance(ours, base)
    accepted = inspect.signature(base).parameters
    theirs = base(b.parameters(), **{k: v for k, v in ours.defaults.items() if k in accepted})
    for _ in range(3):
        x = torch.randn(8, 5)
        for model, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    torch.testing.assert_close(ours.state_dict()["state"], theirs.state_dict()["state"], rtol=0, atol=0)
    theirs.load_state_dict(ours.state_dict())  # a checkpoint of ours loads into torch's class


def test_training_does_not_import_dynamo():
    """torch._dynamo costs a command 1.3–1.9 s to import; an eager training step never needs it."""
    code = (
        "import sys, torch\n"
        "from cnnlab.data import InMemoryLoader, Normalize\n"
        "from cnnlab.models import create_model\n"
        "from cnnlab.train import Trainer, build_optimizer\n"
        "from tests.train.helpers import toy_set\n"
        "m = create_model('lenet5')\n"
        "opt = build_optimizer('sgd', m, 0.1, nesterov=True, weight_decay=5e-4)\n"
        "t = Trainer(m, opt, device='cpu', precision='fp32')\n"
        "t.fit(InMemoryLoader(toy_set(64), 32, transform=Normalize([0.2], [0.3])), 1)\n"
        "opt.load_state_dict(opt.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]  # the child imports tests.train.helpers from here
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=root, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
