"""cnnlab: convolutional networks for image classification, end to end.

The flat API: `cnnlab.train(...)`, `cnnlab.predict(run, images)`, `cnnlab.lr_find(...)`, `cnnlab.fine_tune(run, ...)`
(cnnlab/api.py), and the building blocks (`create_model`, `load_dataset`, `Trainer`, `load_model`, …).

`import cnnlab` is light: the public names below (and the submodules, as `cnnlab.data`) are imported on first
use (PEP 562), so a tool that needs one part of cnnlab does not pay for torch, matplotlib and the rest.
"""

import importlib as _importlib
import sys as _sys
import types as _types

__version__ = "0.1.0"

_EXPORTS = {
    "lr_find": "cnnlab.api",
    "fine_tune": "cnnlab.api",
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

__all__ = sorted([*_EXPORTS, "train", "predict"])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # resolved once
        return value
    if not name.startswith("_"):  # a submodule not imported yet, e.g. cnnlab.data after `import cnnlab`
        try:
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, "__version__"]


class _CallableModule(_types.ModuleType):
    """The package cnnlab/train/ or the module cnnlab/predict.py, made callable: `cnnlab.train(...)` and
    `cnnlab.predict(...)` call the flat API's functions (cnnlab/api.py), while the module keeps its name and
    contents, so every import form works (`import cnnlab.train.config as c`, `from cnnlab.train import Trainer`,
    `mock.patch("cnnlab.train.trainer.…")`)."""

    def __call__(self, *args, **kwargs):
        function = getattr(_importlib.import_module("cnnlab.api"), self.__name__.rpartition(".")[2])
        return function(*args, **kwargs)


_CALLABLE = ("train", "predict")  # submodules that are also the API's functions


class _Package(_types.ModuleType):
    """`cnnlab` itself: binding the submodule `train` or `predict` (as any import of it does) makes it callable."""

    def __setattr__(self, name: str, value) -> None:
        if name in _CALLABLE and isinstance(value, _types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
