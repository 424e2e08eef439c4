"""Weight initialization schemes, applied per layer type (conv and linear weights; biases to zero)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

INIT_SCHEMES: dict[str, Callable | None] = {
    # Glorot/Xavier uniform: U[−√(6/(n_in+n_out)), +√(6/(n_in+n_out))], Keras' default
    "glorot_uniform": nn.init.xavier_uniform_,
    "glorot_normal": nn.init.xavier_normal_,
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    # N(0, 2/fan_out): torchvision's conv init for ResNet and VGG
    "he_normal": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
    # N(0, 0.01²): torchvision's VGG classifier init (and the AlexNet paper's)
    "normal_0.01": lambda w: nn.init.normal_(w, 0.0, 0.01),
    # torchvision's GoogLeNet init: N(0, 0.01²) cut at ±2 (absolute bounds, i.e. ±200 σ: in effect a plain normal)
    "trunc_normal_0.01": lambda w: nn.init.trunc_normal_(w, 0.0, 0.01, -2.0, 2.0),
    "torch": None,  # keep PyTorch's default reset_parameters()
}


def init_weights(model: nn.Module, scheme: str = "glorot_uniform", linear: str | None = None) -> nn.Module:
    """Re-initialize every Conv weight with `scheme` and every Linear weight with `linear` (default: `scheme`).

    Biases are zeroed (left at PyTorch's default under 'torch'); BatchNorm gets weight 1, bias 0.
    """
    linear = scheme if linear is None else linear
    for name in (scheme, linear):
        if name not in INIT_SCHEMES:
            raise ValueError(f"unknown init scheme '{name}'; choose from {', '.join(INIT_SCHEMES)}")
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fn = INIT_SCHEMES[linear if isinstance(m, nn.Linear) else scheme]
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
