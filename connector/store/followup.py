"""Every SQL statement of the convention follow-up: tables ``conventions`` and ``actions``, and the reads
of the mirror the follow-up needs. The tables, their indexes and the view ``convention_followup`` are
declared in ``store/shape.py`` (``FOLLOWUP_TABLES``: migrations ``0003_followup`` and ``0007_renewal``).

- ``conventions``: one row per dossier of a démarche with the convention deadline, derived from the
  mirror (rewritten in the sync page's transaction and after each sync); it goes with its dossier
  (``ON DELETE CASCADE``).
- ``followup_plans``: per deadline démarche, its last completed planning (what the after-sync
  follow-up compares to skip it); ``mirror_generations``: per démarche, the counter the triggers of
  ``shape.GENERATION_TRIGGERS`` bump in the transaction of every write to its mirror and journal
  (migration ``0009_followup_plans``).
- ``actions``: the side-effect journal (docs/operations.md §5). One row per intended write on DS, unique by
  ``dedup_key``; its state moves ``planned → sending → sent | failed | unknown`` (and ``cancelled``).
  **No foreign key to ``dossiers``**: it is the audit trail of what the connector did on DS, and must
  survive the purge of the dossier (a purge cancels the actions still ``planned``; see
  :func:`cancel_orphans`). It holds no usager data beyond the messages the academy itself sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from connector.store.sql import in_chunks, now_utc, require_transaction
from connector.store.written import recall


def _rows(db: sqlite_utils.Database, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, list(params))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


# --- reads of the mirror --------------------------------------------------------------------


_FACTS = ("number", "id", "demarche_number", "state", "archived", "date_depot", "date_passage_en_instruction",
          "date_suppression_par_usager", "date_suppression_par_administration", "connection_usager",
          "pending_deletion", "groupe_instructeur_number", "demandeur_name", "demandeur_siret", "usager_email")


def dossier_facts(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, dict[str, Any]]:
    """The columns of ``dossiers`` the follow-up reads, by number; from the page's own rows when they
    are all on the page being written (``connector.store.written``)."""
    page = recall(db, numbers)
    if page is not None:
        return {n: {c: page.dossiers[n][c] for c in _FACTS} for n in numbers}
    out: dict[int, dict[str, Any]] = {}
    for chunk, marks in in_chunks(numbers):
        for row in _rows(db, f"""
                SELECT number, id, demarche_number, state, archived, date_depot, date_passage_en_instruction,
                       date_suppression_par_usager, date_suppression_par_administration, connection_usager,
                       pending_deletion, groupe_instructeur_number, demandeur_name, demandeur_siret, usager_email
                FROM dossiers WHERE number IN ({marks})""", chunk):
            out[row["number"]] = row
    return out


def demarche_dossier_numbers(db: sqlite_utils.Database, demarche_number: int) -> list[int]:
    return [n for (n,) in db.conn.execute(
        "SELECT number FROM dossiers WHERE demarche_number = ? ORDER BY number", [demarche_number])]


def usager_messages(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each dossier's non-discarded usager messages, oldest first, each with its attachments."""
    out: dict[int, list[dict[str, Any]]] = {n: [] for n in numbers}
    by_id: dict[str, dict[str, Any]] = {}
    for chunk, marks in in_chunks(numbers):
        for row in _rows(db, f"""
                SELECT id, dossier_number, email, created_at FROM messages
                WHERE dossier_number IN ({marks}) AND sender = 'usager' AND discarded = 0
                ORDER BY dossier_number, created_at, id""", chunk):
            row["files"] = []
            out[row["dossier_number"]].append(row)
            by_id[row["id"]] = row
        for f in _rows(db, f"""
                SELECT file_key, owner_id, filename, content_type, virus_scan FROM files
                WHERE dossier_number IN ({marks}) AND owner_kind = 'message' ORDER BY file_key""", chunk):
            if f["owner_id"] in by_id:
                by_id[f["owner_id"]]["files"].append(f)
    return out


