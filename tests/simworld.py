"""Helpers for the simulator tests: lean documents, paging loops, and facts read straight from a World.

The expectations here are computed from the world's records with DS's rules written out again
(docs/ds-api.md §5-6), not with the simulator's own code, so the tests can catch its mistakes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from connector.ds import operations
from connector.simulator.state import Dossier, Instructeur, World, typed_id

LEAN = """
query lean($n: Int!, $first: Int, $last: Int, $after: String, $before: String, $updatedSince: ISO8601DateTime,
           $createdSince: ISO8601DateTime, $state: DossierState, $archived: Boolean, $order: Order) {
  demarche(number: $n) {
    dossiers(first: $first, last: $last, after: $after, before: $before, updatedSince: $updatedSince,
             createdSince: $createdSince, state: $state, archived: $archived, order: $order) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { number } }
      nodes { number state archived dateDepot dateDerniereModification dateSuppressionParUsager }
    }
  }
}
"""


def op(name: str, **variables: Any) -> dict[str, Any]:
    """The request body of one of the connector's own operations (queries/<name>.graphql)."""
    return {"query": operations.source(name), "operationName": operations.operation_name(name),
            "variables": variables}


def lean(**variables: Any) -> dict[str, Any]:
    return {"query": LEAN, "variables": variables}


def connection(answer: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in answer, answer["errors"]
    return answer["data"]["demarche"]["dossiers"]


def page_through(handle: Any, demarche: int, first: int | None, **filters: Any) -> tuple[list[int], int]:
    """Every dossier number of a forward pass (keeping endCursor), and the number of requests."""
    numbers: list[int] = []
    after, requests = None, 0
    while True:
        status, answer, _ = handle.post(lean(n=demarche, first=first, after=after, **filters))
        assert status == 200
        requests += 1
        page = connection(answer)
        numbers += [n["number"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            return numbers, requests
        after = page["pageInfo"]["endCursor"]


def listed(d: Dossier) -> bool:
    """DS's visible_by_administration.for_api_v2, written out independently."""
    if d.state == "brouillon" or d.hidden_by_administration_at or d.hidden_by_expired_at:
        return False
    return not (d.state == "en_construction" and d.hidden_by_user_at)


def visible_dossiers(world: World, demarche: int) -> list[Dossier]:
    return [d for d in world.dossiers.values() if d.demarche_number == demarche and listed(d)]


def by_depose(world: World, demarche: int) -> list[int]:
    return [d.number for d in sorted(visible_dossiers(world, demarche), key=lambda d: (d.depose_at, d.number))]


def by_updated(world: World, demarche: int) -> list[int]:
    return [d.number for d in sorted(visible_dossiers(world, demarche), key=lambda d: (d.updated_at, d.number))]


def instructeur_of(world: World, d: Dossier) -> Instructeur:
    groupe = next(g for g in world.demarches[d.demarche_number].groupes if g.number == d.groupe_instructeur_number)
    return world.instructeurs[groupe.instructeur_ids[0]]


def outsider_of(world: World, d: Dossier) -> Instructeur:
    """An instructeur who is not in the dossier's groupe instructeur."""
    groupe = next(g for g in world.demarches[d.demarche_number].groupes if g.number == d.groupe_instructeur_number)
    return next(i for i in world.instructeurs.values() if i.id not in groupe.instructeur_ids)


def find(world: World, **where: Any) -> Dossier:
    """The first listed dossier (by number) whose attributes match."""
    for d in sorted(world.dossiers.values(), key=lambda d: d.number):
        if listed(d) and all(getattr(d, k) == v for k, v in where.items()):
            return d
    raise LookupError(f"no listed dossier with {where}")


def ids(world: World, d: Dossier, instructeur: Instructeur | None = None) -> dict[str, str]:
    ins = instructeur or instructeur_of(world, d)
    return {"dossierId": typed_id("Dossier", d.number), "instructeurId": typed_id("Instructeur", ins.id)}


def start_simulate(*args: str) -> tuple[subprocess.Popen[str], list[str], str]:
    """``ds-connector simulate --port 0 ARGS`` in its own process, read up to the end of its banner
    (the "Rate limit" line): the process, the banner's lines and the GraphQL URL it serves. The
    caller stops it (SIGINT); a process whose banner cannot be read is killed here."""
    process = subprocess.Popen([sys.executable, "-m", "connector", "simulate", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Rate limit"):
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, process.stderr.read()  # type: ignore[union-attr]
            lines.append(line.rstrip("\n"))
    except BaseException:
        process.kill()
        process.communicate(timeout=30)
        raise
    url = re.search(r"serving (http://127\.0\.0\.1:\d+/api/v2/graphql)", lines[0]).group(1)  # type: ignore[union-attr]
    return process, lines, url
