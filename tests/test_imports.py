"""Imports flow downward in ``connector/``: no import cycle, counting every import (module level, inside a
function, under ``if TYPE_CHECKING:``), and no import of the connector inside a function except the
commands ``cli.py`` loads lazily for start-up speed (allowed because they close no cycle: checked here).

The graph is read from the source (an AST walk), not from ``sys.modules``: an import inside a function
counts though it never ran. Importing ``a.b.c`` also runs the packages ``a.b`` and ``a`` (their
``__init__.py``): an edge to each package the importer is not itself inside.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

CONNECTOR = Path(__file__).resolve().parent.parent / "connector"
LAZY_ALLOWED = {"connector.cli"}  # commands imported when their command runs: ``--help`` stays fast


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file for every ``.py`` under ``root`` (a package directory)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The modules an import statement names (``from p import m`` names ``p.m`` when it is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = importer.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        package = ".".join(base + ([node.module] if node.module else []))
    else:
        package = node.module or ""
    return [f"{package}.{a.name}" if f"{package}.{a.name}" in known else package for a in node.names]


def _run(target: str, importer: str, known: dict[str, Path]) -> set[str]:
    """The known modules that importing ``target`` runs: it (or its closest known parent) and its
    packages, less the packages ``importer`` sits in (already running when it runs)."""
    while target not in known and "." in target:
        target = target.rsplit(".", 1)[0]
    if target not in known:
        return set()
    parts = target.split(".")
    chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    inside = {importer.rsplit(".", i)[0] for i in range(1, importer.count(".") + 1)}
    return {m for m in chain if m in known and m not in inside and m != importer}


@functools.lru_cache(maxsize=4)
def import_graph(root: Path) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Every import edge between the modules under ``root``, and the imports that sit inside a function
    (importer, line, imported module)."""
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    in_functions: list[tuple[str, int, str]] = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        inner: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner |= {id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(name, path.name == "__init__.py", node, known):
                ran = _run(target, name, known)
                graph[name] |= ran
                if ran and id(node) in inner:
                    in_functions.append((name, node.lineno, target))
    return graph, in_functions


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _path_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component, to name in a failure: a -> b -> ... -> a."""
    members = set(component)
    start = component[0]
    trail, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[trail[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(trail) > 1:
            return trail + [start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            return trail + [nxt[0]] if nxt else trail
        trail.append(fresh[0])
        seen.add(fresh[0])


def test_no_import_cycle_in_the_connector():
    graph, _ = import_graph(CONNECTOR)
    found = cycles(graph)
    assert not found, "import cycles (counting imports inside functions and under TYPE_CHECKING):\n" + "\n".join(
        " -> ".join(_path_within(graph, c)) for c in found)


def test_no_import_of_the_connector_inside_a_function_but_cli_lazy_commands():
    _, in_functions = import_graph(CONNECTOR)
    outside = [f"{m}:{line} imports {t}" for m, line, t in in_functions if m not in LAZY_ALLOWED]
    assert not outside, "imports inside functions (move them to the top; a cycle is fixed, not dodged):\n" + \
        "\n".join(outside)


def test_the_simulator_imports_nothing_of_the_connector_but_the_schema():
    graph, _ = import_graph(CONNECTOR)
    stray = {(m, t) for m, targets in graph.items() if m.startswith("connector.simulator") for t in targets
             if not t.startswith(("connector.simulator", "connector.schema"))}
    assert not stray


def reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module importing ``start`` runs, transitively."""
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_ground_floors_import_nothing_above_them():
    """The config validates against the vocabularies beside it (roles, templates) and nothing else of the
    connector (credentials, forms, followup sit above it); the store's shape and SQL helpers import
    nothing of the connector, and its migrations only the shape."""
    graph, _ = import_graph(CONNECTOR)
    assert reach(graph, "connector.config") <= {"connector.errors", "connector.roles", "connector.templates"}
    assert reach(graph, "connector.roles") == reach(graph, "connector.templates") == set()
    assert reach(graph, "connector.store.shape") == reach(graph, "connector.store.sql") == set()
    assert reach(graph, "connector.store.migrations") == {"connector.store.shape"}


def test_cli_repeats_the_journal_states_of_the_shape():
    """cli.py keeps its own copy of the action states (``--state`` choices) so that ``--help`` loads no
    store module: the copy is the shape's."""
    from connector import cli
    from connector.store import shape

    assert cli.ACTION_STATES == shape.ACTION_STATES


def test_cli_repeats_the_export_kinds():
    """cli.py keeps its own copy of the export kinds (``export KIND`` choices), for the same reason."""
    from connector import cli
    from connector.forms import exports

    assert cli.EXPORT_KINDS == exports.KINDS


def test_the_checker_finds_cycles_through_functions_type_checking_and_packages(tmp_path):
    """The checks above can fail: modules that import each other (one inside a function, one under
    TYPE_CHECKING) are a cycle; so is a module importing ``pkg.sub.c`` when ``pkg/sub/__init__.py``
    imports a module that imports it back."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.e import E\n")
    (pkg / "sub" / "c.py").write_text("C = 1\n")
    (pkg / "sub" / "e.py").write_text("import pkg.d\nE = 1\n")
    (pkg / "d.py").write_text("from pkg.sub.c import C\n")
    graph, in_functions = import_graph(pkg)
    assert cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.d", "pkg.sub", "pkg.sub.e"]]
    assert in_functions == [("pkg.a", 2, "pkg.b")]
    assert _path_within(graph, ["pkg.a", "pkg.b"]) == ["pkg.a", "pkg.b", "pkg.a"]
