"""Sample image files from a dataset's test split: one PNG per class, named by the class, for trying
`cnnlab predict` and `cnnlab explain` on real files (`cnnlab datasets samples fashion-mnist --n 5 --out DIR`)."""

from __future__ import annotations

import re
from pathlib import Path

from cnnlab.data.images import tensor_to_image
from cnnlab.data.load import load_dataset
from cnnlab.files import atomic_write


def class_slug(name: str) -> str:
    """A file-name stem for a class name: 'Ankle boot' → 'ankle-boot', 'T-shirt/top' → 't-shirt-top'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def write_samples(
    spec: str, n: int, out: str | Path, data_dir: str | Path | None = None, split: str = "test"
) -> list[tuple[Path, str, int]]:
    """Write the first image of each of the first `n` classes met in `split` (in the split's order) as
    `out/<class>.png`, at the data's own size and mode. Returns (path, class name, index in the split) per file."""
    if n < 1:
        raise ValueError(f"--n must be ≥ 1, got {n}")
    splits = load_dataset(spec, data_dir, 0)
    data = getattr(splits, split)
    if data is None:
        raise ValueError(f"{splits.name} has no {split} split")
    if n > len(data.classes):
        raise ValueError(f"{splits.name} has {len(data.classes)} classes; --n takes at most that many")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, str, int]] = []
    seen: set[int] = set()
    for i, label in enumerate(data.labels.tolist()):
        if label in seen:
            continue
        seen.add(label)
        name = data.classes[label]
        path = folder / f"{class_slug(name)}.png"
        image = tensor_to_image(data.images[i])
        atomic_write(path, lambda tmp, image=image: image.save(tmp, format="PNG"))
        written.append((path, name, i))
        if len(written) == n:
            break
    return written
