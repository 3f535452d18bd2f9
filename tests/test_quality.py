"""The code stays clean and the house keeps its shape: ruff and mypy pass on everything,
rooms stay small, every backend difference lives in the dialects, and imports run one way
(edge -> core) without cycles. Part of the test run, so CI enforces it."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recorder"
MODULE_LIMIT = 400
CLASS_LIMIT = 250
BACKEND_NAMES = {"sqlite", "postgresql", "postgres", "mysql", "mariadb"}

#: Each room may import only the rooms listed (and the core: values, errors, amounts, text,
#: secret, timespec, diff). The tree reads edge -> core: cli -> app -> polling/reports ->
#: store/sources -> core.
CORE = {"values", "errors", "amounts", "text", "secret", "timespec", "diff", "__init__"}
ALLOWED = {
    "config": set(),
    "sources": set(),
    "store": set(),
    "polling": {"config", "sources", "store"},
    "reports": {"store"},
    "logs": set(),
    "app": {"config", "polling", "sources", "store"},
    "demo": {"app", "config", "sources"},
    "cli": {"app", "config", "demo", "logs", "polling", "reports", "store", "cli"},
    "__main__": {"cli"},
}


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_the_code_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(), str(path))


def room(module: str) -> str:
    """recorder.store.history -> "store"; recorder.values -> "values"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_names() -> set[str]:
    return {name for name, _, _ in modules()}


def imports(tree: ast.Module, module: str) -> set[str]:
    """The recorder modules `tree` imports, at any depth (lazy imports count too):
    `from recorder.store import history` is an edge to recorder.store.history only."""
    known = module_names()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("recorder")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recorder"):
            base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {name for name in found if name != module}


def test_no_module_is_too_long_and_no_class_too_big() -> None:
    too_long, too_big = [], []
    for name, path, tree in modules():
        lines = len(path.read_text().splitlines())
        if lines > MODULE_LIMIT:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > CLASS_LIMIT:
                    too_big.append(f"{name}.{node.name}: {size} lines")
    assert too_long == [] and too_big == []


def test_backend_names_are_compared_in_the_dialects_only() -> None:
    comparing = set()
    for name, _, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                parts = [node.left, *node.comparators]
                constants = {
                    c.value
                    for part in parts
                    for c in ast.walk(part)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
                if constants & BACKEND_NAMES:
                    comparing.add(name)
    assert {name for name in comparing if not name.startswith("recorder.store.dialects")} == set()


def test_imports_run_one_way_from_the_edge_to_the_core() -> None:
    wrong = []
    graph: dict[str, set[str]] = {}
    for name, _, tree in modules():
        own = room(name)
        targets = imports(tree, name)
        graph[name] = targets
        for target in targets:
            other = room(target)
            if other in CORE or other == own:
                continue
            if other not in ALLOWED.get(own, set()):
                wrong.append(f"{name} imports {target}")
    assert wrong == []
    importing_cli = [
        name
        for name, targets in graph.items()
        if room(name) not in ("cli", "__main__") and any(room(t) == "cli" for t in targets)
    ]
    assert importing_cli == []


def test_the_core_imports_nothing_but_the_core() -> None:
    for name, _, tree in modules():
        if room(name) in CORE - {"__init__"}:
            rooms = {room(target) for target in imports(tree, name)}
            assert rooms <= CORE, f"{name} imports {rooms - CORE}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = {name: imports(tree, name) for name, _, tree in modules()}
    known = set(graph)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node] & known):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target] if target in path else [node, target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
