"""Migration ``0007_renewal`` on a database made before it: ``renouvellements`` appears, the journal's
rows and ids are kept, and the journal accepts the ``renewal_reminder`` kind (its CHECK rebuilt)."""

from __future__ import annotations

import sqlite3

import pytest

from connector.store import followup, shape
from connector.store.db import open_db


def _action(db, kind: str, key: str) -> int | None:
    with db.atomic():
        return followup.insert_action(db, {
            "demarche_number": 1, "dossier_number": 2, "kind": kind, "step": 0, "dedup_key": key, "rule": "r",
            "operation": "envoyer_message", "payload": {"body": "b"}})


def test_an_older_database_gets_the_table_and_keeps_its_journal(tmp_path):
    path = tmp_path / "old.sqlite"
    db = open_db(path)
    # Back to the shape before 0007: the table gone, the journal's CHECK without the new kind.
    db.execute("DROP TABLE renouvellements")
    db.execute("DROP VIEW convention_followup")
    ddl = shape.ACTIONS_DDL.replace(", 'renewal_reminder'", "")
    db.execute("DROP TABLE actions")
    db.execute(ddl)
    db.execute("DELETE FROM _sqlite_migrations WHERE name = '0007_renewal'")
    db.conn.commit()
    first = _action(db, "reminder", "reminder:2:x")
    with pytest.raises(sqlite3.IntegrityError):
        _action(db, "renewal_reminder", "renewal_reminder:1:2")
    db.conn.close()

    db = open_db(path)
    try:
        rows = followup.actions(db)
        assert [(a.id, a.kind, a.dedup_key) for a in rows] == [(first, "reminder", "reminder:2:x")]
        later = _action(db, "renewal_reminder", "renewal_reminder:1:2")
        assert later is not None and later > first
        assert db.execute("SELECT count(*) FROM renouvellements").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM convention_followup").fetchone() == (0,)  # the view is back
    finally:
        db.conn.close()
