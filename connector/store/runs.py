"""Sync runs: one row per run, for ``status`` and for the operator. Each call is its own unit of work.

Only the lock holder runs syncs, so a run still marked ``running`` when a new one starts belongs to a
process that died: it becomes ``interrupted``.
"""

from __future__ import annotations

import json

import sqlite_utils

from connector.store.sql import now_utc

RUN_STATUSES = ("ok", "partial", "failed", "interrupted", "stopped")


def start_run(db: sqlite_utils.Database, kind: str, demarches: list[int]) -> int:
    """Open a run (``kind`` e.g. "daemon", "once", "reconcile") and return its id."""
    now = now_utc()
    with db.atomic():
        db.conn.execute(
            "UPDATE sync_runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'", [now]
        )
        cursor = db.conn.execute(
            "INSERT INTO sync_runs (kind, demarches, started_at, status) VALUES (?, ?, ?, 'running')",
            [kind, json.dumps(sorted(demarches)), now],
        )
    return int(cursor.lastrowid)  # type: ignore[arg-type]


def finish_run(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    status: str,
    requests: int = 0,
    pages: int = 0,
    dossiers: int = 0,
    new: int = 0,
    updated: int = 0,
    deleted: int = 0,
    quarantined: int = 0,
    errors: int = 0,
) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
    with db.atomic():
        db.conn.execute(
            "UPDATE sync_runs SET finished_at = ?, status = ?, requests = ?, pages = ?, dossiers = ?, "
            "new = ?, updated = ?, deleted = ?, quarantined = ?, errors = ? WHERE id = ?",
            [now_utc(), status, requests, pages, dossiers, new, updated, deleted, quarantined, errors,
             run_id],
        )


def finish_followup(db: sqlite_utils.Database, run_id: int, *, requests: int, ds_clock: str | None) -> None:
    """After the run's follow-up: the requests DS received during the whole run (sync and follow-up)
    and DS's clock as its latest answer told it (its ``Date`` header), which ``status`` judges by."""
    with db.atomic():
        db.conn.execute("UPDATE sync_runs SET requests = ?, ds_clock = coalesce(?, ds_clock) WHERE id = ?",
                        [requests, ds_clock, run_id])


def last_ds_clock(db: sqlite_utils.Database) -> str | None:
    """DS's clock as last seen by a run (None before any run recorded it)."""
    row = db.execute("SELECT ds_clock FROM sync_runs WHERE ds_clock IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None
