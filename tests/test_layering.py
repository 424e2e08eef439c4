"""The import layers of docs/architecture.md, enforced: a module imports only its own layer or the ones below.

Every `import` counts, also those inside functions (a lazy import is still a dependency). Same-layer imports are
allowed between different top-level modules only while they form no cycle.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

# bottom to top; a module belongs to the first entry that is its name or a prefix of it
LAYERS = [
    ("runtime", "data", "plots"),  # device/precision/compile; uint8 data and loaders; figures (matplotlib only)
    ("layers",),  # shared blocks
    ("models",),  # registry, families, the model interface, hooks
    ("io",),  # model files, run folders, checkpoints
    ("infer",),  # the one inference path
    ("train",),  # Trainer, callbacks, optimizers, schedules, config
    ("evaluate", "predict", "inspect", "explain", "features", "deploy"),  # what is done with a (trained) model
    ("pipeline", "recipes", "serve", "lab"),  # a whole run wired together; the web page and API; the lectures' lessons
    ("cli", "__main__"),  # the command line, on top
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top(module: str) -> str | None:
    """'cnnlab.train.trainer' → 'train'; the package root itself → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path) -> set[str]:
    """cnnlab modules imported anywhere in the file (`from cnnlab import x` counts as cnnlab.x when x is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cnnlab"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cnnlab":
            if node.module == "cnnlab":
                for a in node.names:
                    is_module = (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").exists()
                    found.add(f"cnnlab.{a.name}" if is_module else "cnnlab")
            else:
                found.add(node.module)
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = _module_name(path)
        edges[name] = _imports(path)
    return edges


def test_every_module_has_a_layer():
    tops = {_top(m) for m in _edges()} - {None}
    assert tops <= set(RANK), f"modules without a layer in LAYERS: {sorted(tops - set(RANK))}"


def test_imports_only_point_down():
    bad = []
    for module, targets in _edges().items():
        src = _top(module)
        if src is None:  # the package root: lazy exports of the public API, resolved on first use
            continue
        for target in targets:
            dst = _top(target)
            if dst is None:  # `import cnnlab` (for __version__): the root is light and imports nothing eagerly
                continue
            if RANK[dst] > RANK[src]:
                bad.append(f"{module} → {target} ({src}: layer {RANK[src]}, {dst}: layer {RANK[dst]})")
    assert not bad, "imports that point up:\n" + "\n".join(sorted(bad))


def test_no_cycles_between_top_level_modules():
    graph: dict[str, set[str]] = {}
    for module, targets in _edges().items():
        src = _top(module)
        if src is not None:
            graph.setdefault(src, set()).update(t for t in map(_top, targets) if t not in (None, src))
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' → '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_package_root_is_light():
    text = (SRC / "__init__.py").read_text()
    eager = [ast.unparse(n) for n in ast.parse(text).body if isinstance(n, ast.ImportFrom | ast.Import)]
    eager = [line for line in eager if "cnnlab" in line]
    assert not eager, "cnnlab/__init__.py imports eagerly; resolve the public names lazily in __getattr__"
