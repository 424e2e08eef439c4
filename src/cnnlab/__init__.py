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
    "train": "cnnlab.api",
    "predict": "cnnlab.api",
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

__all__ = sorted(_EXPORTS)


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


class _Package(_types.ModuleType):
    """`cnnlab` itself. `cnnlab.train` and `cnnlab.predict` are the functions of the flat API, while the package
    cnnlab/train/ and the module cnnlab/predict.py keep those names for `from` imports (`from cnnlab.train import
    Trainer`, `from cnnlab.predict import predict_files`). Importing a submodule binds it as an attribute of its
    parent, which would replace the function: that binding is skipped for the exported names (the submodule stays
    in sys.modules, where imports find it). Hence `import cnnlab.train.config as c` does not work; use `from`."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, _types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            return  # `cnnlab.train` stays (or resolves on first use to) the function
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
