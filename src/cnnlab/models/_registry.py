"""Model registry: variants register by name; `create_model` builds them, `list_models` finds them."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# the keyword arguments each registered model accepts (its signature's, or those of what it forwards **kwargs to)
_PARAMS: dict[str, dict[str, inspect.Parameter]] = {}
# Resolvers for names that are not registered but describe a model (the course notation, models/notation/,
# registers one): each returns a constructor for the name, or None when the name is not theirs.
_RESOLVERS: list[Callable[[str], Callable[..., nn.Module] | None]] = []

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def model_params(fn: Callable, takes: Callable | None = None) -> dict[str, inspect.Parameter]:
    """The keyword arguments constructor `fn` accepts: its named parameters and, when it forwards `**kwargs` to
    `takes` (a class or function), the parameters of `takes` that have a default (those without one, such as
    ResNet's block type, are what the variant fixes)."""
    params = inspect.signature(fn).parameters.values()
    accepted = {p.name: p for p in params if p.kind in _NAMED}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        if takes is None:
            name = getattr(fn, "__name__", repr(fn))
            raise TypeError(
                f"model constructor {name} takes **kwargs: register it with register_model(takes=...) "
                "naming the class or function they go to, so that its arguments can be checked"
            )
        forwarded = inspect.signature(takes).parameters.values()
        accepted |= {p.name: p for p in forwarded if p.kind in _NAMED and p.default is not inspect.Parameter.empty}
    return accepted


def register_model(fn: Callable[..., nn.Module] | None = None, *, takes: Callable | None = None) -> Callable:
    """Decorator: register a model constructor under its function name.

    `@register_model` on a function with explicit keyword parameters; `@register_model(takes=ResNet)` on one that
    forwards `**kwargs` to ResNet, whose parameters with defaults are then the model's options.
    """

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model '{fn.__name__}' is registered twice")
        _PARAMS[fn.__name__] = model_params(fn, takes)
        _MODELS[fn.__name__] = fn
        return fn

    return register if fn is None else register(fn)


def register_resolver(fn: Callable[[str], Callable[..., nn.Module] | None]) -> Callable:
    """Decorator: add a resolver, which returns a constructor for a name it claims (None otherwise) or raises a
    ValueError for a name it claims but cannot build (e.g. a course-notation string with a bad token). The
    constructor's signature lists the arguments it takes (no **kwargs)."""
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


def _check_args(name: str, accepted: dict[str, inspect.Parameter], kwargs: dict) -> None:
    """Refuse keyword arguments the model does not take, naming them and listing the ones it does."""
    unknown = [k for k in kwargs if k not in accepted]
    if not unknown:
        return
    bad = ", ".join(f"'{k}'" for k in unknown)
    close = difflib.get_close_matches(unknown[0], list(accepted), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"{name} does not take {bad}{hint}; it takes: {', '.join(sorted(accepted))}")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name, e.g. create_model("lenet5", num_classes=10, in_chans=1).

    Only the arguments given are passed: every family decides its own defaults (the ImageNet families 1000 classes
    and 3 channels, LeNet-5, the lecture network and the course notation 10 classes and 1 channel). An argument the
    model does not take is a ValueError that names it and lists the ones it takes.
    """
    ctor = get_constructor(name)
    accepted = _PARAMS[name] if name in _MODELS else model_params(ctor)
    _check_args(name, accepted, kwargs)
    model = ctor(**kwargs)
    # what it takes to build this model again, saved in model files next to the weights: the arguments given, and
    # the class count and channels the model was built with even where they were the family's defaults
    args = {
        k: accepted[k].default
        for k in ("num_classes", "in_chans")
        if k in accepted and accepted[k].default is not inspect.Parameter.empty
    }
    model.model_name = name
    model.model_args = {**args, **kwargs}
    return model
