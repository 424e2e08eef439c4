"""The training forward with each ReLU after its max pool: the same values and gradients as the model's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.layers.pool_first import PoolFirst, move_relus, pool_first
from cnnlab.models import create_model

FAST = "CL16k3-MP4-BN-CL48k3-MP4-BN-CL96k3-MP4-BN-CL192k3-BN-GAP-FC10"


def _grads(model: nn.Module, forward, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout masks for both
    out = forward(x)
    out = out[0] if isinstance(out, tuple) else out
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize(
    "name,size,moved",
    [(FAST, 28, 3), ("lenet5", 28, 2), ("lecture_cnn", 28, 3), ("vgg11", 32, 5), ("resnet18", 32, 1)],
)
def test_same_values_and_gradients_as_the_model(name, size, moved):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, img_size=size).train()
    x = torch.randn(6, 1, size, size)
    forward = pool_first(model)
    assert isinstance(forward, PoolFirst)
    traced = forward._trace(list(model.named_modules()))
    assert traced is not None and len(forward._moved) == moved
    order = [n.target for n in traced[0].graph.nodes if n.op == "call_module"]
    first_pool = next(i for i, t in enumerate(order) if isinstance(model.get_submodule(t), nn.MaxPool2d))
    assert isinstance(model.get_submodule(order[first_pool + 1]), nn.ReLU)  # the ReLU now runs after the pool
    out_a, grads_a = _grads(model, model, x)
    out_b, grads_b = _grads(model, forward, x)
    assert torch.equal(out_a, out_b)
    assert len(grads_a) == len(grads_b) == len(list(model.parameters()))
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.equal(a, b)


def test_bf16_autocast_gives_the_same_values():
    torch.manual_seed(0)
    model = create_model(FAST, num_classes=10, in_chans=1, img_size=28).train()
    x = torch.randn(8, 1, 28, 28)
    with torch.autocast("cpu", torch.bfloat16):
        a, ga = _grads(model, model, x)
        b, gb = _grads(model, pool_first(model), x)
    assert torch.equal(a, b) and all(torch.equal(u, v) for u, v in zip(ga, gb, strict=True))


def test_nothing_to_move_keeps_the_model():
    model = create_model("CL8k3-BN-GAP-FC10", num_classes=10, in_chans=1, img_size=28)
    assert pool_first(model) is model
    avg = create_model("CL8k3-AP4-CL8k3-GAP-FC10", num_classes=10, in_chans=1, img_size=28)
    assert pool_first(avg) is avg


class _ConvReluPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)


def test_a_relu_whose_input_is_read_elsewhere_stays():
    class Branch(_ConvReluPool):
        def forward(self, x):
            c = self.conv(x)
            return self.pool(self.relu(c)).mean() + c.mean()

    gm = torch.fx.symbolic_trace(Branch())
    assert move_relus(gm) == []
    branch = Branch()
    assert PoolFirst(branch)._trace(list(branch.named_modules())) is None


def test_hooks_on_a_moved_relu_see_the_full_map():
    torch.manual_seed(0)
    model = create_model(FAST, num_classes=10, in_chans=1, img_size=28).train()
    forward = pool_first(model)
    seen = []
    relu = model.features[1]
    assert isinstance(relu, nn.ReLU)
    handle = relu.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    forward(torch.randn(2, 1, 28, 28))
    assert seen == [(2, 16, 28, 28)]  # the model's own forward ran: the hook saw the map before the pool
    handle.remove()
    bn = model.features[3]
    calls = []
    handle = bn.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape)))
    forward(torch.randn(2, 1, 28, 28))  # a hook on a module the trace calls as one still fires in the trace
    assert calls == [(2, 16, 14, 14)]
    modules = list(model.named_modules())
    assert not forward._unsafe(modules, forward._trace(modules)[1])  # the trace ran, and the hook fired in it
    handle.remove()


def test_each_pattern_of_training_flags_gets_its_own_trace():
    class Branchy(_ConvReluPool):
        def forward(self, x):
            y = self.pool(self.relu(self.conv(x)))
            return y * 2 if self.training else y

    model = Branchy()
    forward = pool_first(model)
    x = torch.randn(1, 1, 8, 8)
    model.train()
    assert torch.equal(forward(x), model(x))
    model.eval()
    assert torch.equal(forward(x), model(x))
    assert len(forward._traces) == 2


def test_a_replaced_module_is_traced_again():
    model = create_model(FAST, num_classes=10, in_chans=1, img_size=28).train()
    forward = pool_first(model)
    x = torch.randn(2, 1, 28, 28)
    assert forward(x).shape == (2, 10)
    model.classifier[-1] = nn.Linear(192, 5)
    assert forward(x).shape == (2, 5) and torch.equal(forward(x), model(x))


def test_the_trainer_trains_exactly_as_with_the_model(monkeypatch):
    from cnnlab.train.trainer import Trainer

    def run(use_trace: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = create_model(FAST, num_classes=10, in_chans=1, img_size=28)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        trainer = Trainer(model, opt, device="cpu", precision="fp32", threads=1)
        assert isinstance(trainer.forward, PoolFirst)
        if not use_trace:
            trainer.forward = model
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            trainer.train_step(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))
        return [p.detach().clone() for p in model.parameters()] + [b.clone() for b in model.buffers()]

    torch.manual_seed(0)
    start = [p.detach().clone() for p in create_model(FAST, num_classes=10, in_chans=1, img_size=28).parameters()]
    traced, plain = run(True), run(False)
    assert not torch.equal(traced[0], start[0])  # the steps did train
    for a, b in zip(traced, plain, strict=True):
        assert torch.equal(a, b)
