"""GraphQL operations, loaded by name from the installed ``connector.queries`` package.

One operation per ``queries/<name>.graphql`` file; shared fragments live in
``queries/fragments.graphql`` and are appended to an operation only when it uses them
(transitively), so every document sent is small and has no unused fragment.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    visit,
)

QUERIES_PACKAGE = "connector.queries"
FRAGMENTS = "fragments"


def _read(name: str) -> str:
    try:
        return resources.files(QUERIES_PACKAGE).joinpath(f"{name}.graphql").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(f"no GraphQL operation named {name!r} in {QUERIES_PACKAGE}") from None


def names() -> list[str]:
    """Every operation name (file stem), fragments excluded."""
    return sorted(
        p.name[: -len(".graphql")]
        for p in resources.files(QUERIES_PACKAGE).iterdir()
        if p.name.endswith(".graphql") and p.name != f"{FRAGMENTS}.graphql"
    )


@lru_cache(maxsize=1)
def _fragments() -> dict[str, FragmentDefinitionNode]:
    doc = parse(_read(FRAGMENTS))
    return {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}


def _spreads(node) -> set[str]:
    found: set[str] = set()

    class V(Visitor):
        def enter_fragment_spread(self, n: FragmentSpreadNode, *_):
            found.add(n.name.value)

    visit(node, V())
    return found


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The full document text for operation ``name``: the operation plus the fragments it needs."""
    text = _read(name)
    fragments = _fragments()
    needed: list[str] = []
    todo = list(_spreads(parse(text)))
    while todo:
        frag = todo.pop()
        if frag in needed:
            continue
        if frag not in fragments:
            raise KeyError(f"operation {name!r} uses unknown fragment {frag!r}")
        needed.append(frag)
        todo.extend(_spreads(fragments[frag]))
    parts = [text.strip()] + [print_ast(fragments[f]) for f in sorted(needed)]
    return "\n\n".join(parts) + "\n"


@lru_cache(maxsize=None)
def document(name: str) -> DocumentNode:
    return parse(source(name))


def operation_name(name: str) -> str:
    """The GraphQL operation name declared in the file (e.g. ``getDossiersPage``)."""
    ops = [d for d in parse(_read(name)).definitions if isinstance(d, OperationDefinitionNode)]
    if len(ops) != 1 or ops[0].name is None:
        raise KeyError(f"{name}.graphql must declare exactly one named operation")
    return ops[0].name.value
