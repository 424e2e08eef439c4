"""Model registry: variants register by name; `create_model` builds them, `list_models` finds them."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# Resolvers for names that are not registered but describe a model (the course notation, models/notation.py,
# registers one): each returns a constructor for the name, or None when the name is not theirs.
_RESOLVERS: list[Callable[[str], Callable[..., nn.Module] | None]] = []


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model constructor under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model '{fn.__name__}' is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def register_resolver(fn: Callable[[str], Callable[..., nn.Module] | None]) -> Callable:
    """Decorator: add a resolver, which returns a constructor for a name it claims (None otherwise) or raises a
    ValueError for a name it claims but cannot build (e.g. a course-notation string with a bad token)."""
    _RESOLVERS.append(fn)
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    """Whether `name` is a registered model or a name a resolver can build (e.g. CL32-MP4-FC10)."""
    try:
        get_constructor(name)
    except ValueError:
        return False
    return True


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
    try:
        model = get_constructor(name)(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        # e.g. --model-arg small_input=true for a model without that option
        raise ValueError(f"model '{name}' does not take that argument ({e})") from None
    # what it takes to build this model again: saved in model files next to the weights
    model.model_name = name
    model.model_args = {"num_classes": num_classes, "in_chans": in_chans, **kwargs}
    return model
