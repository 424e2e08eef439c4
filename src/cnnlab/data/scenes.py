"""Generated scenes for localization and detection: small objects (Fashion-MNIST or MNIST images) pasted at random
places and sizes on a dark canvas, written in the standard formats so that what a run reads is a real reader's
work (`yolo:` and `coco:`).

    scenes = make_scenes(objects, n=20_000, size=96, count=(1, 4), seed=0)
    write_images(out, {"train": scenes}); write_yolo(out, …, classes); write_coco(out, …, classes)
    write_masks(out, …, classes)                          # masks/<split>/NNNNNN.png for segmentation
    make_scene_set("fashion-scenes", out, n=20_000)      # all of it: `cnnlab datasets make fashion-scenes`

An object is the source image scaled to a random side, pasted with `max` (bright things on black, as the sources
are); its box is the tight box of its pixels above THRESHOLD, before any noise. Objects of one scene overlap by at
most MAX_OVERLAP of the smaller box (a few placements are tried). Clutter is fragments of other source images,
faint and small, that are not objects; noise is Gaussian, added last.

Each scene keeps its objects (`SceneObject`: class, place and pasted pixels), so a segmentation mask is one more
method on it (`Scene.mask`) and one more writer, not a second generator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data.dataset import ImageSet
from cnnlab.files import atomic_write

THRESHOLD = 16  # of 255: a pixel of a pasted object at least this bright is part of it (its box, its mask)
MAX_OVERLAP = 0.3  # of the smaller of two boxes
PLACEMENT_TRIES = 20


@dataclass
class SceneObject:
    """One pasted object: its class, top-left corner and the pixels pasted (uint8 side×side)."""

    cls: int
    top: int
    left: int
    pixels: np.ndarray

    def box(self) -> tuple[int, int, int, int]:
        """Tight pixel box (x1, y1, x2, y2) of the pixels ≥ THRESHOLD, in canvas pixel-edge coordinates."""
        rows, cols = np.nonzero(self.pixels >= THRESHOLD)
        x1, y1, x2, y2 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
        return self.left + int(x1), self.top + int(y1), self.left + int(x2), self.top + int(y2)


@dataclass
class Scene:
    image: np.ndarray  # uint8 (size, size)
    objects: list[SceneObject] = field(default_factory=list)

    def boxes(self) -> list[tuple[int, int, int, int, int]]:
        """(class, x1, y1, x2, y2) of every object, in pixels."""
        return [(o.cls, *o.box()) for o in self.objects]

    def mask(self) -> np.ndarray:
        """uint8 (size, size): each object's pixels ≥ THRESHOLD are its class + 1 (later objects on top), 0 is
        background."""
        out = np.zeros_like(self.image)
        for o in self.objects:
            h, w = o.pixels.shape
            region = out[o.top : o.top + h, o.left : o.left + w]
            region[o.pixels >= THRESHOLD] = o.cls + 1
        return out


def _scaled(image: np.ndarray, side: int) -> np.ndarray:
    """A source image (H, W) resized to side×side (bilinear, antialiased when shrinking)."""
    if image.shape == (side, side):
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection of two boxes over the smaller one's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _place(rng: np.random.Generator, pixels: np.ndarray, cls: int, size: int, placed: list) -> SceneObject:
    """The placement (of a few random ones) that overlaps the objects already placed least."""
    side = pixels.shape[0]
    best, best_overlap = None, None
    for _ in range(PLACEMENT_TRIES):
        top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
        obj = SceneObject(cls, top, left, pixels)
        overlap = max((_overlap(obj.box(), p.box()) for p in placed), default=0.0)
        if best is None or overlap < best_overlap:
            best, best_overlap = obj, overlap
        if overlap <= MAX_OVERLAP:
            break
    return best


def _clutter(rng: np.random.Generator, canvas: np.ndarray, sources: np.ndarray, count: int) -> None:
    """`count` faint fragments (4–8 px squares cut from random source images, at 20–50 % brightness)."""
    size = canvas.shape[0]
    for _ in range(count):
        piece = int(rng.integers(4, 9))
        src = sources[int(rng.integers(len(sources)))]
        r, c = (int(v) for v in rng.integers(0, src.shape[0] - piece + 1, 2))
        frag = (src[r : r + piece, c : c + piece] * rng.uniform(0.2, 0.5)).astype(np.uint8)
        top, left = (int(v) for v in rng.integers(0, size - piece + 1, 2))
        region = canvas[top : top + piece, left : left + piece]
        np.maximum(region, frag, out=region)


def make_scenes(
    objects: ImageSet,
    n: int,
    size: int = 96,
    count: tuple[int, int] = (1, 4),
    scale: tuple[float, float] = (0.25, 0.5),
    clutter: int = 0,
    noise: float = 0.0,
    seed: int = 0,
) -> list[Scene]:
    """`n` scenes of `size`×`size` with `count` (low, high) objects each, drawn from the one-channel `objects`.

    scale: an object's side as a fraction of the canvas (uniform in the range). clutter: fragments per scene.
    noise: standard deviation of the Gaussian noise, in 0–255 pixel units.
    """
    if objects.images.shape[1] != 1:
        raise ValueError("scenes are made from one-channel (grayscale) object images")
    low, high = count
    if not 1 <= low <= high:
        raise ValueError(f"objects per scene must be 1 ≤ low ≤ high, got {low}-{high}")
    sides = [max(4, round(size * s)) for s in scale]
    if sides[1] > size:
        raise ValueError(f"objects of up to {sides[1]} px do not fit a {size}×{size} canvas")
    # objects and their places from one stream, clutter and noise from another: the same seed gives the same
    # objects and boxes with or without them
    rng, mess = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    sources, labels = objects.images[:, 0].numpy(), objects.labels.numpy()
    scenes = []
    for _ in range(n):
        canvas = np.zeros((size, size), np.uint8)
        placed: list[SceneObject] = []
        for _ in range(int(rng.integers(low, high + 1))):
            i = int(rng.integers(len(sources)))
            pixels = _scaled(sources[i], int(rng.integers(sides[0], sides[1] + 1)))
            if not (pixels >= THRESHOLD).any():  # a blank source image has no object to box
                continue
            obj = _place(rng, pixels, int(labels[i]), size, placed)
            region = canvas[obj.top : obj.top + pixels.shape[0], obj.left : obj.left + pixels.shape[1]]
            np.maximum(region, pixels, out=region)
            placed.append(obj)
        _clutter(mess, canvas, sources, clutter)
        if noise > 0:
            canvas = np.clip(canvas + mess.normal(0, noise, canvas.shape), 0, 255).astype(np.uint8)
        scenes.append(Scene(canvas, placed))
    return scenes


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_images(out: Path, splits: dict[str, list[Scene]]) -> None:
    """images/<split>/NNNNNN.png: what both formats' annotations name."""
    for split, scenes in splits.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        for i, scene in enumerate(scenes):
            image = Image.fromarray(scene.image)
            atomic_write(out / "images" / split / f"{i:06d}.png", lambda tmp, im=image: im.save(tmp, format="PNG"))


