"""Faults injected on demand: what a loaded DS, its proxy or the network do (docs/ds-api.md §3-5, §12).

A fault matches the next ``count`` GraphQL requests (only those of ``operation`` when given, and
only those whose ``demarcheNumber`` variable is ``for_demarche`` when given).
The app applies it: ``rate_limit`` (a real-looking 429), ``http_error`` (500 with DS's JSON and an
``exception_id``; 502/503/504 from the proxy), ``slow`` (``delay`` seconds, then the answer),
``reset`` (the connection closes unanswered), ``truncate`` (a Content-Length longer than the body),
``timeout`` (DS's 30 s budget: ``Dossier.<field>`` fails with code ``timeout`` past ``keep``
dossiers, graphql-core nulls what it must) and ``modify`` (after the answer, ``numbers`` or
``random`` dossiers get a newer ``updated_at``, as edits during a pagination pass do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError

KINDS = ("rate_limit", "http_error", "slow", "reset", "truncate", "timeout", "modify")
HTTP_ERRORS = (500, 502, 503, 504)


@dataclass
class Fault:
    kind: str
    count: int = 1
    operation: str | None = None
    status: int = 500  # http_error
    delay: float = 1.0  # slow
    keep: int | None = None  # timeout: dossiers answered whole (default: half the page)
    field: str = "champs"  # timeout: the Dossier field that times out
    numbers: tuple[int, ...] = ()  # modify: these dossiers...
    random: int = 0  # modify: ...or this many random visible ones
    demarche: int | None = None  # modify: random ones from this démarche only
    for_demarche: int | None = None  # only requests about this démarche (variable demarcheNumber)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.kind == "http_error" and self.status not in HTTP_ERRORS:
            raise ValueError(f"http_error status must be one of {HTTP_ERRORS}")
        if self.delay < 0 or (self.keep is not None and self.keep < 0) or self.random < 0:
            raise ValueError("delay, keep and random must not be negative")
        self.numbers = tuple(int(n) for n in self.numbers)


class FaultQueue:
    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.pending.append(fault)
        return fault

    def take(self, operation: str | None, demarche: object = None) -> Fault | None:
        """The first fault matching this request, one use consumed."""
        for fault in self.pending:
            if fault.for_demarche is not None and fault.for_demarche != demarche:
                continue
            if fault.operation is None or fault.operation == operation:
                fault.count -= 1
                if fault.count == 0:
                    self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.pending.clear()


class TimeoutAfter:
    """graphql-core middleware for a ``timeout`` fault: past ``keep`` dossiers, their ``field`` times out."""

    def __init__(self, keep: int | None, field: str):
        self.keep = keep
        self.field = field
        self.seen: dict[int, int] = {}

    def resolve(self, next_: Any, root: Any, info: Any, **args: Any) -> Any:
        parent = info.parent_type.name
        if parent == "Dossier" and info.field_name == self.field:
            rank = self.seen.setdefault(id(root), len(self.seen))
            if rank >= (self.keep or 0):
                raise GraphQLError(f"Timeout on Dossier.{self.field}", extensions={"code": "timeout"})
        result = next_(root, info, **args)
        if self.keep is None and parent == "DossierConnection" and info.field_name == "nodes":
            self.keep = len(result) // 2
        return result
