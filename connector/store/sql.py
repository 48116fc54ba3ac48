"""SQL helpers every store module uses: the connector's timestamps, the transaction guard of the page
savers, ``IN (...)`` lists in chunks, and INSERT/UPSERT of dict rows. They import nothing of the
connector: the bottom floor of ``store/``, under the shape, the migrations and the readers/writers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import sqlite_utils


def now_utc() -> str:
    """The connector's own timestamps: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def require_transaction(db: sqlite_utils.Database, what: str) -> None:
    """Savers write inside the caller's ``db.atomic()`` block: never commit a page half-way."""
    if not db.conn.in_transaction:
        raise RuntimeError(f"{what}() must be called inside `with db.atomic():`")


IN_CHUNK = 500  # values per ``IN (...)`` list: far below SQLite's bound-variable limit


def in_chunks(values: list, size: int = IN_CHUNK) -> Iterator[tuple[list, str]]:
    """``values`` in slices for an ``IN (...)`` list: each slice and its ``?, ?, …`` placeholders."""
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        yield chunk, ", ".join("?" * len(chunk))


def upsert(db: sqlite_utils.Database, table: str, row: dict, key: tuple[str, ...]) -> None:
    """INSERT … ON CONFLICT DO UPDATE of the given columns only (others keep their value)."""
    columns = list(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    db.conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"),
        list(row.values()),
    )


def insert_many(db: sqlite_utils.Database, table: str, rows: list[dict], *, replace: bool = False) -> None:
    if not rows:
        return
    columns = list(rows[0])
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.conn.executemany(
        f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [[r[c] for c in columns] for r in rows],
    )


def upsert_many(db: sqlite_utils.Database, table: str, rows: list[dict], key: tuple[str, ...]) -> None:
    """``upsert`` of rows that all have the same columns, in one statement."""
    if not rows:
        return
    columns = list(rows[0])
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    db.conn.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"),
        [[r[c] for c in columns] for r in rows],
    )