def annotation_values(db: sqlite_utils.Database, numbers: list[int],
                      descriptor_ids: list[str]) -> dict[int, dict[str, dict[str, Any]]]:
    """dossier -> descriptor id -> {champ_id, value, string_value, updated_at} for root annotations."""
    out: dict[int, dict[str, dict[str, Any]]] = {n: {} for n in numbers}
    wanted = [d for d in descriptor_ids if d]
    if not wanted or not numbers:
        return out
    for chunk, marks in in_chunks(numbers):
        for row in _rows(db, f"""
                SELECT dossier_number, descriptor_id, champ_id, value, string_value, updated_at FROM annotations
                WHERE dossier_number IN ({marks}) AND row_id IS NULL
                  AND +descriptor_id IN ({", ".join("?" * len(wanted))})""", chunk + wanted):
            # "+descriptor_id": look the dossiers up by primary key, not every dossier's annotation by descriptor
            out[row["dossier_number"]][row["descriptor_id"]] = row
    return out


def messages_of(db: sqlite_utils.Database, number: int) -> list[dict[str, Any]]:
    return _rows(db, "SELECT id, email, sender, body, created_at FROM messages WHERE dossier_number = ? "
                     "AND discarded = 0 ORDER BY created_at, id", [number])


def instructeur_by_email(db: sqlite_utils.Database, email: str) -> str | None:
    row = db.conn.execute("SELECT id FROM instructeurs WHERE lower(email) = lower(?) ORDER BY id LIMIT 1",
                          [email]).fetchone()
    return row[0] if row else None


def instructeur_in_groupe(db: sqlite_utils.Database, instructeur_id: str, groupe_number: int | None) -> bool:
    if groupe_number is None:
        return False
    return db.conn.execute(
        "SELECT 1 FROM groupe_instructeur_members WHERE groupe_instructeur_number = ? AND instructeur_id = ?",
        [groupe_number, instructeur_id]).fetchone() is not None


def newest_ds_time(db: sqlite_utils.Database) -> str | None:
    """The newest DS timestamp in the mirror (a lower bound of DS's clock): ``max(date_derniere_modification)``
    of ``dossiers``, read as the newest of each démarche (the démarches found by skipping along the
    ``(demarche_number, date_derniere_modification)`` index) — a few index seeks, not a scan."""
    row = db.conn.execute("""
        WITH RECURSIVE each(demarche) AS (
            SELECT min(demarche_number) FROM dossiers
            UNION ALL
            SELECT (SELECT min(demarche_number) FROM dossiers WHERE demarche_number > each.demarche)
            FROM each WHERE each.demarche IS NOT NULL)
        SELECT max((SELECT max(date_derniere_modification) FROM dossiers WHERE demarche_number = each.demarche))
        FROM each WHERE each.demarche IS NOT NULL""").fetchone()
    return row[0] if row else None


def demarche_declarative(db: sqlite_utils.Database, demarche_number: int) -> str | None:
    row = db.conn.execute("SELECT declarative FROM demarches WHERE number = ?", [demarche_number]).fetchone()
    return row[0] if row else None


# --- conventions ----------------------------------------------------------------------------


CONVENTION_COLUMNS = ("dossier_number", "demarche_number", "reference", "reference_at", "deadline", "status",
                      "rule", "received_at", "proof_message_id", "proof_file_key", "proof_annotation_id",
                      "next_action", "next_action_at")


