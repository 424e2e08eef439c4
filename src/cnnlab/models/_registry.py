"""Model registry: variants register by name; `create_model` builds them, `list_models` finds them."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# Resolvers for names that are not registered but describe a model (e.g. the course notation, added later):
# each returns a constructor for the name, or None when the name is not theirs.
_RESOLVERS: list[Callable[[str], Callable[..., nn.Module] | None]] = []


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model constructor under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model '{fn.__name__}' is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def register_resolver(fn: Callable[[str], Callable[..., nn.Module] | None]) -> Callable:
    _RESOLVERS.append(fn)
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS or any(r(name) is not None for r in _RESOLVERS)


def get_constructor(name: str) -> Callable[..., nn.Module]:
    if name in _MODELS:
        return _MODELS[name]
    for resolve in _RESOLVERS:
        ctor = resolve(name)
        if ctor is not None:
            return ctor
    close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}?" if close else f"available: {', '.join(list_models())}"
    raise ValueError(f"unknown model '{name}'; {hint}")


def create_model(name: str, num_classes: int = 10, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a model by name, e.g. create_model("lenet5", num_classes=10, in_chans=1)."""
    model = get_constructor(name)(num_classes=num_classes, in_chans=in_chans, **kwargs)
    # what it takes to build this model again: saved in model files next to the weights
    model.model_name = name
    model.model_args = {"num_classes": num_classes, "in_chans": in_chans, **kwargs}
    return model
