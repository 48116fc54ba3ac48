"""Every SQL statement of the forms layer: role mappings, form summaries, schools, anomalies.

Its tables (``form_profiles``, ``form_roles``, ``dossier_forms``, ``ecoles``, ``anomalies``) and views
(``dossiers_overview``, ``anomalies_ouvertes``) are declared in ``store/shape.py`` (``FORMS_TABLES``,
``FORMS_INDEXES``, ``FORMS_VIEWS``: migrations ``0002_forms`` and ``0004_cross_fingerprint``).

Derived rows go with their dossier (``ON DELETE CASCADE`` on ``dossiers.number``). Writers run inside
the caller's transaction (the sync page's, or ``check``'s own ``db.atomic()``).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import sqlite_utils

from connector.store.sql import in_chunks, insert_many, require_transaction
from connector.store.values import day_of
from connector.store.written import recall

# A dossier whose ENT access is (or will be) open: the cross-dossier rules only count these.
LIVE_STATES = ("en_construction", "en_instruction", "accepte")
_LIVE = "('en_construction', 'en_instruction', 'accepte')"


def champ_descriptors(db: sqlite_utils.Database, demarche: int) -> list[dict]:
    """The active revision's descriptors (champs then annotations), in form order."""
    rows = db.conn.execute(
        "SELECT id, private, parent_id, position, type, label, description, required, options "
        "FROM champ_descriptors WHERE demarche_number = ? ORDER BY private, parent_id IS NOT NULL, position",
        [demarche]).fetchall()
    cols = ("id", "private", "parent_id", "position", "type", "label", "description", "required", "options")
    return [dict(zip(cols, r)) for r in rows]


def demarche_title(db: sqlite_utils.Database, demarche: int) -> str | None:
    row = db.conn.execute("SELECT title FROM demarches WHERE number = ?", [demarche]).fetchone()
    return row[0] if row else None


def demarche_facts(db: sqlite_utils.Database, demarche: int) -> tuple[str, str]:
    """What the démarche says of itself: who runs it (its service's name and organisme, from the
    descriptor DS sent, joined by " | ") and its description. Empty strings when DS sent none."""
    row = db.conn.execute(
        "SELECT json_extract(raw, '$.service.nom'), json_extract(raw, '$.service.organisme'), description "
        "FROM demarches WHERE number = ?", [demarche]).fetchone()
    if not row:
        return "", ""
    return " | ".join(t for t in row[:2] if t), row[2] or ""


def demarche_numbers(db: sqlite_utils.Database) -> list[int]:
    return [n for (n,) in db.conn.execute("SELECT number FROM demarches ORDER BY number")]


def save_resolution(db: sqlite_utils.Database, demarche: int, profile: str, detected: bool,
                    mapping: dict[str, list[tuple[str, str | None, str | None]]], problems: list[str],
                    now: str) -> dict[str, list[tuple[str, str | None]]]:
    """Record the démarche's profile and role mapping; return the previously active mapping
    (role -> [(descriptor id, label)]) so that the caller can report what a new revision dropped."""
    previous: dict[str, list[tuple[str, str | None]]] = {}
    for role, descriptor_id, label in db.conn.execute(
            "SELECT role, descriptor_id, label FROM form_roles WHERE demarche_number = ? AND active = 1",
            [demarche]):
        previous.setdefault(role, []).append((descriptor_id, label))
    db.conn.execute(
        "INSERT INTO form_profiles (demarche_number, profile, detected, problems, resolved_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (demarche_number) DO UPDATE SET profile = excluded.profile, "
        "detected = excluded.detected, problems = excluded.problems, resolved_at = excluded.resolved_at, "
        "cross_fingerprint = NULL",
        [demarche, profile, int(detected), json.dumps(problems, ensure_ascii=False), now])
    db.conn.execute("UPDATE form_roles SET active = 0 WHERE demarche_number = ?", [demarche])
    db.conn.executemany(
        "INSERT INTO form_roles (demarche_number, role, descriptor_id, label, type, active, first_seen_at, "
        "last_seen_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (demarche_number, role, descriptor_id) "
        "DO UPDATE SET label = excluded.label, type = excluded.type, active = 1, last_seen_at = excluded.last_seen_at",
        [[demarche, role, did, label, kind, now, now]
         for role, items in mapping.items() for did, label, kind in items])
    return previous


def cross_fingerprint(db: sqlite_utils.Database, demarche: int) -> str | None:
    row = db.conn.execute("SELECT cross_fingerprint FROM form_profiles WHERE demarche_number = ?",
                          [demarche]).fetchone()
    return row[0] if row else None


