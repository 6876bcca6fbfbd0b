"""The import layers of digest hold, and no module takes part in an import cycle.

The layers are the import-linter contracts in pyproject.toml (``lint-imports``
runs them in CI too); the cycle check below looks at every module, not only
at siblings, and counts imports inside functions as imports.
"""

from __future__ import annotations

import os
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept(capsys) -> None:
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        os.chdir(here)
    assert code == 0, capsys.readouterr().out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_in_an_import_cycle() -> None:
    graph = grimp.build_graph("digest")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(edges) > 50  # the whole package was read
    assert _cycles(edges) == []


def test_no_module_imports_a_package_it_belongs_to() -> None:
    """digest.cli and digest.send.providers load their modules by name (importlib,
    unseen by the graph above); a module importing them back would close a cycle.
    The root package holds only the version, so it is the one exception."""
    graph = grimp.build_graph("digest")
    upward = sorted(
        f"{module} -> {imported}"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if module.startswith(imported + ".") and imported != "digest"
    )
    assert upward == []


def test_rendering_takes_readers_as_plain_values() -> None:
    """render never reaches the store or the people layer, not even through another module:
    `digest render --to` looks the subscriber up in the CLI and hands render the values."""
    graph = grimp.build_graph("digest")
    for below in ("digest.store", "digest.people"):
        chain = graph.find_shortest_chain(importer="digest.render", imported=below)
        assert chain is None, " -> ".join(chain or ())
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'source_modules = ["digest.render"]' in text
    assert '"digest.store"' in text.split('source_modules = ["digest.render"]')[1]
