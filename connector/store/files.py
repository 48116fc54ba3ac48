"""Attachment bookkeeping: which files still need downloading, and recording a download.

The policy (only ``safe`` scans, PDFs first, re-query when the URL is older than its hour...) is the
engine's; this module only reads and writes the ``files`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sqlite_utils

from connector.store.sql import now_utc


def files_to_download(
    db: sqlite_utils.Database,
    demarche_number: int | None = None,
    *,
    numbers: Iterable[int] | None = None,
    owner_kind: str | None = None,
) -> list[dict]:
    """Files not downloaded yet, whatever their virus scan (``pending`` ones included: the engine
    decides), except those given up and those whose backoff (``next_try_at``) is not over; only of
    these dossiers (``numbers``) or of this
    kind of owner (``owner_kind``: message, champ, annotation) when given. Oldest dossiers first."""
    sql = (
        "SELECT f.*, d.demarche_number FROM files f JOIN dossiers d ON d.number = f.dossier_number "
        "WHERE (f.downloaded_at IS NULL OR f.checksum_ok = 0) AND f.given_up_at IS NULL "
        "AND (f.next_try_at IS NULL OR f.next_try_at <= ?)"
    )
    params: list = [now_utc()]
    if demarche_number is not None:
        sql += " AND d.demarche_number = ?"
        params.append(demarche_number)
    if owner_kind is not None:
        sql += " AND f.owner_kind = ?"
        params.append(owner_kind)
    if numbers is not None:
        numbers = list(numbers)
        if not numbers:
            return []
        sql += f" AND f.dossier_number IN ({', '.join('?' * len(numbers))})"  # uses idx_files_dossier
        params += numbers
    return list(db.query(sql + " ORDER BY f.dossier_number, f.created_at", params))


def record_file_download(
    db: sqlite_utils.Database, file_key: str, path: Path, checksum_ok: bool,
    downloaded_at: str | None = None,
) -> bool:
    """Record a finished download. False when the file row is gone (its dossier was deleted or the
    file replaced meanwhile): the engine should then unlink ``path``. Its own unit of work."""
    return not record_file_downloads(db, [(file_key, path, checksum_ok)], downloaded_at)


def record_file_downloads(
    db: sqlite_utils.Database, downloads: list[tuple[str, Path, bool]], downloaded_at: str | None = None,
) -> list[Path]:
    """Record finished downloads ``(file_key, path, checksum_ok)`` in one transaction; return the
    paths whose file row is gone (unlink them)."""
    gone = []
    when = downloaded_at or now_utc()
    with db.atomic():
        for key, path, ok in downloads:
            cursor = db.conn.execute(
                "UPDATE files SET local_path = ?, downloaded_at = ?, checksum_ok = ?, failed_reason = NULL, "
                "next_try_at = NULL WHERE file_key = ?",
                [str(path), when, int(ok), key],
            )
            if cursor.rowcount != 1:
                gone.append(path)
    return gone


def record_file_failures(db: sqlite_utils.Database, failures: list[tuple[str, str, str | None]]) -> None:
    """Record failed downloads ``(file_key, reason, next_try_at)`` in one transaction: one more
    attempt, the reason, and either the time of the next try (UTC) or, when None, given up. The file
    stays without ``local_path``: nothing of it is on disk."""
    now = now_utc()
    with db.atomic():
        db.conn.executemany(
            "UPDATE files SET attempts = attempts + 1, failed_reason = ?, next_try_at = ?, "
            "given_up_at = CASE WHEN ? IS NULL THEN ? END, local_path = NULL, downloaded_at = NULL, "
            "checksum_ok = NULL WHERE file_key = ?",
            [[reason, next_try, next_try, now, key] for key, reason, next_try in failures],
        )