def set_cross_fingerprint(db: sqlite_utils.Database, demarche: int, fingerprint: str) -> None:
    require_transaction(db, "set_cross_fingerprint")
    db.conn.execute("UPDATE form_profiles SET cross_fingerprint = ? WHERE demarche_number = ?",
                    [fingerprint, demarche])


def stored_profile(db: sqlite_utils.Database, demarche: int) -> str | None:
    row = db.conn.execute("SELECT profile FROM form_profiles WHERE demarche_number = ?", [demarche]).fetchone()
    return row[0] if row else None


def role_history(db: sqlite_utils.Database, demarche: int) -> dict[str, list[tuple[str, str | None, int]]]:
    """Every descriptor ever mapped to each role: role -> [(descriptor id, label, active)]."""
    out: dict[str, list[tuple[str, str | None, int]]] = {}
    for role, did, label, active in db.conn.execute(
            "SELECT role, descriptor_id, label, active FROM form_roles WHERE demarche_number = ? "
            "ORDER BY active DESC, last_seen_at DESC", [demarche]):
        out.setdefault(role, []).append((did, label, active))
    return out


# --- Reading a dossier ------------------------------------------------------------------------------


_CHAMP_COLS = ("champ_id", "descriptor_id", "parent_id", "row_id", "row_index", "position", "label", "type",
               "string_value", "value")
_DOSSIER_COLS = ("number", "demarche_number", "state", "demandeur_type", "demandeur_siret", "demandeur_name",
                 "date_depot", "date_traitement", "date_passage_en_instruction", "pending_deletion")


def _marks(items: list) -> str:
    return ", ".join("?" * len(items))


def dossier_rows(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, dict]:
    """The mirror rows of these dossiers (those in the mirror), by number; from the page's own rows
    when they are all on the page being written (``connector.store.written``)."""
    page = recall(db, numbers)
    if page is not None:
        return {n: {c: page.dossiers[n][c] for c in _DOSSIER_COLS} for n in numbers}
    out: dict[int, dict] = {}
    for chunk, marks in in_chunks(list(numbers)):
        for r in db.conn.execute(
                f"SELECT {', '.join(_DOSSIER_COLS)} FROM dossiers WHERE number IN ({marks})", chunk):
            out[r[0]] = dict(zip(_DOSSIER_COLS, r))
    return out


def champs_by_dossier(db: sqlite_utils.Database, numbers: list[int], private: bool = False,
                      wanted: set[str] | None = None, current: set[str] = frozenset()) -> dict[int, list[dict]]:
    """The champs (or annotations) of these dossiers, by dossier, in form order: top-level ones by
    position, each repetition's cells after it by row then position. A dossier without any is absent.
    With ``wanted`` (descriptor ids), only those champs, the repetitions' cells and the champs whose
    descriptor is not one of ``current`` (the active revision's)."""
    page = recall(db, numbers)
    if page is not None:
        return _page_champs(page.annotations if private else page.champs, numbers, wanted, current)
    table = "annotations" if private else "champs"
    select = f"SELECT {', '.join(_CHAMP_COLS)}, dossier_number FROM {table} WHERE dossier_number IN "
    order = " ORDER BY dossier_number, parent_id IS NOT NULL, row_index, position"
    ids, active = sorted(wanted or ()), sorted(current)
    out: dict[int, list[dict]] = {}
    for chunk, marks in in_chunks(list(numbers)):
        if wanted is None:
            cursor = db.conn.execute(f"{select}({marks}){order}", chunk)
        else:
            cursor = db.conn.execute(
                f"{select}({marks}) AND (descriptor_id IN ({_marks(ids)}) OR parent_id IS NOT NULL "
                f"OR (descriptor_id <> '' AND descriptor_id NOT IN ({_marks(active)}))){order}",
                [*chunk, *ids, *active])
        for row in cursor.fetchall():  # zip stops before the last column, the dossier's number
            out.setdefault(row[-1], []).append(dict(zip(_CHAMP_COLS, row)))
    return out


def _page_champs(rows: dict[int, list[tuple]], numbers: list[int], wanted: set[str] | None,
                 current: set[str]) -> dict[int, list[dict]]:
    """``champs_by_dossier`` on the rows of the page being written (``save.CHAMP_COLUMNS`` tuples):
    the same filter (SQL's NULLs included: a champ without descriptor id is kept only as a cell of a
    repetition) and the same order (NULL row index first)."""
    out: dict[int, list[dict]] = {}
    for number in dict.fromkeys(numbers):
        kept = [r for r in rows.get(number, ())
                if wanted is None or r[3] is not None
                or (r[2] is not None and (r[2] in wanted or (r[2] != "" and r[2] not in current)))]
        if kept:
            kept.sort(key=lambda r: (r[3] is not None, -1 if r[5] is None else r[5], r[6]))
            out[number] = [dict(zip(_CHAMP_COLS, r[1:11])) for r in kept]
    return out


