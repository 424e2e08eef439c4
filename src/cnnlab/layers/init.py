"""Weight initialization schemes, applied per layer type (conv and linear weights; biases to zero)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

INIT_SCHEMES: dict[str, Callable | None] = {
    # Glorot/Xavier uniform: U[−√(6/(n_in+n_out)), +√(6/(n_in+n_out))], Keras' default
    "glorot_uniform": nn.init.xavier_uniform_,
    "glorot_normal": nn.init.xavier_normal_,
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "he_normal": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
    "torch": None,  # keep PyTorch's default reset_parameters()
}


def init_weights(model: nn.Module, scheme: str = "glorot_uniform") -> nn.Module:
    """Re-initialize every Conv/Linear weight of `model` with `scheme` and zero their biases."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme '{scheme}'; choose from {', '.join(INIT_SCHEMES)}")
    fn = INIT_SCHEMES[scheme]
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            if fn is None:
                m.reset_parameters()
                continue
            fn(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
