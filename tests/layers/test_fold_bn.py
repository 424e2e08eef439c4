import pytest
import torch
from torch import nn

from cnnlab.layers.fold_bn import fold_batchnorm


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Give every BN non-trivial statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


class Residual(nn.Module):
    """conv→bn used through attributes (as in ResNet), plus a BN whose input is read twice (must not fold)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc, self.bn3 = nn.Linear(8, 4), nn.BatchNorm1d(4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.conv2(x)
        x = self.bn2(y) + y  # y has two users: folding bn2 into conv2 would change the sum
        return self.bn3(self.fc(x.mean((2, 3))))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4)),
        Residual,
    ],
)
def test_fold_keeps_outputs(make):
    model = _randomize_bn(make())
    x = torch.randn(4, 3, 10, 10)
    folded = fold_batchnorm(model)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert type(folded) is type(model)  # the model keeps its class and interface
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0  # original untouched


def test_fold_skips_bn_whose_input_is_shared():
    folded = fold_batchnorm(_randomize_bn(Residual()))
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.bn3, nn.Identity)
    assert isinstance(folded.bn2, nn.BatchNorm2d)


def test_a_folded_model_is_not_folded_again_per_call(monkeypatch):
    # batch norm after a pooling (the fast recipe's nets) has no layer to merge into and stays; inference must not
    # copy and trace the model once more on every call for it (a batch-1 call took 6.4 ms instead of 0.9)
    from cnnlab import infer
    from cnnlab.layers.fold_bn import is_folded
    from cnnlab.models import create_model

    model = _randomize_bn(create_model("CL8k3-MP4-BN-CL16k3-BN-GAP-FC10", num_classes=10, in_chans=1))
    x = torch.randn(2, 1, 12, 12)
    cpu = torch.device("cpu")
    net = infer.prepare(model, cpu, channels_last=True, fold_bn=True)
    assert is_folded(net) and not is_folded(model) and net is not model
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 1  # the one after the pool stays
    monkeypatch.setattr(infer, "fold_batchnorm", lambda m: pytest.fail("folded again"))
    assert infer.prepare(net, cpu, channels_last=True, fold_bn=True) is net
    torch.testing.assert_close(
        infer.run(net, [x], cpu, "fp32"), infer.run(model.eval(), [x], cpu, "fp32", fold_bn=False)
    )