def dossier_numbers(db: sqlite_utils.Database, demarche: int | None = None) -> list[int]:
    if demarche is None:
        return [n for (n,) in db.conn.execute("SELECT number FROM dossiers ORDER BY number")]
    return [n for (n,) in db.conn.execute(
        "SELECT number FROM dossiers WHERE demarche_number = ? ORDER BY number", [demarche])]


def demarche_of(db: sqlite_utils.Database, number: int) -> int | None:
    row = db.conn.execute("SELECT demarche_number FROM dossiers WHERE number = ?", [number]).fetchone()
    return row[0] if row else None


# --- Writing what a dossier's form says -------------------------------------------------------------


def save_dossier_forms(db: sqlite_utils.Database, rows: list[dict], ecoles: list[dict]) -> None:
    """Replace the form summaries of these dossiers and their schools (one transaction with the
    caller's page). ``ecoles``: every school of these dossiers, in dossier then position order."""
    require_transaction(db, "save_dossier_forms")
    numbers = [r["dossier_number"] for r in rows]
    for chunk, marks in in_chunks(numbers):
        db.conn.execute(f"DELETE FROM ecoles WHERE dossier_number IN ({marks})", chunk)
        db.conn.execute(f"DELETE FROM dossier_forms WHERE dossier_number IN ({marks})", chunk)
    insert_many(db, "dossier_forms", rows)
    insert_many(db, "ecoles", ecoles)


def forget_dossier_forms(db: sqlite_utils.Database, numbers: list[int]) -> None:
    """Remove the form summaries and schools of these dossiers (their démarche has no form profile)."""
    require_transaction(db, "forget_dossier_forms")
    for chunk, marks in in_chunks(numbers):
        db.conn.execute(f"DELETE FROM ecoles WHERE dossier_number IN ({marks})", chunk)
        db.conn.execute(f"DELETE FROM dossier_forms WHERE dossier_number IN ({marks})", chunk)


def sync_anomalies(db: sqlite_utils.Database, dossier_numbers: Iterable[int], codes: Iterable[str],
                   found: list[dict], now: str) -> tuple[int, int]:
    """Make the open anomalies of ``codes`` on these dossiers exactly ``found`` (dicts with demarche_number,
    dossier_number, code, severity, champ, key, message): new ones open, those still there get
    ``last_seen_at`` (and the current message), those gone are resolved (kept, with ``resolved_at``).
    Returns (opened, resolved)."""
    require_transaction(db, "sync_anomalies")
    numbers, codes = list(dossier_numbers), list(codes)
    if not numbers or not codes:
        return 0, 0
    open_rows: dict[tuple[int, str, str], int] = {}
    for chunk, marks in in_chunks(numbers):
        for aid, number, code, key in db.conn.execute(
                f"SELECT id, dossier_number, code, key FROM anomalies WHERE resolved_at IS NULL "
                f"AND dossier_number IN ({marks}) "
                f"AND code IN ({', '.join('?' * len(codes))})", [*chunk, *codes]):
            open_rows[(number, code, key)] = aid
    seen: set[int] = set()
    new_rows: list[tuple] = []
    still = []
    for a in found:
        aid = open_rows.get((a["dossier_number"], a["code"], a["key"]))
        if aid is None:
            new_rows.append((a["demarche_number"], a["dossier_number"], a["code"], a["severity"], a["champ"],
                             a["key"], a["message"], now, now))
        else:
            seen.add(aid)
            still.append((now, a["message"], a["severity"], a["champ"], aid))
    db.conn.executemany("UPDATE anomalies SET last_seen_at = ?, message = ?, severity = ?, champ = ? "
                        "WHERE id = ?", still)
    gone = [aid for aid in open_rows.values() if aid not in seen]
    db.conn.executemany("UPDATE anomalies SET resolved_at = ? WHERE id = ?", [(now, aid) for aid in gone])
    db.conn.executemany(
        "INSERT INTO anomalies (demarche_number, dossier_number, code, severity, champ, key, message, "
        "first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", new_rows)
    return len(new_rows), len(gone)


# --- Cross-dossier facts ----------------------------------------------------------------------------


