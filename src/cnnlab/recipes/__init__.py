"""Named training recipes: YAML files of TrainConfig settings shipped with cnnlab (`cnnlab train --recipe NAME`)."""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).parent


def list_recipes() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def read_recipe(name: str) -> dict:
    """The settings of recipe `name`; an unknown name lists the known ones."""
    path = HERE / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown recipe '{name}'; choose from {', '.join(list_recipes())}")
    return {k.replace("-", "_"): v for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