def save_conventions(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> int:
    """Upsert convention rows; a row whose content did not change keeps its ``updated_at``. Returns
    how many rows changed. Inside the caller's transaction.

    The rows already stored as given are left out first (reading them back costs less than an upsert
    that changes nothing); the upsert's own ``WHERE`` still guards the others."""
    require_transaction(db, "save_conventions")
    if not rows:
        return 0
    values = [tuple(r[c] for c in CONVENTION_COLUMNS) for r in rows]
    stored = _stored_conventions(db, [v[0] for v in values])
    values = [v for v in values if stored.get(v[0]) != v]
    if not values:
        return 0
    now = now_utc()
    columns = ", ".join(CONVENTION_COLUMNS)
    changes = " OR ".join(f"conventions.{c} IS NOT excluded.{c}" for c in CONVENTION_COLUMNS[1:])
    updates = ", ".join(f"{c} = excluded.{c}" for c in CONVENTION_COLUMNS[1:])
    before = db.conn.total_changes
    db.conn.executemany(
        f"INSERT INTO conventions ({columns}, updated_at) VALUES ({', '.join('?' * (len(CONVENTION_COLUMNS) + 1))}) "
        f"ON CONFLICT (dossier_number) DO UPDATE SET {updates}, updated_at = excluded.updated_at WHERE {changes}",
        [(*v, now) for v in values],
    )
    return db.conn.total_changes - before


def _stored_conventions(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, tuple]:
    """The stored content (``CONVENTION_COLUMNS``) of these dossiers' convention rows, by number."""
    out: dict[int, tuple] = {}
    for chunk, marks in in_chunks(numbers):
        for row in db.conn.execute(f"SELECT {', '.join(CONVENTION_COLUMNS)} FROM conventions "
                                   f"WHERE dossier_number IN ({marks})", chunk):
            out[row[0]] = row
    return out


def delete_conventions(db: sqlite_utils.Database, numbers: list[int]) -> None:
    db.conn.executemany("DELETE FROM conventions WHERE dossier_number = ?", [[n] for n in numbers])


def conventions(db: sqlite_utils.Database, demarche_number: int | None = None) -> list[dict[str, Any]]:
    where, params = ("WHERE demarche_number = ?", [demarche_number]) if demarche_number else ("", [])
    return _rows(db, f"SELECT * FROM conventions {where} ORDER BY demarche_number, dossier_number", params)


def status_counts(db: sqlite_utils.Database, demarche_number: int) -> dict[str, int]:
    return statuses_by_demarche(db).get(demarche_number, {})


def statuses_by_demarche(db: sqlite_utils.Database) -> dict[int, dict[str, int]]:
    """Per démarche, how many conventions have each status, as the follow-up saved them (its
    ``conventions.evaluate`` with DS's clock, refreshed after each sync and by ``actions plan``): the
    one count ``status`` and ``actions plan`` show. Each convention has one status: no overlap."""
    out: dict[int, dict[str, int]] = {}
    for demarche, status, count in db.conn.execute(
            "SELECT demarche_number, status, count(*) FROM conventions GROUP BY demarche_number, status "
            "ORDER BY demarche_number, status"):
        out.setdefault(demarche, {})[status] = count
    return out


# --- the journal ----------------------------------------------------------------------------


@dataclass
class Action:
    id: int
    demarche_number: int
    dossier_number: int
    kind: str
    step: int
    dedup_key: str
    rule: str
    deadline: str | None
    operation: str
    payload: dict[str, Any]
    instructeur_id: str | None
    instructeur_email: str | None
    state: str
    attempts: int
    not_before: str | None
    ds_answer: str | None
    last_error: str | None
    remote_id: str | None
    created_at: str
    sending_at: str | None
    sending_ds_at: str | None
    sent_at: str | None
    updated_at: str


def _action(row: dict[str, Any]) -> Action:
    row = dict(row)
    row["payload"] = json.loads(row["payload"])
    return Action(**row)


def insert_action(db: sqlite_utils.Database, row: dict[str, Any]) -> int | None:
    """Record an intent; None when its ``dedup_key`` is already in the journal (deciding twice is
    harmless). Inside the caller's transaction."""
    require_transaction(db, "insert_action")
    now = now_utc()
    values = {**row, "payload": json.dumps(row["payload"], ensure_ascii=False, sort_keys=True),
              "state": "planned", "created_at": now, "updated_at": now}
    cursor = db.conn.execute(
        f"INSERT INTO actions ({', '.join(values)}) VALUES ({', '.join('?' * len(values))}) "
        "ON CONFLICT (dedup_key) DO NOTHING", list(values.values()))
    return cursor.lastrowid if cursor.rowcount else None


def action(db: sqlite_utils.Database, action_id: int) -> Action | None:
    rows = _rows(db, "SELECT * FROM actions WHERE id = ?", [action_id])
    return _action(rows[0]) if rows else None


def actions(db: sqlite_utils.Database, *, states: tuple[str, ...] = (), dossier: int | None = None,
            demarche: int | None = None) -> list[Action]:
    where, params = [], []
    if states:
        where.append(f"state IN ({', '.join('?' * len(states))})")
        params += list(states)
    if dossier is not None:
        where.append("dossier_number = ?")
        params.append(dossier)
    if demarche is not None:
        where.append("demarche_number = ?")
        params.append(demarche)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return [_action(r) for r in _rows(db, f"SELECT * FROM actions {clause} ORDER BY dossier_number, step, id", params)]


def dedup_keys(db: sqlite_utils.Database, dossier: int) -> dict[str, str]:
    return dict(db.conn.execute("SELECT dedup_key, state FROM actions WHERE dossier_number = ?", [dossier]))


def transition(db: sqlite_utils.Database, action_id: int, from_states: tuple[str, ...], to_state: str,
               **columns: Any) -> bool:
    """Move one action from one of ``from_states`` to ``to_state`` (compare-and-set), setting
    ``columns``; False when it was not in those states. Commits when no transaction is open."""
    columns["updated_at"] = now_utc()
    sets = ", ".join(f"{c} = ?" for c in columns)
    cursor = db.conn.execute(
        f"UPDATE actions SET state = ?, {sets} WHERE id = ? AND state IN ({', '.join('?' * len(from_states))})",
        [to_state, *columns.values(), action_id, *from_states])
    return cursor.rowcount == 1


def claim(db: sqlite_utils.Database, action_id: int, ds_now: str) -> bool:
    """planned → sending, attempts + 1 (``ds_now``: DS's clock then, for the read-back)."""
    now = now_utc()
    cursor = db.conn.execute(
        "UPDATE actions SET state = 'sending', attempts = attempts + 1, sending_at = ?, sending_ds_at = ?, "
        "updated_at = ? WHERE id = ? AND state = 'planned'", [now, ds_now, now, action_id])
    return cursor.rowcount == 1


def cancel_orphans(db: sqlite_utils.Database) -> int:
    """Cancel the planned actions of dossiers no longer in the mirror (purged): nothing to send to."""
    cursor = db.conn.execute(
        "UPDATE actions SET state = 'cancelled', last_error = 'the dossier left the mirror (deleted on DS)', "
        "updated_at = ? WHERE state = 'planned' AND dossier_number NOT IN (SELECT number FROM dossiers)",
        [now_utc()])
    return cursor.rowcount


def state_counts(db: sqlite_utils.Database) -> dict[str, int]:
    return dict(db.conn.execute("SELECT state, count(*) FROM actions GROUP BY state ORDER BY state").fetchall())


def closed_by_connector(db: sqlite_utils.Database, numbers: list[int]) -> set[int]:
    """Dossiers the connector itself classed sans suite (a sent classer_sans_suite action)."""
    if not numbers:
        return set()
    out: set[int] = set()
    for chunk, marks in in_chunks(numbers):
        out |= {n for (n,) in db.conn.execute(
            f"SELECT DISTINCT dossier_number FROM actions WHERE kind = 'classer_sans_suite' AND state = 'sent' "
            f"AND dossier_number IN ({marks})", chunk)}
    return out


def journal_keys(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for chunk, marks in in_chunks(numbers):
        for n, key, state in db.conn.execute(
                f"SELECT dossier_number, dedup_key, state FROM actions "
                f"WHERE dossier_number IN ({marks})", chunk):
            out.setdefault(n, {})[key] = state
    return out


def champ_values(db: sqlite_utils.Database, numbers: list[int], descriptor_id: str | None) -> dict[int, Any]:
    """One root champ's value per dossier. Many dossiers: one pass over the descriptor's champs (an
    ``IN`` list per chunk would walk them all again for each chunk)."""
    if not descriptor_id or not numbers:
        return {}
    out: dict[int, Any] = {}
    if len(numbers) > 500:
        wanted = set(numbers)
        for n, value in db.conn.execute("SELECT dossier_number, coalesce(value, string_value) FROM champs "
                                        "WHERE descriptor_id = ? AND row_id IS NULL", [descriptor_id]):
            if n in wanted:
                out[n] = value
        return out
    for chunk, marks in in_chunks(numbers):
        out.update(db.conn.execute(
            f"SELECT dossier_number, coalesce(value, string_value) FROM champs WHERE descriptor_id = ? "
            f"AND row_id IS NULL AND dossier_number IN ({marks})", [descriptor_id, *chunk]))
    return out


def descriptor_options(db: sqlite_utils.Database, demarche_number: int, descriptor_id: str | None) -> list[str] | None:
    if not descriptor_id:
        return None
    row = db.conn.execute("SELECT options FROM champ_descriptors WHERE demarche_number = ? AND id = ?",
                          [demarche_number, descriptor_id]).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def descriptor_type(db: sqlite_utils.Database, demarche_number: int, descriptor_id: str | None) -> str | None:
    if not descriptor_id:
        return None
    row = db.conn.execute("SELECT type FROM champ_descriptors WHERE demarche_number = ? AND id = ?",
                          [demarche_number, descriptor_id]).fetchone()
    return row[0] if row else None


# --- what the after-sync follow-up compares to pass over a démarche (``followup_plans``) --------------

OPEN_STATES = ("planned", "sending", "unknown")  # not final: a run still has something to do with them


def mirror_generation(db: sqlite_utils.Database, demarche_number: int) -> int:
    """The démarche's mirror generation: bumped by every write to its dossiers, trash, quarantine,
    tombstones, descriptor and journal (the triggers, in the writing transaction); 0 before any."""
    row = db.conn.execute("SELECT generation FROM mirror_generations WHERE demarche_number = ?",
                          [demarche_number]).fetchone()
    return row[0] if row else 0


def open_actions(db: sqlite_utils.Database, demarche_number: int) -> int:
    """The démarche's journal rows that are not final (planned, sending, unknown), every kind."""
    return db.conn.execute(
        f"SELECT count(*) FROM actions WHERE state IN ({', '.join('?' * len(OPEN_STATES))}) "
        "AND demarche_number = ?", [*OPEN_STATES, demarche_number]).fetchone()[0]


def followup_plan(db: sqlite_utils.Database, demarche_number: int) -> dict[str, Any] | None:
    """The démarche's last completed planning (a ``followup_plans`` row), or None."""
    rows = _rows(db, "SELECT * FROM followup_plans WHERE demarche_number = ?", [demarche_number])
    return rows[0] if rows else None


def save_followup_plan(db: sqlite_utils.Database, demarche_number: int, *, generation: int, planned_at: str,
                       until: str | None, config_digest: str, code_version: str) -> None:
    """Record a completed planning of the démarche (its own transaction, or the caller's)."""
    with db.atomic():
        db.conn.execute(
            "INSERT INTO followup_plans (demarche_number, generation, planned_at, until, config_digest, "
            "code_version, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (demarche_number) DO UPDATE SET "
            "generation = excluded.generation, planned_at = excluded.planned_at, until = excluded.until, "
            "config_digest = excluded.config_digest, code_version = excluded.code_version, "
            "recorded_at = excluded.recorded_at",
            [demarche_number, generation, planned_at, until, config_digest, code_version, now_utc()])


def forget_followup_plan(db: sqlite_utils.Database, demarche_number: int) -> None:
    """A planning of the démarche starts: until it completes, the next one plans (inside the caller's
    transaction or its own)."""
    with db.atomic():
        db.conn.execute("DELETE FROM followup_plans WHERE demarche_number = ?", [demarche_number])
