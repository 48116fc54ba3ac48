"""Fetchers: async generators of pages, one per DS list the mirror follows.

``dossier_pages`` walks ``demarche.dossiers(updatedSince:)`` with an adaptive page size: a page DS
cannot serve (GraphQL ``timeout`` or ``invalid_null``, HTTP 500, a malformed answer) is asked again
smaller, 100 → 50 → 20 → 5 → 1 (NOTES.md rule 10). When even one dossier fails, the lean listing
(same filter, same cursor, ``first: 1``) names it and gives the cursor that steps over it: the page
then carries that dossier as ``poison`` and no nodes, and the engine quarantines it. A successful
page lets the size grow back one step.

``deletion_pages`` walks ``deletedDossiers`` / ``pendingDeletedDossiers`` (small lists, full pages).

Every page says which filter minted its cursor (``since``): the engine stores the two together.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from connector.ds.client import DsClient, Result
from connector.errors import PageFailed
from connector.logs import get_logger

log = get_logger(__name__)

PAGE_SIZES = (100, 50, 20, 5, 1)
DELETION_OPERATIONS = {"deleted": "deleted_dossiers_page", "pending_deleted": "pending_deleted_dossiers_page"}
DELETION_FIELDS = {"deleted": "deletedDossiers", "pending_deleted": "pendingDeletedDossiers"}


@dataclass
class Poison:
    """A dossier DS could not serve even alone: its listing entry and the failed answer."""

    number: int | None  # None when even the lean listing could not name it
    date_derniere_modification: str | None
    error: str
    raw: str


@dataclass
class Page:
    nodes: list[dict[str, Any]]
    end_cursor: str | None
    has_next: bool
    since: str | None  # the filter that minted end_cursor
    size: int  # the `first` it was asked with
    poison: Poison | None = None
    warnings: list[str] = field(default_factory=list)  # non-fatal GraphQL errors of the answer


class MalformedAnswer(Exception):
    """DS answered 200 with a shape the schema does not allow; treated like a failed page.
    ``raw`` is the answer (data and errors) as JSON, for the quarantine."""

    def __init__(self, message: str, raw: str):
        super().__init__(message)
        self.raw = raw


def failed_answer(failure: PageFailed) -> str:
    """What DS answered to a failed request, as kept in the quarantine."""
    return json.dumps({"errors": failure.errors, "data": failure.data, "status": failure.status},
                      ensure_ascii=False, default=str)


def sizes_from(page_size: int) -> tuple[int, ...]:
    return (page_size, *(s for s in PAGE_SIZES if s < page_size))


def connection(result: Result, field_name: str) -> tuple[list[dict[str, Any]], str | None, bool]:
    """``(nodes, endCursor, hasNextPage)`` of ``data.demarche.<field_name>``, or MalformedAnswer."""
    try:
        conn = result.data["demarche"][field_name]  # type: ignore[index]
        info = conn["pageInfo"]
        nodes = conn["nodes"]
        if not isinstance(nodes, list) or not isinstance(info["hasNextPage"], bool):
            raise TypeError("nodes is not a list or hasNextPage not a boolean")
        if info["hasNextPage"] and not info.get("endCursor"):
            raise TypeError("hasNextPage without an endCursor")
    except (KeyError, TypeError) as exc:
        raw = json.dumps({"data": result.data, "errors": result.errors}, ensure_ascii=False, default=str)
        raise MalformedAnswer(f"no usable demarche.{field_name} in the answer ({exc})", raw) from None
    return nodes, info.get("endCursor"), info["hasNextPage"]


async def dossier_pages(
    client: DsClient, demarche: int, *, since: str | None, after: str | None, page_size: int
) -> AsyncIterator[Page]:
    sizes = sizes_from(page_size)
    level = 0
    while True:
        size = sizes[level]
        variables = {"demarcheNumber": demarche, "first": size, "after": after, "updatedSince": since}
        try:
            result = await client.query("dossiers_page", variables)
            nodes, end_cursor, has_next = connection(result, "dossiers")
        except (PageFailed, MalformedAnswer) as exc:
            if level + 1 < len(sizes):
                level += 1
                log.warning("sync.page_shrunk", demarche=demarche, failed_size=size,
                            next_size=sizes[level], error=str(exc))
                continue
            page = await _skip_one(client, demarche, since, after, exc)
            yield page
            if not page.has_next:
                return
            after, level = page.end_cursor, 0
            continue
        yield Page(nodes, end_cursor, has_next, since, size, warnings=_messages(result.errors))
        if not has_next:
            return
        after = end_cursor
        level = max(level - 1, 0)


async def _skip_one(
    client: DsClient, demarche: int, since: str | None, after: str | None, failure: PageFailed | MalformedAnswer
) -> Page:
    """Name the one dossier that fails at ``after`` and step over it. Should even the lean listing
    fail on it, the partial answer's ``pageInfo`` still steps over it (``nodes`` may hold nulls),
    and it is quarantined without a number."""
    variables = {"demarcheNumber": demarche, "first": 1, "after": after, "updatedSince": since}
    try:
        result = await client.query("dossier_listing_page", variables)
    except PageFailed as exc:
        if not exc.data:
            raise
        result = Result(exc.data, exc.errors)
    try:
        nodes, end_cursor, has_next = connection(result, "dossiers")
    except MalformedAnswer as exc:
        raise PageFailed(f"DS answered the listing of démarche {demarche} with {exc}", codes=[], errors=[]) from None
    if not nodes:  # nothing there any more (deleted meanwhile): the stream simply goes on
        return Page([], end_cursor, has_next, since, 1)
    node = nodes[0] if isinstance(nodes[0], dict) else {}
    if isinstance(failure, MalformedAnswer):
        raw = failure.raw
    else:
        raw = failed_answer(failure)
    number = node.get("number")
    poison = Poison(None if number is None else int(number), node.get("dateDerniereModification"),
                    str(failure), raw)
    log.error("sync.dossier_quarantined", demarche=demarche, dossier=poison.number, error=str(failure))
    return Page([], end_cursor, has_next, since, 1, poison=poison)


async def deletion_pages(
    client: DsClient, demarche: int, stream: str, *, since: str | None, after: str | None, page_size: int
) -> AsyncIterator[Page]:
    field_name = DELETION_FIELDS[stream]
    while True:
        variables = {"demarcheNumber": demarche, "first": page_size, "after": after, "deletedSince": since}
        result = await client.query(DELETION_OPERATIONS[stream], variables)
        try:
            nodes, end_cursor, has_next = connection(result, field_name)
        except MalformedAnswer as exc:
            raise PageFailed(f"DS answered {field_name} of démarche {demarche} with {exc}", codes=[], errors=[]) from None
        yield Page(nodes, end_cursor, has_next, since, page_size, warnings=_messages(result.errors))
        if not has_next:
            return
        after = end_cursor


async def listing(client: DsClient, demarche: int, page_size: int) -> AsyncIterator[list[dict[str, Any]]]:
    """Every visible dossier's ``number``, ``dateDerniereModification`` and ``state``, by pages."""
    after = None
    while True:
        variables = {"demarcheNumber": demarche, "first": page_size, "after": after}
        result = await client.query("dossier_listing_page", variables)
        try:
            nodes, end_cursor, has_next = connection(result, "dossiers")
        except MalformedAnswer as exc:
            raise PageFailed(f"DS answered the listing of démarche {demarche} with {exc}", codes=[], errors=[]) from None
        yield nodes
        if not has_next:
            return
        after = end_cursor


def _messages(errors: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("message")) for e in errors]
