"""Sync bookmarks, one per démarche and stream, committed with the page they describe (docs/operations.md §4).

A page write (``set_bookmark``) stores the page's ``endCursor`` together with the filter that minted
it (``cursor_since``: a cursor must never be reused under another filter) and raises ``max_seen``;
an empty page's null cursor never erases the stored one. Only ``finish_stream``, at the end of a
completed pass, clears the cursor and advances the watermark to ``min(max_seen, signpost)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from connector.store.sql import now_utc, require_transaction
from connector.store.values import instant

STREAMS = ("dossiers", "deleted", "pending_deleted", "listing")

_KEEP: Any = object()


@dataclass(frozen=True)
class Bookmark:
    demarche_number: int
    stream: str
    updated_since: str | None  # the watermark: start of the next pass's filter
    after_cursor: str | None  # resume point of an unfinished pass
    cursor_since: str | None  # the updatedSince/deletedSince that minted after_cursor
    max_seen: str | None  # greatest dateDerniereModification (or dateSupression) saved so far
    last_success_at: str | None  # end of the last completed pass (UTC)
    updated_at: str  # last page written (UTC)


def get_bookmark(db: sqlite_utils.Database, demarche_number: int, stream: str) -> Bookmark | None:
    _check_stream(stream)
    row = db.conn.execute(
        "SELECT demarche_number, stream, updated_since, after_cursor, cursor_since, max_seen, "
        "last_success_at, updated_at FROM sync_state WHERE demarche_number = ? AND stream = ?",
        [demarche_number, stream],
    ).fetchone()
    return None if row is None else Bookmark(*row)


def set_bookmark(
    db: sqlite_utils.Database,
    demarche_number: int,
    stream: str,
    *,
    after_cursor: str | None = None,
    cursor_since: str | None = _KEEP,
    max_seen: str | None = None,
    updated_since: str | None = _KEEP,
) -> Bookmark:
    """Record a committed page. ``after_cursor=None`` (an empty page) keeps the stored cursor; a
    cursor must come with ``cursor_since`` (``None`` meaning "minted without a filter").
    ``max_seen`` only ever grows. ``updated_since`` is set only when given (first pass, reset)."""
    require_transaction(db, "set_bookmark")
    if after_cursor is not None and cursor_since is _KEEP:
        raise ValueError("a cursor must be stored with the filter that minted it (cursor_since=...)")
    current = get_bookmark(db, demarche_number, stream)
    if after_cursor is None:
        after_cursor = current.after_cursor if current else None
        cursor_since = current.cursor_since if current else None
    if updated_since is _KEEP:
        updated_since = current.updated_since if current else None
    if current and current.max_seen and (max_seen is None or instant(max_seen) < instant(current.max_seen)):
        max_seen = current.max_seen
    db.conn.execute(
        "INSERT INTO sync_state (demarche_number, stream, updated_since, after_cursor, cursor_since, "
        "max_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (demarche_number, stream) DO "
        "UPDATE SET updated_since = excluded.updated_since, after_cursor = excluded.after_cursor, "
        "cursor_since = excluded.cursor_since, max_seen = excluded.max_seen, "
        "updated_at = excluded.updated_at",
        [demarche_number, stream, updated_since, after_cursor, cursor_since, max_seen, now_utc()],
    )
    return get_bookmark(db, demarche_number, stream)  # type: ignore[return-value]


def finish_stream(
    db: sqlite_utils.Database, demarche_number: int, stream: str, *, signpost: str | None = None
) -> Bookmark:
    """End of a completed pass (``hasNextPage`` false): clear the cursor, set the watermark to
    ``min(max_seen, signpost)`` (Singer's signpost: rows changed during the pass are not skipped),
    or keep it when nothing was ever seen, and stamp ``last_success_at``."""
    require_transaction(db, "finish_stream")
    _check_stream(stream)
    current = get_bookmark(db, demarche_number, stream)
    watermark = current.updated_since if current else None
    max_seen = current.max_seen if current else None
    if max_seen is not None:
        watermark = max_seen
        if signpost is not None and instant(signpost) < instant(max_seen):
            watermark = signpost
    now = now_utc()
    db.conn.execute(
        "INSERT INTO sync_state (demarche_number, stream, updated_since, after_cursor, cursor_since, "
        "max_seen, last_success_at, updated_at) VALUES (?, ?, ?, NULL, NULL, ?, ?, ?) "
        "ON CONFLICT (demarche_number, stream) DO UPDATE SET updated_since = excluded.updated_since, "
        "after_cursor = NULL, cursor_since = NULL, last_success_at = excluded.last_success_at, "
        "updated_at = excluded.updated_at",
        [demarche_number, stream, watermark, max_seen, now, now],
    )
    return get_bookmark(db, demarche_number, stream)  # type: ignore[return-value]


def _check_stream(stream: str) -> None:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}: expected one of {', '.join(STREAMS)}")
