"""The database's shape, declared once (``store/shape.py``) and reached by migrations (``store/migrations.py``):
a mirror created by an older connector, opened by this one, ends with exactly the shape of a fresh mirror,
and keeps its rows.

``tests/data/mirror_<commit>.sql`` are SQL dumps (``sqlite3.Connection.iterdump``) of mirrors written by the
connector at that commit (``open_db`` then a few rows: a démarche, a dossier, a champ, a file, a sent
action): ``7a6264e`` had the migrations up to ``0004_cross_fingerprint``, ``59e716a`` all of those up to
``0007_renewal``. They were made with the code of that commit (``git archive <commit> connector``, run
with ``PYTHONPATH`` on it), not with this one's.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from connector.store.db import open_db
from connector.store.migrations import MIGRATIONS

DATA = Path(__file__).parent / "data"
APPLIED_NAMES = ("0001_initial", "0002_forms", "0003_followup", "run_reports", "0004_cross_fingerprint",
                 "0005_champ_rows", "0006_file_failures", "0007_renewal", "0008_ds_clock",
                 "0009_followup_plans")


def shape(path: Path) -> dict[str, object]:
    """Everything that makes a database's shape: each table's columns (type, NOT NULL, default, key),
    foreign keys and CREATE statement (its CHECKs), each index's table, uniqueness, columns and WHERE, each
    view's SELECT. Whitespace in statements is collapsed; quotes SQLite adds on a rename are dropped."""
    conn = sqlite3.connect(path)
    try:
        def norm(sql: str | None) -> str | None:
            return None if sql is None else re.sub(r"\s+", " ", sql.replace('"', "")).strip()

        out: dict[str, object] = {}
        for kind, name, table, sql in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%' "
                "ORDER BY type, name"):
            if kind == "table":
                out[f"table {name}"] = (
                    norm(sql),
                    conn.execute(f"SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo('{name}')"
                                 ).fetchall(),
                    sorted(conn.execute(f"SELECT \"table\", \"from\", \"to\", on_delete FROM "
                                        f"pragma_foreign_key_list('{name}')").fetchall()),
                )
            elif kind == "index":
                out[f"index {name}"] = (table, norm(sql),
                                        conn.execute(f"SELECT name FROM pragma_index_info('{name}')").fetchall())
            else:
                out[f"{kind} {name}"] = norm(sql)
        return out
    finally:
        conn.close()


def applied(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [n for (n,) in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("fresh") / "fresh.sqlite"
    open_db(path).conn.close()
    assert applied(path) == list(APPLIED_NAMES)
    return shape(path)


def test_migration_names_already_in_users_databases_never_change():
    assert [m.name for m in MIGRATIONS._migrations] == list(APPLIED_NAMES)


@pytest.mark.parametrize("commit", ["7a6264e", "59e716a"])
def test_a_mirror_written_by_an_older_connector_opens_with_the_fresh_shape_and_its_rows(tmp_path, fresh, commit):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript((DATA / f"mirror_{commit}.sql").read_text(encoding="utf-8"))
    old.close()
    before = applied(path)
    assert before == list(APPLIED_NAMES[:len(before)])

    db = open_db(path)
    db.conn.close()
    assert applied(path) == list(APPLIED_NAMES)
    assert shape(path) == fresh
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT number, state FROM dossiers").fetchall() == [(10, "en_construction")]
        assert conn.execute("SELECT champ_id, row_index, string_value FROM champs").fetchall() == [
            ("Q2hhbXAtMQ==", None, "Saint-Lys")]
        assert conn.execute("SELECT file_key, attempts, given_up_at FROM files").fetchall() == [("k1", 0, None)]
        assert conn.execute("SELECT id, kind, state FROM actions").fetchall() == [(1, "reminder", "sent")]
        # the journal accepts today's kinds after the rebuild (0007), with its id sequence kept
        conn.execute("INSERT INTO actions (demarche_number, dossier_number, kind, dedup_key, rule, operation, "
                     "payload, created_at, updated_at) VALUES (1, 10, 'renewal_reminder', 'k2', 'r', 'op', '{}', "
                     "'t', 't')")
        assert conn.execute("SELECT max(id) FROM actions").fetchone() == (2,)
    finally:
        conn.close()


@pytest.mark.parametrize("stop_before", APPLIED_NAMES[1:])
def test_every_step_of_the_migration_path_ends_with_the_fresh_shape(tmp_path, fresh, stop_before):
    """A mirror left after any applied migration (as a connector of that time left it: its migrations,
    then a later connector's open) ends with the shape of a fresh one."""
    path = tmp_path / "step.sqlite"
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before=stop_before)
    db.conn.close()
    assert applied(path)[-1] == APPLIED_NAMES[APPLIED_NAMES.index(stop_before) - 1]
    open_db(path).conn.close()
    assert shape(path) == fresh