def shared_schools(db: sqlite_utils.Database, demarche: int) -> list[tuple[str, int, str | None]]:
    """(uai, dossier number, siret) of every valid school listed by live dossiers of two or more
    collectivités (distinct SIRETs) of the démarche."""
    return db.conn.execute(
        f"""
        WITH live AS (
            SELECT e.uai, e.dossier_number, coalesce(f.siret, d.demandeur_siret, '#' || d.number) AS siret
            FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number
            LEFT JOIN dossier_forms f ON f.dossier_number = e.dossier_number
            WHERE e.demarche_number = ? AND e.uai_valide = 1 AND d.state IN {_LIVE} AND d.pending_deletion = 0
        )
        SELECT DISTINCT uai, dossier_number, siret FROM live
        WHERE uai IN (SELECT uai FROM live GROUP BY uai HAVING count(DISTINCT siret) > 1)
        ORDER BY uai, dossier_number""", [demarche]).fetchall()


def shared_sirets(db: sqlite_utils.Database, demarche: int) -> list[tuple[str, int]]:
    """(siret, dossier number) of every SIRET that has two or more live dossiers in the démarche."""
    return db.conn.execute(
        f"""
        WITH live AS (
            SELECT d.number, coalesce(f.siret, d.demandeur_siret) AS siret
            FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number
            WHERE d.demarche_number = ? AND d.state IN {_LIVE} AND d.pending_deletion = 0
        )
        SELECT siret, number FROM live
        WHERE siret IN (SELECT siret FROM live WHERE siret IS NOT NULL GROUP BY siret HAVING count(*) > 1)
        ORDER BY siret, number""", [demarche]).fetchall()


# --- Reading for exports and the demo ---------------------------------------------------------------


def table_exists(db: sqlite_utils.Database, name: str) -> bool:
    return db.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() \
        is not None


def query(db: sqlite_utils.Database, sql: str, params: list[Any] | None = None) -> list[dict]:
    cursor = db.conn.execute(sql, params or [])
    cols = [c[0] for c in cursor.description]
    return [dict(zip(cols, r)) for r in cursor.fetchall()]


def _days(rows: list[dict], key: str) -> list[dict]:
    """``rows`` with the instant in ``key`` turned into its Paris day (``values.day_of``: never the
    string's first 10 characters, which are the UTC day of the connector's own timestamps). A text
    that is no ISO date stays as it is (shown as DS wrote it rather than the export failing)."""
    for r in rows:
        try:
            r[key] = day_of(r[key])
        except ValueError:
            pass
    return rows


def open_anomaly_counts(db: sqlite_utils.Database, demarche: int | None = None) -> list[tuple[int, str, str, int]]:
    """(démarche, code, severity, open anomalies) per rule."""
    where, params = ("AND demarche_number = ?", [demarche]) if demarche else ("", [])
    return db.conn.execute(
        f"SELECT demarche_number, code, severity, count(*) FROM anomalies WHERE resolved_at IS NULL {where} "
        "GROUP BY demarche_number, code, severity ORDER BY demarche_number, code", params).fetchall()


# --- Exports ----------------------------------------------------------------------------------------

_WAS_ACCEPTED = ("EXISTS (SELECT 1 FROM json_each(d.raw, '$.traitements') t "
                 "WHERE json_extract(t.value, '$.event') IN ('accepte', 'accepte_automatiquement'))")


# The collectivité's name on every export, never empty: the form's collectivité champ, else the
# demandeur's raison sociale (a PersonneMoraleIncomplete has none), else the commune(s) of its schools,
# else a marker naming the dossier.
_COLLECTIVITE = """coalesce(nullif(trim(f.collectivite), ''), nullif(trim(d.demandeur_name), ''),
        (SELECT group_concat(c, ', ') FROM (SELECT DISTINCT trim(s.commune) AS c FROM ecoles s
         WHERE s.dossier_number = d.number AND trim(s.commune) <> '' ORDER BY c)),
        '(sans nom : dossier ' || d.number || ')')"""


def _demarche_filter(demarches: list[int], column: str = "d.demarche_number") -> tuple[str, list]:
    """Only these démarches; an empty list selects nothing (never "every démarche")."""
    return f" AND {column} IN ({', '.join('?' * len(demarches))})", list(demarches)


def export_ecoles(db: sqlite_utils.Database, demarches: list[int]) -> list[dict]:
    where, params = _demarche_filter(demarches)
    return query(db, f"""
        SELECT d.demarche_number AS demarche, d.number AS dossier, d.state AS etat, e.position + 1 AS rang,
               e.uai_saisi, e.uai, e.uai_valide, e.nom AS ecole, e.commune,
               coalesce(f.siret, d.demandeur_siret) AS siret, {_COLLECTIVITE} AS collectivite
        FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number
        LEFT JOIN dossier_forms f ON f.dossier_number = d.number
        WHERE 1 = 1{where} ORDER BY d.demarche_number, d.number, e.position""", params)


