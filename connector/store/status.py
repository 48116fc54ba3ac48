"""SQL for ``ds-connector status`` (read-only) and the per-run report the sync entry points record.

``run_reports`` (``shape.RUN_REPORTS``, migration ``run_reports``) completes ``sync_runs`` with what the engine's row lacks:
each démarche's error, a run-wide fatal error, retries and rate-limited requests. It is written by the
commands layer right after a run (``record_run_report``), under the instance lock.

The tables of later issues (``anomalies``, ``conventions``, ``actions``) are read only when they exist,
so ``status`` works before and after they land.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from connector.store.followup import statuses_by_demarche

STREAMS_OF_A_SYNC = ("dossiers", "deleted", "pending_deleted")
SCAN_NEVER = ("infected", "integrity_error")  # files that will never be downloaded
RECENT_RUNS = 2000  # how far back ``last_runs`` looks for a démarche's last run


# --- written after each run ----------------------------------------------------------------------


def record_run_report(db: sqlite_utils.Database, run_id: int | None, *, retries: int = 0, rate_limited: int = 0,
                      error: str | None = None, errors: dict[int, str] | None = None) -> None:
    """Record a run's errors and counters (``run_id`` None: the latest run, i.e. the one that just
    failed before it could report its id; the caller holds the lock, so it is ours)."""
    with db.atomic():
        if run_id is None:
            row = db.execute("SELECT max(id) FROM sync_runs").fetchone()
            if row is None or row[0] is None:
                return
            run_id = row[0]
        db.conn.execute(
            "INSERT OR REPLACE INTO run_reports (run_id, retries, rate_limited, error, errors) VALUES (?, ?, ?, ?, ?)",
            [run_id, retries, rate_limited, error,
             json.dumps({str(k): v for k, v in (errors or {}).items()}, ensure_ascii=False)],
        )


# --- read by status ------------------------------------------------------------------------------


def tables(db: sqlite_utils.Database) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def count_by_state(db: sqlite_utils.Database, table: str) -> dict[int, dict[str, int]]:
    """Rows per démarche and state of ``dossiers`` or ``actions``."""
    if table not in ("dossiers", "actions"):
        raise ValueError(table)
    out: dict[int, dict[str, int]] = {}
    for demarche, state, count in db.execute(
        f"SELECT demarche_number, state, count(*) FROM {table} GROUP BY demarche_number, state"
    ):
        out.setdefault(demarche, {})[state] = count
    return out


def deposited_since(db: sqlite_utils.Database, since_utc: str) -> dict[int, int]:
    """Dossiers deposited (``date_depot``, DS's clock, any offset) at or after ``since_utc``."""
    return dict(db.execute(
        "SELECT demarche_number, count(*) FROM dossiers WHERE julianday(date_depot) >= julianday(?) "
        "GROUP BY demarche_number", [since_utc]).fetchall())


def count_by_demarche(db: sqlite_utils.Database, table: str) -> dict[int, int]:
    """Rows per démarche of ``pending_deletions`` (the trash) or ``quarantine``."""
    if table not in ("pending_deletions", "quarantine"):
        raise ValueError(table)
    return dict(db.execute(f"SELECT demarche_number, count(*) FROM {table} GROUP BY demarche_number").fetchall())


def files_waiting(db: sqlite_utils.Database, policy: str) -> dict[int, tuple[int, int]]:
    """Per démarche: (files the attachment policy wants and that are not downloaded yet nor failed,
    files whose download failed: checksum, size, HTTP, virus; retried with a backoff or given up)."""
    if policy == "none":
        kinds: tuple[str, ...] = ()
    elif policy == "messages":
        kinds = ("message",)
    else:
        kinds = ("message", "champ", "annotation")
    if not kinds:
        return {}
    marks = ", ".join("?" * len(kinds))
    rows = db.execute(
        "SELECT d.demarche_number, "
        "sum(f.downloaded_at IS NULL AND f.failed_reason IS NULL AND coalesce(f.virus_scan, '') NOT IN (?, ?)), "
        "sum(f.failed_reason IS NOT NULL AND f.local_path IS NULL OR coalesce(f.checksum_ok, 1) = 0) "
        f"FROM files f JOIN dossiers d ON d.number = f.dossier_number WHERE f.owner_kind IN ({marks}) "
        "GROUP BY d.demarche_number", [*SCAN_NEVER, *kinds]).fetchall()
    return {demarche: (pending or 0, failed or 0) for demarche, pending, failed in rows}


def last_success(db: sqlite_utils.Database) -> dict[int, str]:
    """When each démarche last completed all three streams (the oldest of their last completions)."""
    marks = ", ".join("?" * len(STREAMS_OF_A_SYNC))
    rows = db.execute(
        "SELECT demarche_number, min(last_success_at), count(last_success_at) FROM sync_state "
        f"WHERE stream IN ({marks}) GROUP BY demarche_number", list(STREAMS_OF_A_SYNC)).fetchall()
    return {demarche: at for demarche, at, n in rows if n == len(STREAMS_OF_A_SYNC)}


RUN_COLUMNS = ("id", "kind", "demarches", "started_at", "finished_at", "status", "requests", "pages", "dossiers",
               "new", "updated", "deleted", "quarantined", "errors")


def recent_runs(db: sqlite_utils.Database, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """The latest runs, newest first, each with its report (``report``: None when unrecorded)."""
    has_reports = "run_reports" in tables(db)
    columns = ", ".join(f"r.{c}" for c in RUN_COLUMNS)
    if has_reports:
        sql = (f"SELECT {columns}, p.retries, p.rate_limited, p.error, p.errors FROM sync_runs r "
               "LEFT JOIN run_reports p ON p.run_id = r.id ORDER BY r.id DESC LIMIT ?")
    else:
        sql = f"SELECT {columns}, NULL, NULL, NULL, NULL FROM sync_runs r ORDER BY r.id DESC LIMIT ?"
    out = []
    for row in db.execute(sql, [limit]):
        run = dict(zip(RUN_COLUMNS, row[: len(RUN_COLUMNS)]))
        run["demarches"] = json.loads(run["demarches"] or "[]")
        retries, rate_limited, error, errors = row[len(RUN_COLUMNS):]
        run["report"] = None if errors is None else {
            "retries": retries, "rate_limited": rate_limited, "error": error,
            "errors": {int(k): v for k, v in json.loads(errors).items()},
        }
        out.append(run)
    return out


def rate_limited_total(db: sqlite_utils.Database) -> int:
    if "run_reports" not in tables(db):
        return 0
    return db.execute("SELECT coalesce(sum(rate_limited), 0) FROM run_reports").fetchone()[0]


def demarche_titles(db: sqlite_utils.Database) -> dict[int, str]:
    return dict(db.execute("SELECT number, title FROM demarches").fetchall())


# --- the tables of later issues, when they exist -------------------------------------------------


def open_anomalies(db: sqlite_utils.Database) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for demarche, severity, count in db.execute(
        "SELECT demarche_number, coalesce(severity, 'unknown'), count(*) FROM anomalies "
        "WHERE resolved_at IS NULL GROUP BY demarche_number, severity"
    ):
        out.setdefault(demarche, {})[severity] = count
    return out


def conventions(db: sqlite_utils.Database, today: date, within_days: int = 15) -> dict[int, dict[str, int]]:
    """Per démarche: conventions ``awaiting`` and ``overdue`` as the follow-up last saved them (the
    statuses ``actions plan`` counts, from :func:`statuses_by_demarche`: a convention is in one of
    them at most; a démarche the follow-up skipped after the last sync has rows exactly as a planning at
    that sync's DS clock would have written, ``connector.followup.skip``), and ``due_within_15_days``: of the awaiting ones, those whose deadline is within
    ``within_days`` days of ``today`` (a part of ``awaiting``, not a third group)."""
    soon = (today + timedelta(days=within_days)).isoformat()
    due = dict(db.execute(
        "SELECT demarche_number, count(*) FROM conventions WHERE status = 'awaiting' AND deadline IS NOT NULL "
        "AND date(deadline) >= date(?) AND date(deadline) <= date(?) GROUP BY demarche_number",
        [today.isoformat(), soon]).fetchall())
    return {d: {"awaiting": counts.get("awaiting", 0), "due_within_15_days": due.get(d, 0),
                "overdue": counts.get("overdue", 0)} for d, counts in statuses_by_demarche(db).items()}


def optional(db: sqlite_utils.Database, present: set[str], table: str, read, *args):
    """``read(db, *args)`` if ``table`` exists, else None; a table of another shape than expected
    gives ``{"error": ...}`` rather than a failed status."""
    if table not in present:
        return None
    try:
        return read(db, *args)
    except sqlite3.Error as exc:
        return {"error": f"{table}: {exc}"}
