"""Opening the database: the writer (pragmas, migrations, indexes, views) and the read-only reader.

OPS.md §3: WAL, ``synchronous=FULL``, a 5 s busy timeout, foreign keys on. Only the holder of the
instance lock (``connector.lock``) opens the writer; ``status`` opens the reader without the lock.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from connector import private
from connector.errors import ConnectorError, machine_fault
from connector.store.shape import FILE_FAILURE_COLUMNS, INDEXES, TABLES, VIEWS, champ_table_rebuild_sql

MIGRATIONS = Migrations("ds_mirror")
_opened: list[Path] = []  # the databases this process opened for writing, latest last


@MIGRATIONS(name="0001_initial")
def _initial(db: sqlite_utils.Database) -> None:
    for table in TABLES:
        db.execute(table.ddl)


@MIGRATIONS(name="0002_forms")
def _forms(db: sqlite_utils.Database) -> None:
    from connector.store import forms  # it imports this module's helpers

    forms.migrate(db)


@MIGRATIONS(name="0003_followup")
def _followup(db: sqlite_utils.Database) -> None:
    from connector.store import followup

    followup.migrate(db)


@MIGRATIONS(name="run_reports")
def _run_reports(db: sqlite_utils.Database) -> None:
    """Issue 11: each run's per-démarche errors and counters, for ``status``."""
    from connector.store.status import RUN_REPORTS_DDL

    db.execute(RUN_REPORTS_DDL)


@MIGRATIONS(name="0004_cross_fingerprint")
def _cross_fingerprint(db: sqlite_utils.Database) -> None:
    from connector.store import forms

    forms.add_cross_fingerprint(db)


@MIGRATIONS(name="0005_champ_rows")
def _champ_rows(db: sqlite_utils.Database) -> None:
    """Champs keyed by their id AND their repetition row (see ``shape.champ_table_rebuild_sql``).
    Views are dropped first (a rename checks them); ``_ensure_indexes_and_views`` puts them back."""
    for (view,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall():
        db.execute(f"DROP VIEW {view}")
    for name in ("champs", "annotations"):
        for sql in champ_table_rebuild_sql(name):
            db.execute(sql)


@MIGRATIONS(name="0006_file_failures")
def _file_failures(db: sqlite_utils.Database) -> None:
    """Issue 15: a file that fails is tried again with a backoff across runs, then given up with its
    reason (``files.attempts``, ``failed_reason``, ``next_try_at``, ``given_up_at``)."""
    for ddl in FILE_FAILURE_COLUMNS:
        db.execute(f"ALTER TABLE files ADD COLUMN {ddl}")


@MIGRATIONS(name="0007_renewal")
def _renewal(db: sqlite_utils.Database) -> None:
    """Table ``renouvellements``; the journal accepts the ``renewal_reminder`` kind."""
    from connector.store import followup, renewal

    renewal.migrate(db)
    followup.allow_new_kinds(db)


@MIGRATIONS(name="0008_ds_clock")
def _ds_clock(db: sqlite_utils.Database) -> None:
    """Issue 16: each run keeps DS's clock (the Date header of its latest answer); ``status`` judges
    "overdue" by the last one seen, not by this machine's date."""
    db.execute("ALTER TABLE sync_runs ADD COLUMN ds_clock TEXT")


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
        # rows would simply be re-fetched, but the side-effect journal (OPS.md §5) lives in this same
        # file and its "intent recorded" commits cannot be re-fetched (OPS.md §3.2). A page every
        # few minutes makes the extra fsync free.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-32000")  # 32 MB of pages (default 2 MB): fewer re-reads
        MIGRATIONS.apply(db)
        _ensure_indexes_and_views(db)
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


def _ensure_indexes_and_views(db: sqlite_utils.Database) -> None:
    from connector.store import followup as followup_shape
    from connector.store import forms as forms_shape

    stored = {
        name: sql
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall()
    }
    with db.atomic():
        for name, columns in {**INDEXES, **forms_shape.INDEXES, **followup_shape.INDEXES}.items():
            db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")
        for name, select in {**VIEWS, **forms_shape.VIEWS}.items():
            create = f"CREATE VIEW {name} AS {select}"
            if stored.get(name) != create:
                db.execute(f"DROP VIEW IF EXISTS {name}")
                db.execute(create)


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
