"""Deletions (purged, pending, vanished dossiers) and the quarantine of dossiers DS cannot serve.

GDPR (docs/ds-api.md §6, rule 8): a purged or vanished dossier loses its row, champs, annotations,
messages and files rows; a tombstone keeps only number, démarche, state, reason and dates. The local
copies of its files are returned so the engine unlinks them **after** the commit.

Pending deletions (the trash) are remembered in ``pending_deletions`` whether or not the dossier is
known locally, and known dossiers get ``dossiers.pending_deletion = 1``. Either goes when the dossier
comes back through ``save_dossiers`` (a restore bumps ``updated_at``) or is purged.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from connector.store.sql import in_chunks, now_utc, require_transaction


def save_deleted(db: sqlite_utils.Database, demarche_number: int, nodes: list[dict]) -> list[Path]:
    """Purge each DeletedDossier of a ``deletedDossiers`` page and tombstone it. Idempotent.

    A tombstone is written once; only a local "vanished" verdict is replaced by DS's own record.
    """
    require_transaction(db, "save_deleted")
    paths: list[Path] = []
    for node in nodes:
        number = int(node["number"])
        paths += _purge(db, number)
        db.conn.execute(
            "INSERT INTO tombstones (number, demarche_number, deleted_dossier_id, state, reason, "
            "date_suppression, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (number) DO UPDATE SET deleted_dossier_id = excluded.deleted_dossier_id, "
            "state = excluded.state, reason = excluded.reason, "
            "date_suppression = excluded.date_suppression WHERE tombstones.deleted_dossier_id IS NULL",
            [number, demarche_number, node.get("id"), node.get("state"), node["reason"],
             node.get("dateSupression"), now_utc()],
        )
    return paths


def save_pending_deleted(db: sqlite_utils.Database, demarche_number: int, nodes: list[dict]) -> int:
    """Record a ``pendingDeletedDossiers`` page; flag the known dossiers. Returns how many local
    dossiers were newly flagged."""
    require_transaction(db, "save_pending_deleted")
    flagged = 0
    now = now_utc()
    for node in nodes:
        number = int(node["number"])
        if db.conn.execute("SELECT 1 FROM tombstones WHERE number = ?", [number]).fetchone():
            continue  # already purged: the trash listing lags behind
        # recorded_at is the first sighting: re-reading the trash must not rewrite it. A row DS lists
        # again as it was is not written at all (no write, no bump of the démarche's mirror generation).
        db.conn.execute(
            "INSERT INTO pending_deletions (number, demarche_number, state, reason, date_suppression, "
            "recorded_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET "
            "demarche_number = excluded.demarche_number, state = excluded.state, "
            "reason = excluded.reason, date_suppression = excluded.date_suppression "
            "WHERE pending_deletions.demarche_number IS NOT excluded.demarche_number "
            "OR pending_deletions.state IS NOT excluded.state OR pending_deletions.reason IS NOT excluded.reason "
            "OR pending_deletions.date_suppression IS NOT excluded.date_suppression",
            [number, demarche_number, node.get("state"), node.get("reason"), node.get("dateSupression"), now],
        )
        flagged += db.conn.execute(
            "UPDATE dossiers SET pending_deletion = 1, pending_deletion_date = ? "
            "WHERE number = ? AND pending_deletion = 0",
            [node.get("dateSupression"), number],
        ).rowcount
    return flagged


def clear_pending(db: sqlite_utils.Database, numbers: list[int]) -> int:
    """Unflag dossiers DS lists again (a listed dossier is not in its trash): the flag and the trash
    row go. Its own unit of work. Returns how many dossiers were unflagged."""
    flagged = 0
    with db.atomic():
        for chunk, marks in in_chunks(numbers):
            db.conn.execute(f"DELETE FROM pending_deletions WHERE number IN ({marks})", chunk)
            flagged += db.conn.execute(
                f"UPDATE dossiers SET pending_deletion = 0, pending_deletion_date = NULL "
                f"WHERE number IN ({marks}) AND pending_deletion = 1", chunk).rowcount
    return flagged


def confirm_vanished(db: sqlite_utils.Database, number: int, reason: str = "vanished") -> list[Path]:
    """Tombstone a dossier missing from DS's listing that ``dossier(number:)`` says is not found
    (the limbo, docs/ds-api.md §6). Its own unit of work (a savepoint inside the caller's transaction).
    Unknown numbers are left alone."""
    with db.atomic():
        row = db.conn.execute(
            "SELECT demarche_number, state FROM dossiers WHERE number = ? UNION ALL "
            "SELECT demarche_number, state FROM pending_deletions WHERE number = ?",
            [number, number],
        ).fetchone()
        if row is None:
            return []
        paths = _purge(db, number)
        db.conn.execute(
            "INSERT INTO tombstones (number, demarche_number, state, reason, recorded_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (number) DO NOTHING",
            [number, row[0], row[1], reason, now_utc()],
        )
    return paths


def quarantine(
    db: sqlite_utils.Database, demarche_number: int, number: int | None, error: str, raw: str | None
) -> None:
    """Record a dossier DS keeps failing on (or a page, ``number=None``); flags the dossier row.
    Its own unit of work. A dossier later saved by ``save_dossiers`` leaves the quarantine."""
    now = now_utc()
    with db.atomic():
        if number is not None and db.conn.execute(
            "UPDATE quarantine SET error = ?, raw = ?, attempts = attempts + 1, last_seen_at = ? "
            "WHERE demarche_number = ? AND dossier_number = ?",
            [error, raw, now, demarche_number, number],
        ).rowcount:
            return
        db.conn.execute(
            "INSERT INTO quarantine (demarche_number, dossier_number, error, raw, first_seen_at, "
            "last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
            [demarche_number, number, error, raw, now, now],
        )
        if number is not None:
            db.conn.execute("UPDATE dossiers SET quarantined = 1 WHERE number = ?", [number])


def clear_quarantine(db: sqlite_utils.Database, number: int) -> None:
    with db.atomic():
        db.conn.execute("DELETE FROM quarantine WHERE dossier_number = ?", [number])
        db.conn.execute("UPDATE dossiers SET quarantined = 0 WHERE number = ?", [number])


def clear_unnamed_quarantine(db: sqlite_utils.Database, demarche_number: int) -> int:
    """Forget the démarche's quarantine entries without a dossier number (pages, or dossiers DS could
    not even name), once a reconciliation found every dossier DS lists in the mirror."""
    with db.atomic():
        return db.conn.execute(
            "DELETE FROM quarantine WHERE demarche_number = ? AND dossier_number IS NULL", [demarche_number]
        ).rowcount


def _purge(db: sqlite_utils.Database, number: int) -> list[Path]:
    """Delete a dossier and everything about it (children cascade); return its local file copies."""
    paths = [
        Path(p)
        for (p,) in db.conn.execute(
            "SELECT local_path FROM files WHERE dossier_number = ? AND local_path IS NOT NULL", [number]
        )
    ]
    db.conn.execute("DELETE FROM dossiers WHERE number = ?", [number])
    db.conn.execute("DELETE FROM pending_deletions WHERE number = ?", [number])
    db.conn.execute("DELETE FROM quarantine WHERE dossier_number = ?", [number])
    return paths
