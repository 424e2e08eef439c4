"""Transfer learning: start a model from trained weights, freeze part of it, and give the backbone its own LR.

- `read_source(source)`: the weights of a cnnlab run folder or model file, a cnnlab checkpoint, or a weight file
  written by torchvision / timm (.pth / .pt read with `weights_only=True`, never unpickling code; .safetensors).
- `load_pretrained(model, source)`: copy what fits into `model`; the classifier is new unless the classes are the
  same (with `new_fc=True` the fully connected layers below it too, as fastai's `cnn_learner`), a change of input
  channels adapts the first conv, and everything else that does not fit is returned as a `LoadReport` (missing /
  unexpected / wrong shape), or raised with `strict=True`.
- `freeze(model, spec)` / `unfreeze(model)`: requires_grad off / on; the BatchNorm layers of frozen blocks stay in
  eval mode (their running statistics do not move) even when the Trainer puts the model in training mode.
- `param_groups(model, lr, ...)`: the classifier (or the `head` given, e.g. `LoadReport.head_names`) at `lr`, the
  backbone at `lr × backbone_lr_mult`, weight decay off biases and norm parameters. Frozen parameters get no
  gradient, hence no optimizer state and no weight decay.
"""

from __future__ import annotations

import pickle
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cnnlab.files import regular_file
from cnnlab.io import MODEL_FILE, RunMeta, read_meta
from cnnlab.io.checkpoint import check_torch_file

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_NESTED = ("state_dict", "model", "model_state_dict", "module")  # how training scripts wrap a state dict
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass
class Source:
    """Weights read from a SOURCE: the state dict, its cnnlab metadata (None for a plain weight file), its kind."""

    path: Path
    state: dict[str, torch.Tensor]
    meta: RunMeta | None
    kind: str  # "cnnlab run", "cnnlab model file", "cnnlab checkpoint", "weight file"

    def describe(self) -> dict:
        """What a run records about where its weights came from (the source's own metadata included)."""
        out = {"source": str(self.path), "kind": self.kind}
        if self.meta:
            keep = ("model", "model_args", "dataset", "classes", "input_size", "metrics", "init_from")
            record = self.meta.to_dict()
            out.update({k: record[k] for k in keep})
        return out


@dataclass
class LoadReport:
    """What `load_pretrained` did: tensors loaded, the classifier's fate, adaptations, and every mismatch."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the source
    unexpected: list[str] = field(default_factory=list)  # in the source, not in the model
    wrong_shape: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, source shape, model shape)
    head: str = ""  # "kept" or "new"
    notes: list[str] = field(default_factory=list)  # one line per adaptation (channels, classifier)
    new_layers: list[str] = field(default_factory=list)  # fully connected layers left new (`new_fc`), module names

    @property
    def mismatches(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def head_names(self, model: nn.Module) -> list[str]:
        """Parameter names that train as the head: the classifier's and those of the new fully connected layers."""
        under = tuple(f"{m}." for m in self.new_layers)
        return head_names(model) + [n for n, _ in model.named_parameters() if n.startswith(under)]

    def lines(self, limit: int = 8) -> list[str]:
        """The mismatches as a short list, at most `limit` keys per kind."""

        def some(items: list[str]) -> str:
            more = f" … (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        out = []
        if self.missing:
            out.append(f"missing from the source ({len(self.missing)}, left as initialized): {some(self.missing)}")
        if self.unexpected:
            out.append(f"unexpected in the source ({len(self.unexpected)}, ignored): {some(self.unexpected)}")
        if self.wrong_shape:
            shapes = [f"{k} {list(s)} (source) vs {list(m)} (model)" for k, s, m in self.wrong_shape]
            out.append(f"wrong shape ({len(shapes)}, left as initialized): {some(shapes)}")
        return out

    def to_dict(self) -> dict:
        return {
            "loaded": len(self.loaded),
            "head": self.head,
            "new_layers": self.new_layers,
            "notes": self.notes,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "wrong_shape": [[k, list(s), list(m)] for k, s, m in self.wrong_shape],
        }


# ---- reading a source
def _tensors(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded object (unwrapping {'state_dict': …} / {'model': …}, 'module.' prefixes)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a state dict (the file holds a {type(obj).__name__}, not names → tensors)")
    for key in _NESTED:
        if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{path}: not a state dict (no tensors among its {len(obj)} entries)")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    check_torch_file(path, "weight file")
    try:
        with warnings.catch_warnings():  # "pickle protocol 4 …": the refusal below says what matters
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("\n")
        why = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), first[0].strip())
        raise ValueError(
            f"{path}: refused: the file needs code to load ({why[:160]}); cnnlab reads only plain "
            "tensors (weights_only=True) and never runs code from a weight file"
        ) from None
    except Exception as e:  # the weights-only unpickler fails on foreign bytes with many error types
        why = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(f"{path}: not a PyTorch weight file ({why})") from None
    return _tensors(obj, path)


