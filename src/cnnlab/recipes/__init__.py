"""Named training recipes: YAML files of TrainConfig settings shipped with cnnlab (`cnnlab train --recipe NAME`)."""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).parent


def list_recipes() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def read_recipe(name: str, precision: str | None = None) -> dict:
    """The settings of recipe `name`; an unknown name lists the known ones.

    A recipe may hold variants by the precision the run will use, e.g. `when_fp32:` (settings that replace the
    base ones on CPUs without fast bf16); `precision` ('fp32' / 'bf16', as resolved for this machine) applies the
    matching one. The variant keys never reach the config.
    """
    path = HERE / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown recipe '{name}'; choose from {', '.join(list_recipes())}")
    values = {k.replace("-", "_"): v for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
    variants = {k.removeprefix("when_"): values.pop(k) for k in list(values) if k.startswith("when_")}
    if precision in variants:
        values.update({k.replace("-", "_"): v for k, v in variants[precision].items()})
    return values


def recipe_variants(name: str) -> list[str]:
    """The precisions recipe `name` has a variant for (e.g. ['fp32'])."""
    path = HERE / f"{name}.yaml"
    values = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    return [k.removeprefix("when_") for k in values if k.startswith("when_")]
