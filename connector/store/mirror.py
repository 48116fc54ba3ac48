"""What the engine and the reconciliation read of the mirror, and the connection settings of a sync
run: every SQL statement the sync package needs besides the savers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from connector.store.sql import in_chunks


@dataclass(frozen=True)
class Held:
    """What the mirror holds of one démarche, for the reconciliation."""

    dates: dict[int, str] = field(default_factory=dict)  # dossier -> date_derniere_modification
    in_trash: frozenset[int] = frozenset()  # flagged as in DS's trash (pending_deletion)
    quarantined: frozenset[int] = frozenset()  # named quarantine entries


def tune_for_sync(db: sqlite_utils.Database) -> None:
    """The connection settings of a sync run. The mirror can be fetched again, so its page commits
    need not wait for the disk (docs/operations.md §3.2: in WAL mode NORMAL may lose the last commits on power
    loss, rows and cursor together, never one without the other; the next run re-reads them). FULL
    stays the default of open_db for what cannot be fetched again (the side-effect journal). A page
    writes about 2 MB: checkpoint every ~40 MB instead of every 4 MB (each checkpoint syncs the
    file); the run ends with ``checkpoint`` that truncates the WAL."""
    db.conn.execute("PRAGMA synchronous=NORMAL")
    db.conn.execute("PRAGMA wal_autocheckpoint=10000")


def checkpoint(db: sqlite_utils.Database) -> None:
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def held(db: sqlite_utils.Database, demarche_number: int) -> Held:
    dates: dict[int, str] = {}
    trash: set[int] = set()
    for number, date, pending in db.conn.execute(
        "SELECT number, date_derniere_modification, pending_deletion FROM dossiers WHERE demarche_number = ?",
        [demarche_number],
    ):
        dates[number] = date
        if pending:
            trash.add(number)
    quarantined = {n for (n,) in db.conn.execute(
        "SELECT dossier_number FROM quarantine WHERE demarche_number = ? AND dossier_number IS NOT NULL",
        [demarche_number])}
    return Held(dates, frozenset(trash), frozenset(quarantined))


def dossier_numbers(db: sqlite_utils.Database, demarche_number: int) -> set[int]:
    return {n for (n,) in db.conn.execute("SELECT number FROM dossiers WHERE demarche_number = ?",
                                          [demarche_number])}


def known_dossiers(db: sqlite_utils.Database, numbers: list[int]) -> int:
    """How many of these numbers are dossiers of the mirror."""
    known = 0
    for chunk, marks in in_chunks(numbers):
        known += db.conn.execute(f"SELECT count(*) FROM dossiers WHERE number IN ({marks})", chunk).fetchone()[0]
    return known


def descriptor_synced_at(db: sqlite_utils.Database, demarche_number: int) -> str | None:
    row = db.conn.execute("SELECT synced_at FROM demarches WHERE number = ?", [demarche_number]).fetchone()
    return None if row is None else row[0]


def trashed_by_usager(db: sqlite_utils.Database, demarche_number: int) -> list[str]:
    """``date_suppression`` of the démarche's en_construction dossiers in DS's trash (deleted by
    their usager: DS backdates their purge to that date)."""
    return [d for (d,) in db.conn.execute(
        "SELECT date_suppression FROM pending_deletions WHERE demarche_number = ? "
        "AND state = 'en_construction' AND date_suppression IS NOT NULL",
        [demarche_number])]


def local_paths(db: sqlite_utils.Database) -> set[Path]:
    """Every local copy a ``files`` row refers to."""
    return {Path(p) for (p,) in db.conn.execute("SELECT local_path FROM files WHERE local_path IS NOT NULL")}