def write_yolo(out: Path, splits: dict[str, list[Scene]], classes: list[str]) -> None:
    """labels/<split>/NNNNNN.txt (`class cx cy w h`, fractions of the image), classes.txt and data.yaml."""
    lines = [f"path: {out.resolve()}"] + [f"{s}: images/{s}" for s in splits]
    lines += ["names:"] + [f"  {i}: {json.dumps(c)}" for i, c in enumerate(classes)]
    _write_text(out / "data.yaml", "\n".join(lines) + "\n")
    _write_text(out / "classes.txt", "\n".join(classes) + "\n")
    for split, scenes in splits.items():
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, scene in enumerate(scenes):
            s = scene.image.shape[0]
            rows = [
                f"{c} {(x1 + x2) / 2 / s:.6f} {(y1 + y2) / 2 / s:.6f} {(x2 - x1) / s:.6f} {(y2 - y1) / s:.6f}"
                for c, x1, y1, x2, y2 in scene.boxes()
            ]
            _write_text(out / "labels" / split / f"{i:06d}.txt", "".join(r + "\n" for r in rows))


def write_coco(out: Path, splits: dict[str, list[Scene]], classes: list[str]) -> None:
    """<split>.json per split, COCO-style (bbox [x, y, w, h] in pixels, category ids 1…K), naming the images
    written by `write_images` (file_name relative to `out`)."""
    categories = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
    for split, scenes in splits.items():
        images, annotations = [], []
        for i, scene in enumerate(scenes):
            h, w = scene.image.shape
            images.append({"id": i + 1, "file_name": f"images/{split}/{i:06d}.png", "width": w, "height": h})
            for c, x1, y1, x2, y2 in scene.boxes():
                box = [int(x1), int(y1), int(x2 - x1), int(y2 - y1)]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "category_id": c + 1,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": 0,
                    }
                )
        record = {"images": images, "annotations": annotations, "categories": categories}
        _write_text(out / f"{split}.json", json.dumps(record))


