"""cnnlab: convolutional networks for image classification, end to end.

`import cnnlab` is light: the public names below (and the submodules, as `cnnlab.data`) are imported on first
use (PEP 562), so a tool that needs one part of cnnlab does not pay for torch, matplotlib and the rest.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ImageSet": "cnnlab.data",
    "load_dataset": "cnnlab.data",
    "load_model": "cnnlab.io",
    "save_model": "cnnlab.io",
    "create_model": "cnnlab.models",
    "list_models": "cnnlab.models",
    "register_model": "cnnlab.models",
    "Trainer": "cnnlab.train",
    "load_pretrained": "cnnlab.train.transfer",
    "freeze": "cnnlab.train.transfer",
    "unfreeze": "cnnlab.train.transfer",
}

__all__ = [
    "ImageSet",
    "Trainer",
    "create_model",
    "freeze",
    "list_models",
    "load_dataset",
    "load_model",
    "load_pretrained",
    "register_model",
    "save_model",
    "unfreeze",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # resolved once
        return value
    if not name.startswith("_"):  # a submodule not imported yet, e.g. cnnlab.data after `import cnnlab`
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