def export_openings(db: sqlite_utils.Database, demarches: list[int], need_convention: set[int]) -> list[dict]:
    """Valid schools of accepted dossiers (not in DS's trash), one line per school and dossier; for the
    démarches in ``need_convention``, only dossiers whose signed convention was obtained (table
    ``conventions`` of the deadlines layer: status received_on_time or received_late). Without that
    table, no convention counts as obtained yet: those démarches list nothing."""
    where, params = _demarche_filter(demarches)
    if need_convention:
        marks = ", ".join("?" * len(need_convention))
        if table_exists(db, "conventions"):
            convention = (f" AND (d.demarche_number NOT IN ({marks}) OR EXISTS (SELECT 1 FROM conventions c "
                          "WHERE c.dossier_number = d.number AND c.status IN ('received_on_time', 'received_late')))")
        else:
            convention = f" AND d.demarche_number NOT IN ({marks})"
        params += sorted(need_convention)
    else:
        convention = ""
    return _days(query(db, f"""
        SELECT e.uai, min(e.nom) AS ecole, min(e.commune) AS commune,
               coalesce(f.siret, d.demandeur_siret) AS siret, {_COLLECTIVITE} AS collectivite,
               d.number AS dossier, d.date_traitement AS date, d.demarche_number AS demarche
        FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number
        LEFT JOIN dossier_forms f ON f.dossier_number = d.number
        WHERE d.state = 'accepte' AND d.pending_deletion = 0 AND e.uai_valide = 1{where}{convention}
        GROUP BY d.number, e.uai
        ORDER BY d.demarche_number, e.uai, d.number""", params), "date")


def export_closings(db: sqlite_utils.Database, demarches: list[int]) -> list[dict]:
    """Valid schools of dossiers classés sans suite or refused after having been accepted (their access
    may have been opened): the date is the closing decision's."""
    where, params = _demarche_filter(demarches)
    return _days(query(db, f"""
        SELECT e.uai, min(e.nom) AS ecole, min(e.commune) AS commune,
               coalesce(f.siret, d.demandeur_siret) AS siret, {_COLLECTIVITE} AS collectivite,
               d.number AS dossier, d.date_traitement AS date, d.state AS etat,
               d.demarche_number AS demarche
        FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number
        LEFT JOIN dossier_forms f ON f.dossier_number = d.number
        WHERE d.state IN ('sans_suite', 'refuse') AND e.uai_valide = 1 AND {_WAS_ACCEPTED}{where}
        GROUP BY d.number, e.uai
        ORDER BY d.demarche_number, e.uai, d.number""", params), "date")


def export_anomalies(db: sqlite_utils.Database, demarches: list[int]) -> list[dict]:
    """The open anomalies; ``depuis``: the Paris day the anomaly was first seen."""
    where, params = _demarche_filter(demarches, "a.demarche_number")
    return _days(query(db, f"""
        SELECT a.demarche_number AS demarche, a.dossier_number AS dossier, d.state AS etat,
               {_COLLECTIVITE} AS collectivite, a.code, a.severity AS gravite,
               a.champ, a.message, a.first_seen_at AS depuis
        FROM anomalies a JOIN dossiers d ON d.number = a.dossier_number
        LEFT JOIN dossier_forms f ON f.dossier_number = d.number
        WHERE a.resolved_at IS NULL{where}
        ORDER BY a.demarche_number, a.dossier_number, a.severity, a.code, a.key""", params), "depuis")


def open_error_codes(db: sqlite_utils.Database, dossiers: list[int]) -> dict[int, list[str]]:
    """The codes of the rules with an open error anomaly, per dossier (dossiers without one absent)."""
    out: dict[int, list[str]] = {}
    for chunk, marks in in_chunks(list(dossiers)):
        for number, code in db.conn.execute(
                f"SELECT DISTINCT dossier_number, code FROM anomalies WHERE resolved_at IS NULL "
                f"AND severity = 'error' AND dossier_number IN ({marks}) ORDER BY dossier_number, code", chunk):
            out.setdefault(number, []).append(code)
    return out


def dossiers_to_evaluate(db: sqlite_utils.Database, demarche: int) -> list[int]:
    """Dossiers never evaluated, or saved by a sync since their last evaluation."""
    return [n for (n,) in db.conn.execute(
        "SELECT d.number FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number "
        "WHERE d.demarche_number = ? AND (f.evaluated_at IS NULL OR f.evaluated_at < d.synced_at) "
        "ORDER BY d.number", [demarche])]
