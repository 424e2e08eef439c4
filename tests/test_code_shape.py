"""The shape docs/architecture.md promises: no function in src/ longer than a screen and a bit (80 lines)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"
MAX_LINES = 80


def test_no_function_over_80_lines():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 80 lines (split them into the jobs they do):\n" + "\n".join(long)