def write_masks(out: Path, splits: dict[str, list[Scene]], classes: list[str]) -> None:
    """masks/<split>/NNNNNN.png beside the images (grayscale, `Scene.mask`: 0 background, class k is k + 1) and
    classes.txt: what `masks:PATH` reads."""
    _write_text(out / "classes.txt", "\n".join(classes) + "\n")
    for split, scenes in splits.items():
        (out / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i, scene in enumerate(scenes):
            mask = Image.fromarray(scene.mask(), mode="L")
            atomic_write(out / "masks" / split / f"{i:06d}.png", lambda tmp, im=mask: im.save(tmp, format="PNG"))


SCENE_SETS = {"fashion-scenes": "fashion-mnist", "mnist-scenes": "mnist"}  # scene set → where its objects come from
FORMATS = ("yolo", "coco")


def make_scene_set(
    name: str,
    out: str | Path,
    n: int,
    size: int = 96,
    count: tuple[int, int] = (1, 4),
    test: int | None = None,
    val: int = 0,
    clutter: int = 0,
    noise: float = 0.0,
    seed: int = 0,
    data_dir: str | Path | None = None,
    formats: tuple[str, ...] = FORMATS,
    masks: bool = False,
) -> dict[str, int]:
    """Write the scene set `name` (fashion-scenes, mnist-scenes) into `out`: `n` training scenes made from the
    source's training images, `val` from a held-out tenth of them, `test` (default n // 5) from its test images —
    an object is never in two splits; `masks` adds each scene's mask (`write_masks`). Returns the number of scenes
    per split."""
    from cnnlab.data.load import load_dataset

    if name not in SCENE_SETS:
        raise ValueError(f"unknown scene set '{name}'; choose from {', '.join(SCENE_SETS)}")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    if n < 1 or val < 0 or (test is not None and test < 0):
        raise ValueError(f"scene counts must be ≥ 1 (--n) and ≥ 0 (--val, --test), got {n}, {val}, {test}")
    if not 16 <= size <= 1024 or clutter < 0 or not 0 <= noise <= 255:
        raise ValueError(
            f"--size must be 16–1024 pixels, --clutter ≥ 0 and --noise 0–255; got {size}, {clutter}, {noise}"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; scenes are written into a new or empty folder")
    source = load_dataset(SCENE_SETS[name], data_dir, val_split=0.1 if val else 0, seed=seed)
    pools = {
        "train": (source.train, n),
        "val": (source.val, val),
        "test": (source.test, n // 5 if test is None else test),
    }
    kw = dict(size=size, count=count, clutter=clutter, noise=noise)
    splits = {
        split: make_scenes(pool, k, seed=seed + i, **kw)
        for i, (split, (pool, k)) in enumerate(pools.items())
        if k > 0 and pool is not None
    }
    out.mkdir(parents=True, exist_ok=True)
    write_images(out, splits)
    for fmt, write in (("yolo", write_yolo), ("coco", write_coco)):
        if fmt in formats:
            write(out, splits, list(source.classes))
    if masks:
        write_masks(out, splits, list(source.classes))
    return {split: len(scenes) for split, scenes in splits.items()}
