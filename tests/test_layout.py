"""The library's layout rules (DEVELOPERS.md): small functions, no Snakemake inside the library."""
from __future__ import annotations

import ast
from pathlib import Path

import evdenoise

SRC = Path(evdenoise.__file__).parent
MAX_LINES = 60  # issue 17: "no function over about 60 lines in src/"


def _functions() -> list[tuple[str, int]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{path.relative_to(SRC)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
    return found


def test_no_library_function_is_longer_than_60_lines() -> None:
    functions = _functions()
    assert len(functions) > 300  # the scan sees the whole library
    assert [f"{name} ({n} lines)" for name, n in functions if n > MAX_LINES] == []


def test_the_library_imports_no_snakemake() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(SRC)}: {n}" for n in names if n.split(".")[0] == "snakemake"]
    assert offenders == []
