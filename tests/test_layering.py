"""The import layers of docs/architecture.md, enforced: a module imports only its own layer or the ones below.

Every `import` counts, also those inside functions (a lazy import is still a dependency). A module's layer is that
of the longest entry of LAYERS that names it or a package above it (`run.splits` sits below `run`). Same-layer
imports are allowed while they form no cycle, and no two modules may import each other in a circle, inside a
package included.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

# bottom to top; a module belongs to the longest entry that is its dotted name (below cnnlab) or a package of it
LAYERS = [
    ("runtime", "data", "plots", "files"),  # device/precision/compile; uint8 data and loaders; figures; safe files
    ("layers",),  # shared blocks
    ("models",),  # registry, families, the model interface, hooks
    ("tasks",),  # per task (classify, localize, …): targets, heads, loss, metrics, decoding, drawing
    ("io",),  # model files with their RunMeta, checkpoints, atomic writes
    ("infer",),  # the one inference path and the Classifier protocol
    ("train",),  # Trainer, callbacks, optimizers, schedules, config
    ("run.splits", "run.folder"),  # reopening a run: its data exactly as trained, its folder
    ("evaluate", "predict", "inspect", "explain", "features", "deploy"),  # what is done with a (trained) model
    ("run", "recipes", "serve", "lab", "api"),  # a whole run wired together; the web page and API; the lectures'
    # lessons; the flat Python API (cnnlab.train, cnnlab.predict, …)
    ("cli", "__main__"),  # the command line, on top
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    """The LAYERS entry of a module: 'cnnlab.train.trainer' → 'train', 'cnnlab.run.splits' → 'run.splits'; the
    package root itself → None; a module no entry covers → its first name below cnnlab."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in RANK:
            return name
    return parts[0] if parts else None


def _is_module(dotted: str) -> bool:
    path = SRC.parent.joinpath(*dotted.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def _imports(path: Path) -> set[str]:
    """cnnlab modules imported anywhere in the file (`from cnnlab.pkg import x` counts as cnnlab.pkg.x when x is a
    module, else as the package cnnlab.pkg); imports for type checkers only (`if TYPE_CHECKING:`) do not count."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []  # ast.walk visits the children after their parent: the block is skipped
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cnnlab"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cnnlab":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if _is_module(sub) else node.module)
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = _module_name(path)
        edges[name] = _imports(path)
    return edges


def test_every_module_has_a_layer():
    tops = {_layer(m) for m in _edges()} - {None}
    assert tops <= set(RANK), f"modules without a layer in LAYERS: {sorted(tops - set(RANK))}"


def test_imports_only_point_down():
    bad = []
    for module, targets in _edges().items():
        src = _layer(module)
        if src is None:  # the package root: lazy exports of the public API, resolved on first use
            continue
        for target in targets:
            dst = _layer(target)
            if dst is None:  # `import cnnlab` (for __version__): the root is light and imports nothing eagerly
                continue
            if RANK[dst] > RANK[src]:
                bad.append(f"{module} → {target} ({src}: layer {RANK[src]}, {dst}: layer {RANK[dst]})")
    assert not bad, "imports that point up:\n" + "\n".join(sorted(bad))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (a path that comes back to its start), or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [*path, node, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_cycles_between_layers_of_modules():
    graph: dict[str, set[str]] = {}
    for module, targets in _edges().items():
        src = _layer(module)
        if src is not None:
            graph.setdefault(src, set()).update(t for t in map(_layer, targets) if t not in (None, src))
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle: {' → '.join(cycle)}"


@pytest.mark.slow
def test_no_cycles_between_modules_inside_packages():
    modules = set(_edges())
    graph = {m: {t for t in targets if t in modules and t != m} for m, targets in _edges().items() if m != "cnnlab"}
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle: {' → '.join(cycle)}"


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_root_is_light():
    text = (SRC / "__init__.py").read_text()
    eager = [ast.unparse(n) for n in ast.parse(text).body if isinstance(n, ast.ImportFrom | ast.Import)]
    eager = [line for line in eager if "cnnlab" in line]
    assert not eager, "cnnlab/__init__.py imports eagerly; resolve the public names lazily in __getattr__"
