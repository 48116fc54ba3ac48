"""Fetching pages: one pagination loop (``pages``) for every DS list the mirror follows.

A ``Stream`` says which operation and connection field a list is read with, and which filter
variable (``updatedSince``, ``deletedSince`` or none) limits it. The loop asks a page, yields it,
and follows ``endCursor`` until ``hasNextPage`` is false.

The dossiers stream (``Stream.adaptive``) has an adaptive page size: a page DS cannot serve
(GraphQL ``timeout`` or ``invalid_null``, HTTP 500, a malformed answer) is asked again smaller,
100 → 50 → 20 → 5 → 1 (docs/ds-api.md rule 10). When even one dossier fails, the lean listing (same
filter, same cursor, ``first: 1``) names it and gives the cursor that steps over it: the page then
carries that dossier as ``poison`` and no nodes, and the engine quarantines it. A successful page
lets the size grow back one step. The other lists are small: a failed page fails the stream.

``prefetched`` walks a page iterator one page ahead: the next page is requested while the caller
stores the current one.

Every page says which filter minted its cursor (``since``): the engine stores the two together.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from connector.ds.client import DsClient, Result
from connector.errors import PageFailed
from connector.logs import get_logger

log = get_logger(__name__)

PAGE_SIZES = (100, 50, 20, 5, 1)


@dataclass(frozen=True)
class Stream:
    name: str  # the sync_state stream
    operation: str  # queries/<operation>.graphql
    field: str  # data.demarche.<field> is the connection
    since_variable: str | None  # the filter variable, or None: the whole list
    adaptive: bool = False  # shrink the page on failure, quarantine what fails alone


DOSSIERS = Stream("dossiers", "dossiers_page", "dossiers", "updatedSince", adaptive=True)
DELETED = Stream("deleted", "deleted_dossiers_page", "deletedDossiers", "deletedSince")
PENDING_DELETED = Stream("pending_deleted", "pending_deleted_dossiers_page", "pendingDeletedDossiers",
                         "deletedSince")
LISTING = Stream("listing", "dossier_listing_page", "dossiers", None)
DELETION_STREAMS = {s.name: s for s in (DELETED, PENDING_DELETED)}


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


def failed_answer(failure: PageFailed | MalformedAnswer) -> str:
    """What DS answered to a failed request, as kept in the quarantine."""
    if isinstance(failure, MalformedAnswer):
        return failure.raw
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


async def pages(
    client: DsClient, demarche: int, stream: Stream, *, since: str | None = None, after: str | None = None,
    page_size: int = PAGE_SIZES[0], go_on: Callable[[], bool] | None = None,
) -> AsyncIterator[Page]:
    """Every page of ``stream`` from ``after`` (None: the start) under the filter ``since``.
    ``go_on``: asked before each request goes out (``DsClient.query``)."""
    sizes = sizes_from(page_size) if stream.adaptive else (page_size,)
    level = 0
    while True:
        try:
            page = await _page(client, demarche, stream, since, after, sizes[level], go_on)
            level = max(level - 1, 0)
        except (PageFailed, MalformedAnswer) as exc:
            if not stream.adaptive:
                raise _failed(exc, demarche, stream) from None
            if level + 1 < len(sizes):
                level += 1
                log.warning("sync.page_shrunk", demarche=demarche, failed_size=sizes[level - 1],
                            next_size=sizes[level], error=str(exc))
                continue
            page, level = await _skip_one(client, demarche, since, after, exc, go_on), 0
        yield page
        if not page.has_next:
            return
        after = page.end_cursor


async def prefetched(source: AsyncIterator[Page], may_go_on: Callable[[], bool]) -> AsyncIterator[Page]:
    """``source``, one page ahead: page N+1 is requested (in a task of its own) before page N is
    handed to the caller, so DS works while the caller stores. ``may_go_on()`` is asked before each
    new request (the stop event): once false, nothing more is requested. At most two pages are
    held: the one being stored and the one in flight."""
    ahead: asyncio.Task[Page] | None = asyncio.ensure_future(anext(source))  # type: ignore[arg-type]
    try:
        while ahead is not None:
            try:
                page = await ahead
            except StopAsyncIteration:
                return
            ahead = None
            if page.has_next and may_go_on():
                ahead = asyncio.ensure_future(anext(source))  # type: ignore[arg-type]
                await _until_sent()
            yield page
    finally:
        if ahead is not None and not ahead.done():
            ahead.cancel()
            try:
                await ahead
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
            except Exception:  # noqa: BLE001 - the caller stopped first; its own error wins
                pass
        await source.aclose()  # type: ignore[attr-defined]


async def _until_sent() -> None:
    """Let a request task just created run up to its first network wait (budget, connection pool
    and the request write take a few loop turns), so it is on the wire before the caller's storing
    holds the loop."""
    for _ in range(4):
        await asyncio.sleep(0)


async def _page(
    client: DsClient, demarche: int, stream: Stream, since: str | None, after: str | None, size: int,
    go_on: Callable[[], bool] | None = None,
) -> Page:
    variables: dict[str, Any] = {"demarcheNumber": demarche, "first": size, "after": after}
    if stream.since_variable is not None:
        variables[stream.since_variable] = since
    result = await client.query(stream.operation, variables, go_on=go_on)
    nodes, end_cursor, has_next = connection(result, stream.field)
    return Page(nodes, end_cursor, has_next, since, size, warnings=[str(e.get("message")) for e in result.errors])


def _failed(exc: PageFailed | MalformedAnswer, demarche: int, stream: Stream) -> PageFailed:
    if isinstance(exc, PageFailed):
        return exc
    return PageFailed(f"DS answered {stream.field} of démarche {demarche} with {exc}", codes=[], errors=[])


async def _skip_one(
    client: DsClient, demarche: int, since: str | None, after: str | None, failure: PageFailed | MalformedAnswer,
    go_on: Callable[[], bool] | None = None,
) -> Page:
    """Name the one dossier that fails at ``after`` and step over it. Should even the lean listing
    fail on it, the partial answer's ``pageInfo`` still steps over it (``nodes`` may hold nulls),
    and it is quarantined without a number."""
    variables = {"demarcheNumber": demarche, "first": 1, "after": after, "updatedSince": since}
    try:
        result = await client.query(LISTING.operation, variables, go_on=go_on)
    except PageFailed as exc:
        if not exc.data:
            raise
        result = Result(exc.data, exc.errors)
    try:
        nodes, end_cursor, has_next = connection(result, LISTING.field)
    except MalformedAnswer as exc:
        raise _failed(exc, demarche, LISTING) from None
    if not nodes:  # nothing there any more (deleted meanwhile): the stream simply goes on
        return Page([], end_cursor, has_next, since, 1)
    node = nodes[0] if isinstance(nodes[0], dict) else {}
    number = node.get("number")
    poison = Poison(None if number is None else int(number), node.get("dateDerniereModification"),
                    str(failure), failed_answer(failure))
    return Page([], end_cursor, has_next, since, 1, poison=poison)
