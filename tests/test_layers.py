"""The layer rules of docs/ARCHITECTURE.md, checked on every import statement (lazy ones included) of the tree."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("analysis", "quality")

# layer -> layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "analysis.core": set(),
    "quality": {"analysis.core"},
    "analysis.sources": {"analysis.core"},
    "analysis.findings": {"analysis.core", "analysis.sources", "quality"},
    "analysis.monitoring": {"analysis.core", "analysis.findings", "analysis.reporting", "analysis.sources"},
    "analysis.reporting": {"analysis.core", "analysis.findings", "quality"},
}
# modules above the layers (entry points and stable re-export paths) may import any library layer
ENTRY_POINTS = {"analysis.cli", "analysis.demo", "analysis.batches", "analysis.anomalies", "analysis.changepoints",
                "analysis.monitor"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def library_files() -> list[Path]:
    return sorted(p for top in LIBRARY for p in (ROOT / top).rglob("*.py"))


def imported_modules(path: Path, known: set[str] | None = None) -> Iterator[str]:
    """Every module an import statement in `path` names, at any depth (function-level and type-only imports too).

    `from pkg import name` counts as importing `pkg.name` when that is a module of the tree (`known`), else `pkg`.
    """
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if known is not None and full in known else base


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def project_edges() -> dict[str, set[str]]:
    """module -> project modules it imports (names that are packages or modules of the tree)."""
    known = {module_name(p) for p in library_files()}
    edges: dict[str, set[str]] = {}
    for path in library_files():
        mod = module_name(path)
        edges[mod] = {m for m in imported_modules(path, known) if m in known and m != mod}
    return edges


def test_no_streamlit_below_the_app() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in library_files()
        if any(m == "streamlit" or m.startswith("streamlit.") for m in imported_modules(p))
    ]
    assert offenders == []


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_only(path: Path) -> None:
    mod = module_name(path)
    if mod in ENTRY_POINTS or mod in LIBRARY:
        return
    mine = layer_of(mod)
    assert mine is not None, f"{mod} belongs to no layer of docs/ARCHITECTURE.md"
    wrong = sorted(
        {
            m
            for m in imported_modules(path)
            if (target := layer_of(m)) is not None and target != mine and target not in ALLOWED[mine]
        }
    )
    assert wrong == [], f"{mod} ({mine}) imports {wrong}"


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph: every component must be one module."""
    edges = project_edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            # a package's __init__ re-exporting its own submodules is not a cycle of behaviour
            if w.startswith(v + "."):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []
