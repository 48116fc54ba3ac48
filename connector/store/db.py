"""Opening the database: the writer (pragmas, then ``store/migrations.py``) and the read-only reader.

docs/operations.md §3: WAL, ``synchronous=FULL``, a 5 s busy timeout, foreign keys on. Only the holder of the
instance lock (``connector.lock``) opens the writer; ``status`` opens the reader without the lock.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from connector import private
from connector.errors import ConnectorError, machine_fault
from connector.store.migrations import MIGRATIONS, ensure_indexes_and_views

_opened: list[Path] = []  # the databases this process opened for writing, latest last


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (creating it and its parent directories if needed) the mirror for writing.

    A new database is created 0600 in directories created 0700, whatever the umask; SQLite gives its
    ``-wal`` and ``-shm`` the database's mode. A machine fault (read-only, permission refused, disk
    full) raises :class:`connector.errors.MachineFault` naming the path."""
    path = Path(path)
    _opened.append(path)
    try:
        private.makedirs(path.parent)
        _create_private(path)
        conn = sqlite3.connect(path, timeout=5.0)
    except (OSError, sqlite3.Error) as exc:
        raise machine_fault(exc, path) or ConnectorError(f"Cannot open the database {path}: {exc}") from None
    try:
        db = sqlite_utils.Database(conn)
        # journal_mode must change outside a transaction; it is persistent in the file.
        db.enable_wal()
        # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss. The mirror
        # rows would simply be re-fetched, but the side-effect journal (docs/operations.md §5) lives in this same
        # file and its "intent recorded" commits cannot be re-fetched (docs/operations.md §3.2). A page every
        # few minutes makes the extra fsync free.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-32000")  # 32 MB of pages (default 2 MB): fewer re-reads
        MIGRATIONS.apply(db)
        ensure_indexes_and_views(db)
    except sqlite3.Error as exc:
        conn.close()
        raise machine_fault(exc, path) or ConnectorError(f"Cannot open the database {path}: {exc}") from None
    return db


def last_opened() -> Path | None:
    """The database this process opened last (what an sqlite3 error without a path is about)."""
    return _opened[-1] if _opened else None


def _create_private(path: Path) -> None:
    """Create an empty database file 0600 if there is none (SQLite would create it with 0644 & ~umask)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, private.FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def mirror_modes(config) -> list[str]:
    """``loose_modes`` of a config's mirror: the database and, when attachments are kept, their directory."""
    others = [config.sync.download_dir] if config.sync.attachments != "none" else []
    return loose_modes(config.database.path, *others)


def loose_modes(path: Path, *others: Path) -> list[str]:
    """The files and directories of the mirror (the database, its -wal/-shm, then ``others``, e.g.
    the files directory) that users other than the owner may read: one line each, with the fix."""
    path = Path(path)
    found = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), *others):
        try:
            mode = candidate.stat().st_mode & 0o777
        except OSError:
            continue
        if mode & 0o077:
            expected = private.DIR_MODE if candidate.is_dir() else private.FILE_MODE
            recursive = "-R " if candidate.is_dir() else ""
            found.append(f"{candidate} is mode {mode:04o}, readable beyond its owner (personal data): "
                         f"chmod {recursive}go-rwx {candidate} (expected {expected:04o})")
    return found


def open_db_readonly(path: Path) -> sqlite_utils.Database:
    """Open the mirror read-only (``mode=ro`` + ``query_only``), for ``status``: no lock needed."""
    path = Path(path)
    if not path.is_file():
        raise ConnectorError(f"No database at {path}: run a sync first (ds-connector sync --once).")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=2.0)
        conn.execute("PRAGMA query_only=1")
        db = sqlite_utils.Database(conn)
        pending = MIGRATIONS.pending(db)  # also the first read: a non-database fails here
    except sqlite3.DatabaseError as exc:
        raise ConnectorError(
            f"Cannot read the database {path}: {exc} (run status as the service user, "
            "e.g. runuser -u ds-connector -- ds-connector status)"
        ) from None
    if pending:
        conn.close()
        raise ConnectorError(
            f"The database {path} predates this version of ds-connector "
            f"(missing migrations: {', '.join(m.name for m in pending)}); run a sync to upgrade it."
        )
    return db
