"""Keyset pagination as DS's ``CursorConnection`` does it (docs/ds-api.md §4-6).

Each démarche gets sorted indexes, rebuilt only when the world changes: visible dossiers by
``(depose_at, id)`` and by ``(updated_at, id)``, purged dossiers by ``(deleted_at, id)``, the trash
by its CASE column. A page is a ``bisect`` plus a short scan, whatever the démarche's size.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from graphql import GraphQLError

from connector.simulator.state import UTC, Dossier, World

MAX_PAGE_SIZE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_CURSOR_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")

Key = tuple[int, int]  # (timestamp in µs since the epoch, db id)


def micros(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def bad_request(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "bad_request"})


def encode_cursor(key: Key) -> str:
    """DS's cursor: urlsafe base64 (unpadded) of ``"<UTC %Y-%m-%dT%H:%M:%S.%NZ>;<id>"``."""
    us, ident = key
    dt = _EPOCH + us * _US
    raw = f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}000Z;{ident}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, ident = raw.split(";")
        m = _CURSOR_TS.fullmatch(stamp)
        dt = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC)  # type: ignore[union-attr]
        return micros(dt) + int((m.group(2) or "0").ljust(9, "0")) // 1000, int(ident)  # type: ignore[union-attr]
    except (binascii.Error, UnicodeDecodeError, ValueError, AttributeError):
        raise bad_request(f'Invalid input: "{cursor}"') from None


def visible(d: Dossier) -> bool:
    """``visible_by_administration.for_api_v2`` (§5)."""
    return (
        d.state != "brouillon"
        and d.hidden_by_administration_at is None
        and d.hidden_by_expired_at is None
        and not (d.state == "en_construction" and d.hidden_by_user_at is not None)
    )


def in_trash(d: Dossier) -> bool:
    """``pendingDeletedDossiers``' set (§6)."""
    return (d.state != "brouillon" and d.hidden_by_administration_at is not None) or (
        d.state == "en_construction" and d.hidden_by_user_at is not None
    )


def trash_time(d: Dossier) -> datetime:
    """The CASE column DS sorts the trash on: hidden_by_user_at en construction, else the admin's."""
    if d.state == "en_construction" and d.hidden_by_user_at is not None:
        return d.hidden_by_user_at
    return d.hidden_by_administration_at or d.hidden_by_user_at  # type: ignore[return-value]


@dataclass
class Sorted:
    keys: list[Key] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, pairs: list[tuple[Key, Any]]) -> Sorted:
        pairs.sort(key=lambda p: p[0])
        return cls([k for k, _ in pairs], [v for _, v in pairs])


@dataclass
class DemarcheIndex:
    by_depose: Sorted
    by_updated: Sorted
    deleted: Sorted
    trash: Sorted


def build_index(world: World, number: int) -> DemarcheIndex:
    depose, updated, trash = [], [], []
    for d in world.dossiers.values():
        if d.demarche_number != number:
            continue
        if visible(d):
            depose.append(((micros(d.depose_at or d.created_at), d.number), d))
            updated.append(((micros(d.updated_at), d.number), d))
        if in_trash(d):
            trash.append(((micros(trash_time(d)), d.number), d))
    deleted = [((micros(x.deleted_at), x.id), x) for x in world.deleted if x.demarche_number == number]
    return DemarcheIndex(Sorted.of(depose), Sorted.of(updated), Sorted.of(deleted), Sorted.of(trash))


@dataclass
class Page:
    """One page of a connection: the items, their keys, and DS's pageInfo booleans."""

    items: list[Any]
    keys: list[Key]
    has_next: bool
    has_previous: bool


def paginate(
    index: Sorted,
    *,
    first: int | None = None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
    order: str = "ASC",
    since: datetime | None = None,
    keep: Callable[[Any], bool] | None = None,
) -> Page:
    """``CursorConnection#load_nodes``: ``since`` is a ``>=`` bound on the order column."""
    if first is not None and last is not None:
        raise bad_request('Arguments "first" and "last" are exclusive')
    if before is not None and after is not None:
        raise bad_request('Arguments "before" and "after" are exclusive')
    if first is not None and first < 0:
        raise bad_request('Argument "first" must be a non-negative integer')
    if last is not None and last < 0:
        raise bad_request('Argument "last" must be a non-negative integer')
    if last is not None and order == "DESC":
        raise bad_request('Argument "last" is not supported with order "desc"')
    limit = min(x for x in (first, last, MAX_PAGE_SIZE) if x is not None) + 1
    inverted = last is not None or before is not None
    if order == "DESC":  # the deprecated path: cursors swapped, direction flipped, no re-reversal
        if before is None:
            inverted = not inverted
        rows = _scan(index, limit, before=after, after=before, inverted=inverted, since=since, keep=keep)
        has_next = before is not None or (len(rows) == limit and inverted)
        has_previous = after is not None or (len(rows) == limit and not inverted)
        rows = rows[: limit - 1]
    else:
        rows = _scan(index, limit, before=before, after=after, inverted=inverted, since=since, keep=keep)
        has_previous = after is not None or (len(rows) == limit and inverted)
        has_next = before is not None or (len(rows) == limit and not inverted)
        rows = rows[: limit - 1]
        if inverted:
            rows.reverse()
    return Page([r[1] for r in rows], [r[0] for r in rows], has_next, has_previous)


def _scan(
    index: Sorted,
    limit: int,
    *,
    before: str | None,
    after: str | None,
    inverted: bool,
    since: datetime | None,
    keep: Callable[[Any], bool] | None,
) -> list[tuple[Key, Any]]:
    keys, items = index.keys, index.items
    lo, hi = 0, len(keys)
    if since is not None:
        lo = bisect_left(keys, (micros(since),))
    if before is not None:
        hi = min(hi, bisect_left(keys, decode_cursor(before)))
    elif after is not None:
        lo = max(lo, bisect_right(keys, decode_cursor(after)))
    out: list[tuple[Key, Any]] = []
    for i in range(hi - 1, lo - 1, -1) if inverted else range(lo, hi):
        if keep is None or keep(items[i]):
            out.append((keys[i], items[i]))
            if len(out) == limit:
                break
    return out


def connection(page: Page, node: Callable[[Any], Any]) -> dict[str, Any]:
    """The GraphQL connection object (nodes, edges, pageInfo) of a page."""
    nodes = [node(item) for item in page.items]
    cursors = [encode_cursor(k) for k in page.keys]
    return {
        "nodes": nodes,
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes)],
        "pageInfo": {
            "hasNextPage": page.has_next,
            "hasPreviousPage": page.has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def trash_filter(since: datetime | None) -> Callable[[Dossier], bool] | None:
    """``deletedSince`` matches either hidden-at column (§6)."""
    if since is None:
        return None
    return lambda d: any(t is not None and t >= since for t in (d.hidden_by_administration_at, d.hidden_by_user_at))
