"""The migrations that take a mirror from any earlier shape to today's (``store/shape.py``), in order.

A migration's name is recorded in the database (``_sqlite_migrations``) once it is applied: names never
change, and an applied migration is never edited in meaning (a new change is a new migration at the end).
Each one runs inside sqlite-utils' transaction for it. After them, every open re-applies the indexes,
views and triggers of the shape (``ensure_indexes_and_views``). This module imports only the shape: ``store/db.py``
opens the database and calls it.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils import Migrations

from connector.store.shape import (
    ACTIONS_DDL,
    ANOMALIES_ONE_OPEN,
    CONVENTIONS_DDL,
    CROSS_FINGERPRINT_COLUMN,
    DS_CLOCK_COLUMN,
    ENSURED_INDEXES,
    ENSURED_VIEWS,
    FILE_FAILURE_COLUMNS,
    FOLLOWUP_INDEXES,
    FOLLOWUP_VIEWS,
    FORMS_TABLES,
    GENERATION_TRIGGERS,
    RENEWAL_DDL,
    RENEWAL_INDEX,
    RUN_REPORTS,
    SKIP_TABLES,
    TABLES,
    champ_table_rebuild_sql,
)

MIGRATIONS = Migrations("ds_mirror")


@MIGRATIONS(name="0001_initial")
def _initial(db: sqlite_utils.Database) -> None:
    for table in TABLES:
        db.execute(table.ddl)


@MIGRATIONS(name="0002_forms")
def _forms(db: sqlite_utils.Database) -> None:
    """Issue 7: the forms' tables (``shape.FORMS_TABLES``), one open anomaly per dossier, code and key."""
    for table in FORMS_TABLES:
        db.execute(table.ddl)
    db.execute(ANOMALIES_ONE_OPEN)


@MIGRATIONS(name="0003_followup")
def _followup(db: sqlite_utils.Database) -> None:
    """Issue 9: ``conventions`` and the journal ``actions``, their indexes and the browsing view."""
    db.execute(CONVENTIONS_DDL)
    db.execute(ACTIONS_DDL)
    _ensure_followup_shape(db)


@MIGRATIONS(name="run_reports")
def _run_reports(db: sqlite_utils.Database) -> None:
    """Issue 11: each run's per-démarche errors and counters, for ``status``."""
    db.execute(RUN_REPORTS.ddl)


@MIGRATIONS(name="0004_cross_fingerprint")
def _cross_fingerprint(db: sqlite_utils.Database) -> None:
    """What the cross-dossier rules last read, so that a sync that changed none of it does not evaluate
    them again."""
    db.execute(f"ALTER TABLE form_profiles ADD COLUMN {CROSS_FINGERPRINT_COLUMN}")


@MIGRATIONS(name="0005_champ_rows")
def _champ_rows(db: sqlite_utils.Database) -> None:
    """Champs keyed by their id AND their repetition row (see ``shape.champ_table_rebuild_sql``).
    Views are dropped first (a rename checks them); ``ensure_indexes_and_views`` puts them back."""
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
    """Table ``renouvellements``; the journal accepts the ``renewal_reminder`` kind: ``actions`` rebuilt
    with the CHECK of today's ``shape.ACTION_KINDS`` (SQLite cannot alter a CHECK), rows and ids kept,
    its view and indexes re-created."""
    db.execute(RENEWAL_DDL)
    db.execute(RENEWAL_INDEX)
    for name in FOLLOWUP_VIEWS:
        db.execute(f"DROP VIEW IF EXISTS {name}")
    db.execute(ACTIONS_DDL.replace("CREATE TABLE actions (", "CREATE TABLE actions_new (", 1))
    db.execute("INSERT INTO actions_new SELECT * FROM actions")
    db.execute("DROP TABLE actions")
    db.execute("ALTER TABLE actions_new RENAME TO actions")
    _ensure_followup_shape(db)


@MIGRATIONS(name="0008_ds_clock")
def _ds_clock(db: sqlite_utils.Database) -> None:
    """Issue 16: each run keeps DS's clock (the Date header of its latest answer); ``status`` judges
    "overdue" by the last one seen, not by this machine's date."""
    db.execute(f"ALTER TABLE sync_runs ADD COLUMN {DS_CLOCK_COLUMN}")


@MIGRATIONS(name="0009_followup_plans")
def _followup_plans(db: sqlite_utils.Database) -> None:
    """Issue 18: each démarche's mirror generation (bumped by the triggers ``GENERATION_TRIGGERS`` in
    the transaction of every write to its dossiers, trash, quarantine, tombstones, descriptor and
    journal) and its last completed follow-up planning, so that the follow-up after a sync passes over
    a démarche where nothing can have changed."""
    for table in SKIP_TABLES:
        db.execute(table.ddl)
    for sql in GENERATION_TRIGGERS.values():
        db.execute(sql)


def _ensure_followup_shape(db: sqlite_utils.Database) -> None:
    """The follow-up's indexes and browsing view (idempotent; the view re-created when its definition
    changed)."""
    for name, columns in FOLLOWUP_INDEXES.items():
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")
    for name, select in FOLLOWUP_VIEWS.items():
        create = f"CREATE VIEW {name} AS {select}"
        stored = db.execute("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", [name]).fetchone()
        if stored is None or stored[0] != create:
            db.execute(f"DROP VIEW IF EXISTS {name}")
            db.execute(create)


def ensure_indexes_and_views(db: sqlite_utils.Database) -> None:
    """Every index, view and trigger of the shape, on every open (idempotent; a view or trigger
    re-created when its stored definition differs or it is missing)."""
    stored = {
        name: sql
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall()
    }
    triggers = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
    with db.atomic():
        for name, columns in ENSURED_INDEXES.items():
            db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")
        for name, select in ENSURED_VIEWS.items():
            create = f"CREATE VIEW {name} AS {select}"
            if stored.get(name) != create:
                db.execute(f"DROP VIEW IF EXISTS {name}")
                db.execute(create)
        for name, create in GENERATION_TRIGGERS.items():
            if triggers.get(name) != create:
                db.execute(f"DROP TRIGGER IF EXISTS {name}")
                db.execute(create)