def check_source(source: str | Path) -> Path:
    """What can be known of SOURCE without reading its weights, refused in one line naming --init-from and the file:
    that it exists, that a folder is a run with a model file whose metadata is valid, that a file is a regular one
    within the bounds of its kind. Returns the file the weights are in."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--init-from {source}: no such run folder, model file or weight file")
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise FileNotFoundError(f"--init-from {path}: not a cnnlab run folder (it has no {MODEL_FILE})")
        read_meta(path)
        return path / MODEL_FILE
    if path.suffix == ".safetensors":
        return regular_file(path, "weight file")
    return check_torch_file(path, "weight file")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a safetensors file ({(str(e).splitlines() or ['?'])[0][:160]})") from None


def read_source(source: str | Path) -> Source:
    """The weights and metadata of SOURCE: a cnnlab run folder, a model file, a checkpoint, or a plain weight file."""
    path = Path(source)
    file = check_source(path)
    if path.is_dir():
        return Source(path, _load_safetensors(file), read_meta(file), "cnnlab run")
    if path.suffix == ".safetensors":
        state = _load_safetensors(path)
        try:
            meta = read_meta(path)
        except ValueError:  # timm / Hugging Face weights: tensors without cnnlab metadata
            return Source(path, state, None, "weight file")
        return Source(path, state, meta, "cnnlab model file")
    state = _torch_load(path)
    return Source(path, state, None, "weight file")


def source_architecture(source: str | Path) -> tuple[str, dict] | None:
    """(model name, constructor arguments without classes / channels / size) of a cnnlab SOURCE; None otherwise."""
    path = Path(source)
    if path.is_dir() or path.suffix == ".safetensors":
        try:
            meta = read_meta(path)
        except (ValueError, FileNotFoundError):
            return None
        args = {k: v for k, v in meta.model_args.items() if k not in ("num_classes", "in_chans", "img_size")}
        return meta.model, args
    return None


def with_source_model(values: dict) -> dict:
    """Config values with `init_from` and no `model`: the model and constructor arguments of a cnnlab source filled
    in (its `model_args` updated by those given); anything else unchanged (a weight file needs `model`)."""
    if not values.get("init_from") or "model" in values:
        return values
    arch = source_architecture(values["init_from"])
    if arch is None:
        return values
    return {**values, "model": arch[0], "model_args": {**arch[1], **(values.get("model_args") or {})}}


# ---- loading into a model
def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> tuple[torch.Tensor, str]:
    """A first-conv kernel (O, C, k, k) for `in_chans` input channels, and how it was made.

    To 1 channel: the sum over the source channels (a gray image then gives what its RGB copy gave). To more
    channels: the source channels repeated and scaled by C / in_chans (the same for an image repeated on all)."""
    c = weight.shape[1]
    if in_chans == 1:
        return weight.sum(1, keepdim=True), f"summed its {c} channels into 1"
    reps = -(-in_chans // c)
    out = weight.repeat(1, reps, 1, 1)[:, :in_chans] * (c / in_chans)
    return out, f"repeated its {c} channel(s) to {in_chans} and scaled by {c}/{in_chans}"


def _first_conv(model: nn.Module) -> str | None:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return f"{name}.weight"
    return None


def load_pretrained(
    model: nn.Module,
    source: str | Path | Source | dict,
    classes: list[str] | None = None,
    keep_head: bool | None = None,
    strict: bool = False,
    log=None,
    new_fc: bool = False,
) -> LoadReport:
    """Copy the weights of `source` into `model` (in place) where names and shapes fit; returns a `LoadReport`.

    The classifier (`model.default_cfg["classifier"]`) stays as the model initialized it — a new head — unless
    `keep_head` is True, or it is None and the source is a cnnlab model trained on exactly `classes`. With a new head
    and `new_fc`, the fully connected layers below the classifier (`fc_layers`: LeNet-5's classifier.0 and .2,
    VGG's 4096-wide ones) stay new too, as fastai's `cnn_learner` builds its head: only the convolutional body is
    transferred (`cnnlab train --init-from` does this unless `--keep-fc`).
    A different number of input channels adapts the first conv's kernel (see `adapt_input_conv`), noted in the
    report. Other mismatches are listed in the report; `strict=True` raises ValueError on any of them.
    Weights that do not fit the architecture at all (less than half of the model's tensors) raise ValueError.
    """
    src = _as_source(source)
    theirs = dict(src.state)
    ours = model.state_dict()
    head = model.default_cfg["classifier"] if hasattr(model, "default_cfg") else None
    head_keys = {k for k in ours if head and k.startswith(head + ".")}
    if keep_head is None:
        keep_head = bool(src.meta and classes is not None and list(src.meta.classes) == list(classes))
    report = LoadReport(head="kept" if keep_head else "new")
    if new_fc and not keep_head:
        report.new_layers = fc_layers(model)
    new_keys = {k for k in ours if k.startswith(tuple(f"{m}." for m in report.new_layers))}

    conv = _first_conv(model)
    if conv in theirs and conv in ours and theirs[conv].ndim == 4:
        s, m = theirs[conv].shape, ours[conv].shape
        if s[1] != m[1] and (s[0], *s[2:]) == (m[0], *m[2:]):
            theirs[conv], how = adapt_input_conv(theirs[conv].float(), m[1])
            report.notes.append(f"input channels {s[1]} → {m[1]}: {conv} {how}")

    new_state = {}
    for key, value in ours.items():
        if (key in head_keys and not keep_head) or key in new_keys:
            continue
        if key not in theirs:
            report.missing.append(key)
        elif theirs[key].shape != value.shape:
            report.wrong_shape.append((key, tuple(theirs[key].shape), tuple(value.shape)))
        else:
            new_state[key] = theirs[key].to(value.dtype)
            report.loaded.append(key)
    report.unexpected = [k for k in theirs if k not in ours]
    if not keep_head and head_keys:
        n_out = getattr(model, "num_classes", "?")
        src_out = next((tuple(theirs[k].shape)[0] for k in sorted(head_keys) if k in theirs), None)
        was = f" (the source's had {src_out} outputs)" if src_out is not None else ""
        report.notes.append(f"classifier {head}: new, {n_out} classes{was}")
    if report.new_layers:
        report.notes.append(
            f"fully connected layers {', '.join(report.new_layers)}: new (only the body is transferred)"
        )

    _check_fit(model, src, report, [k for k in ours if k not in head_keys | new_keys])
    if strict and report.mismatches:
        raise ValueError(f"{src.path}: the weights do not match exactly (--init-strict): " + "; ".join(report.lines()))
    with torch.no_grad():
        for key, value in new_state.items():
            ours[key].copy_(value)
    if log is not None:
        log(f"init from {src.path} ({src.kind}): {len(report.loaded)} of {len(ours)} tensors loaded")
        for line in report.notes:
            log(f"  {line}")
        for line in report.lines():
            log(f"  {line}")
    return report


def _as_source(source: str | Path | Source | dict) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, dict):
        return Source(Path("<state dict>"), source, None, "state dict")
    return read_source(source)


def _check_fit(model: nn.Module, src: Source, report: LoadReport, body: list[str]) -> None:
    """Refuse weights that fit less than half of the tensors of `body` (the model's keys below its head)."""
    body = [k for k in body if not k.endswith("num_batches_tracked")]
    fit = set(report.loaded) & set(body)
    if len(fit) * 2 < len(body):
        name = getattr(model, "model_name", type(model).__name__)
        theirs_name = f" (they were written for {src.meta.model})" if src.meta else ""
        raise ValueError(
            f"{src.path}: the weights do not fit {name}{theirs_name}: only {len(fit)} of its "
            f"{len(body)} backbone tensors match by name and shape; pass --model with the "
            "architecture the file was written for"
        )


def fc_layers(model: nn.Module) -> list[str]:
    """Module names of the fully connected part between the body and the classifier: from the first `nn.Linear`
    after the model's last convolution, every layer with parameters before the classifier (LeNet-5: classifier.0
    and classifier.2; AlexNet and VGG: the two 4096-wide layers; a notation net's FC128-BN: both). Empty where the
    classifier follows the pooling directly (ResNet, GoogLeNet's main path, the recipes' nets); layers registered
    after the classifier (a localization head's box regressor) are not part of it."""
    head = model.default_cfg["classifier"]
    out: list[str] = []
    for name, m in model.named_modules():
        if name == head:
            break
        if next(m.children(), None) is not None:
            continue
        if isinstance(m, nn.modules.conv._ConvNd):
            out = []  # a convolution above: what came before it is body
        elif (out or isinstance(m, nn.Linear)) and next(m.parameters(recurse=False), None) is not None:
            out.append(name)
    return out


# ---- freezing
def head_names(model: nn.Module) -> list[str]:
    """Parameter names of the classifier (the output layer named by `default_cfg["classifier"]`)."""
    head = model.default_cfg["classifier"]
    return [n for n, _ in model.named_parameters() if n.startswith(head + ".")]


def blocks(model: nn.Module) -> list[str]:
    """The model's blocks in order: top-level modules with parameters, sequential containers opened one level
    (ResNet: conv1, bn1, layer1.0, layer1.1, …, fc; LeNet-5: features.0, features.3, classifier.0, …)."""
    out = []
    for name, child in model.named_children():
        parts = child.named_children() if isinstance(child, nn.Sequential) else [("", child)]
        for sub, m in parts:
            if any(True for _ in m.parameters()):
                out.append(f"{name}.{sub}" if sub else name)
    return out


def frozen_names(model: nn.Module, spec: str | int | None, head: list[str] | None = None) -> list[str]:
    """Parameter names that `spec` freezes: "features" / "backbone" (all but the head: the classifier, or the
    parameter names `head` lists), "none", N (the first N blocks, see `blocks`), or a comma-separated list of module
    name prefixes ("conv1,bn1,layer1")."""
    names = [n for n, _ in model.named_parameters()]
    text = "none" if spec is None else str(spec).strip()
    if text in ("none", "", "0"):
        return []
    if text in ("features", "backbone"):
        keep = set(head_names(model) if head is None else head)
        return [n for n in names if n not in keep]
    if text.isdigit():
        all_blocks = blocks(model)
        n = int(text)
        if n >= len(all_blocks):
            raise ValueError(
                f"--freeze {n}: the model has {len(all_blocks)} blocks and the last, the classifier, "
                f"must train ({', '.join(all_blocks)})"
            )
        prefixes = all_blocks[:n]
    else:
        prefixes = [p.strip().rstrip(".") for p in text.split(",") if p.strip()]
    out = []
    for p in prefixes:
        hits = [n for n in names if n == p or n.startswith(p + ".")]
        if not hits:
            top = sorted({n.split(".")[0] for n in names})
            raise ValueError(
                f"--freeze: no parameters under '{p}'; the model's modules: {', '.join(top)} "
                "(or features, none, a number of blocks)"
            )
        out += [n for n in hits if n not in out]
    return out


_FROZEN_NORMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # norm module → its forward-pre-hook handle


def _keep_eval(module: nn.Module, args) -> None:
    module.training = False  # runs before each forward: model.train() cannot wake a frozen BatchNorm


def freeze(model: nn.Module, spec: str | int | None = "features", head: list[str] | None = None) -> list[str]:
    """Turn off requires_grad for the parameters `spec` names (see `frozen_names`); returns their names.

    The norm layers whose parameters are all frozen stay in eval mode from now on, whatever `model.train()` says,
    so their running statistics (and num_batches_tracked) do not move until `unfreeze`."""
    names = set(frozen_names(model, spec, head))
    for n, p in model.named_parameters():
        p.requires_grad_(n not in names)
    for mname, m in model.named_modules():
        if not isinstance(m, _NORMS):
            continue
        own = [f"{mname}.{n}" for n, _ in m.named_parameters()]
        if own and all(n in names for n in own) and m not in _FROZEN_NORMS:
            m.eval()
            _FROZEN_NORMS[m] = m.register_forward_pre_hook(_keep_eval)
    return sorted(names)


def unfreeze(model: nn.Module) -> None:
    """Every parameter trainable again; frozen norm layers follow the model's train/eval mode again."""
    for p in model.parameters():
        p.requires_grad_(True)
    for m in model.modules():
        handle = _FROZEN_NORMS.pop(m, None)
        if handle is not None:
            handle.remove()
            m.train(model.training)


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    backbone_lr_mult: float = 1.0,
    decay_all: bool = False,
    head: list[str] | None = None,
) -> list[dict]:
    """Optimizer groups: the head (the classifier, or the parameter names `head` lists) at `lr` first, then the
    backbone at `lr × backbone_lr_mult`, each split into weights that decay and biases / norm parameters that do not
    (unless `decay_all`). Frozen parameters are in the groups too, so unfreezing needs no new optimizer; without a
    gradient they get no state and no decay."""
    if head is None:
        head = head_names(model) if hasattr(model, "default_cfg") else []
    head = set(head)
    groups = []
    for is_head, mult in ((True, 1.0), (False, backbone_lr_mult)):
        decay, no_decay = [], []
        for n, p in model.named_parameters():
            if (n in head) == is_head:
                (decay if decay_all or p.ndim > 1 else no_decay).append(p)
        for params, wd, suffix in ((decay, weight_decay, ""), (no_decay, 0.0, ".no_decay")):
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr": lr * mult,
                        "weight_decay": wd,
                        "name": ("head" if is_head else "backbone") + suffix,
                    }
                )
    return groups
