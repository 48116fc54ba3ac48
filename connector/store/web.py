"""Every SQL statement of the web view (``ds-connector serve``): read-only, on a ``mode=ro`` connection.

The campaign page's headline figures are NOT here: they come from :func:`connector.status.gather`
(``store/status.py``), so that the page shows exactly what ``ds-connector status --json`` says. What is
here completes them (breakdowns, the lists behind them) and serves the lists and the dossier page.

Lists are described by :class:`ListSpec` (columns, searchable columns, filters and sortable columns are
whitelists: nothing a visitor types becomes SQL text, only bound parameters). A page is read in three
statements (:func:`list_page`): the count, the page's rowids (filtered, sorted, ``LIMIT``/``OFFSET``,
joining the wide ``dossiers`` rows only when a filter, the search or the sort needs them), then every
column, correlated counts included, for those 100 rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from connector.store.status import recent_runs

PAGE_SIZE = 100  # rows of a list page; ListSpec pages bind one parameter per row
SIGNATORY_ROLES = ("collectivite", "siret", "commune", "departement", "signataire_nom", "signataire_prenom",
                   "signataire_qualite", "signataire_qualite_autre", "email", "telephone")


def _rows(db: sqlite_utils.Database, sql: str, params: list | tuple | dict = ()) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, params if isinstance(params, dict) else list(params))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _one(db: sqlite_utils.Database, sql: str, params: list | tuple = ()) -> dict[str, Any] | None:
    rows = _rows(db, sql, params)
    return rows[0] if rows else None


# --- the campaign page ---------------------------------------------------------------------------


def demarches(db: sqlite_utils.Database) -> dict[int, str | None]:
    """Every démarche of the mirror: number -> title."""
    return dict(db.conn.execute("SELECT number, title FROM demarches ORDER BY number").fetchall())


def convention_counts(db: sqlite_utils.Database, demarche: int) -> dict[str, int]:
    """Conventions of the démarche by status (every status the table holds)."""
    return dict(db.conn.execute("SELECT status, count(*) FROM conventions WHERE demarche_number = ? "
                                "GROUP BY status ORDER BY status", [demarche]).fetchall())


def conventions_due(db: sqlite_utils.Database, demarche: int, today: date, within_days: int,
                    limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """The awaited conventions due from ``today`` to ``today + within_days`` (status's
    ``due_within_15_days`` criterion), soonest first."""
    soon = (today + timedelta(days=within_days)).isoformat()
    return _rows(db, """
        SELECT c.dossier_number, coalesce(f.collectivite, d.demandeur_name) AS collectivite, c.deadline,
               CAST(julianday(date(c.deadline)) - julianday(date(?)) AS INTEGER) AS days_left
        FROM conventions c JOIN dossiers d ON d.number = c.dossier_number
        LEFT JOIN dossier_forms f ON f.dossier_number = c.dossier_number
        WHERE c.demarche_number = ? AND c.status = 'awaiting' AND c.deadline IS NOT NULL
          AND date(c.deadline) >= date(?) AND date(c.deadline) <= date(?)
        ORDER BY date(c.deadline), c.dossier_number LIMIT ?""",
                 [today.isoformat(), demarche, today.isoformat(), soon, limit])


def action_counts(db: sqlite_utils.Database, demarche: int) -> list[dict[str, Any]]:
    """Actions of the démarche by kind and state."""
    return _rows(db, "SELECT kind, state, count(*) AS n FROM actions WHERE demarche_number = ? "
                     "GROUP BY kind, state ORDER BY kind, state", [demarche])


def troubled_actions(db: sqlite_utils.Database, demarche: int, limit: int = 50) -> list[dict[str, Any]]:
    """Failed and unknown actions with their reason (DS's answer or the error), latest first."""
    return _rows(db, """
        SELECT id, dossier_number, kind, state, attempts, last_error, ds_answer, updated_at FROM actions
        WHERE demarche_number = ? AND state IN ('failed', 'unknown') ORDER BY updated_at DESC, id DESC LIMIT ?""",
                 [demarche, limit])


def anomaly_counts(db: sqlite_utils.Database, demarche: int) -> list[dict[str, Any]]:
    """Open anomalies of the démarche by rule (code; a rule has one severity), most frequent first, each
    with one of its messages as an example."""
    counts = db.conn.execute("SELECT code, count(*) FROM anomalies WHERE demarche_number = ? AND resolved_at IS NULL "
                             "GROUP BY code", [demarche]).fetchall()  # the partial index idx_anomalies_open
    out = []
    for code, n in sorted(counts, key=lambda c: (-c[1], c[0])):
        one = _one(db, "SELECT severity, message FROM anomalies WHERE demarche_number = ? AND code = ? "
                       "AND resolved_at IS NULL LIMIT 1", [demarche, code])
        out.append({"code": code, "severity": one["severity"], "n": n, "example": one["message"]})
    return out


def last_runs(db: sqlite_utils.Database, demarche: int, count: int = 10) -> list[dict[str, Any]]:
    """The démarche's last sync runs (``status``'s reading of ``sync_runs`` and ``run_reports``)."""
    return [r for r in recent_runs(db, 200) if demarche in r["demarches"]][:count]


# --- lists ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListSpec:
    """One list of a démarche. ``table`` is the main table with its alias (``"ecoles e"``), ``joins``
    alias -> ``LEFT JOIN`` clause; ``columns`` name -> SQL expression (correlated subqueries welcome:
    they run for the page's rows only). ``search`` expressions are matched with LIKE, ``number_search``
    exactly when the search text is a number; ``filters`` name -> value -> condition; ``sorts`` name ->
    expression (or expressions). A join is read to filter, search or sort only when one of those expressions names its
    alias (the dossiers' rows are wide: joining them for nothing costs a page read per row)."""

    table: str
    columns: dict[str, str]
    search: tuple[str, ...]
    number_search: str | None
    filters: dict[str, dict[str, str]]
    sorts: dict[str, str | tuple[str, ...]]
    default_sort: str
    joins: dict[str, str] = field(default_factory=dict)

    @property
    def alias(self) -> str:
        return self.table.split()[1]


_COLLECTIVITE = "coalesce(f.collectivite, d.demandeur_name)"
_DOSSIER_STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")


def _in_state(key: str, state: str) -> str:
    """The dossier is in ``state``, read from the index on dossiers(demarche_number, state), not its row."""
    return f"{key} IN (SELECT number FROM dossiers WHERE demarche_number = :demarche AND state = '{state}')"


def _joins(key: str) -> dict[str, str]:
    """The dossier (``d``) and its form summary (``f``) of a table whose dossier column is ``key``."""
    return {"d": f"LEFT JOIN dossiers d ON d.number = {key}",
            "f": f"LEFT JOIN dossier_forms f ON f.dossier_number = {key}"}


LISTS: dict[str, ListSpec] = {
    "dossiers": ListSpec(
        table="dossiers d",
        joins={"f": "LEFT JOIN dossier_forms f ON f.dossier_number = d.number"},
        columns={"dossier": "d.number", "collectivite": _COLLECTIVITE, "siret": "coalesce(f.siret, d.demandeur_siret)",
                 "state": "d.state", "date_depot": "d.date_depot", "nombre_ecoles": "f.nombre_ecoles",
                 "modified": "d.date_derniere_modification",
                 "anomalies": "(SELECT count(*) FROM anomalies t WHERE t.dossier_number = d.number "
                              "AND t.resolved_at IS NULL)"},
        search=(_COLLECTIVITE, "coalesce(f.siret, d.demandeur_siret)"),
        number_search="d.number",
        filters={"state": {s: f"d.state = '{s}'" for s in _DOSSIER_STATES}},
        sorts={"dossier": "d.number", "collectivite": _COLLECTIVITE, "state": "d.state", "date_depot": "d.date_depot",
               "modified": "d.date_derniere_modification"},
        default_sort="dossier",
    ),
    "conventions": ListSpec(
        table="conventions c",
        joins=_joins("c.dossier_number"),
        columns={"dossier": "c.dossier_number", "collectivite": _COLLECTIVITE, "state": "d.state",
                 "status": "c.status", "deadline": "c.deadline",
                 "days_left": "CAST(julianday(date(c.deadline)) - julianday(date(:today)) AS INTEGER)",
                 "received_at": "c.received_at",
                 "proof": "CASE WHEN c.proof_message_id IS NOT NULL THEN 'message' "
                          "WHEN c.proof_file_key IS NOT NULL THEN 'fichier' "
                          "WHEN c.proof_annotation_id IS NOT NULL THEN 'annotation' END",
                 "reminders_sent": "(SELECT count(*) FROM actions t WHERE t.dossier_number = c.dossier_number "
                                   "AND t.kind = 'reminder' AND t.state = 'sent')",
                 "next_action": "c.next_action", "next_action_at": "c.next_action_at"},
        search=(_COLLECTIVITE,),
        number_search="c.dossier_number",
        filters={"status": {s: f"c.status = '{s}'" for s in
                            ("awaiting", "received_on_time", "received_late", "overdue", "to_review", "to_confirm",
                             "not_applicable")},
                 "due": {"15": "c.status = 'awaiting' AND c.deadline IS NOT NULL AND date(c.deadline) >= date(:today) "
                               "AND date(c.deadline) <= date(:today, '+15 days')",
                         # status's "overdue" figure: overdue, or awaited past the deadline
                         "past": "c.status = 'overdue' OR (c.status = 'awaiting' AND c.deadline IS NOT NULL "
                                 "AND date(c.deadline) < date(:today))"}},
        sorts={"dossier": "c.dossier_number", "collectivite": _COLLECTIVITE, "status": "c.status",
               "deadline": "date(c.deadline)", "received_at": "c.received_at"},
        default_sort="deadline",
    ),
    "anomalies": ListSpec(
        table="anomalies a",
        joins=_joins("a.dossier_number"),
        columns={"dossier": "a.dossier_number", "collectivite": _COLLECTIVITE, "code": "a.code",
                 "severity": "a.severity", "champ": "a.champ", "message": "a.message",
                 "since": "a.first_seen_at", "last_seen": "a.last_seen_at", "resolved_at": "a.resolved_at"},
        search=("a.message", "a.champ", "a.code", _COLLECTIVITE),
        number_search="a.dossier_number",
        filters={"open": {"1": "a.resolved_at IS NULL", "0": "a.resolved_at IS NOT NULL"},
                 "severity": {"error": "a.severity = 'error'", "warning": "a.severity = 'warning'"}},
        sorts={"dossier": "a.dossier_number", "code": "a.code", "severity": "a.severity", "since": "a.first_seen_at",
               "collectivite": _COLLECTIVITE},
        default_sort="since",
    ),
    "actions": ListSpec(
        table="actions x",
        columns={"id": "x.id", "dossier": "x.dossier_number", "kind": "x.kind", "state": "x.state",
                 "rule": "x.rule", "created_at": "x.created_at", "sent_at": "x.sent_at", "updated_at": "x.updated_at",
                 "attempts": "x.attempts", "ds_answer": "x.ds_answer", "last_error": "x.last_error"},
        search=("x.last_error", "x.ds_answer", "x.rule"),
        number_search="x.dossier_number",
        filters={"state": {s: f"x.state = '{s}'" for s in ("planned", "sending", "sent", "failed", "unknown",
                                                          "cancelled")},
                 "kind": {k: f"x.kind = '{k}'" for k in ("reminder", "closure_message", "closure_annotations",
                                                         "passer_en_instruction", "repasser_en_instruction",
                                                         "classer_sans_suite")}},
        sorts={"id": "x.id", "dossier": "x.dossier_number", "kind": "x.kind", "state": "x.state",
               "updated_at": "x.updated_at"},
        default_sort="id",
    ),
    "ecoles": ListSpec(
        table="ecoles e",
        joins=_joins("e.dossier_number"),
        columns={"uai": "e.uai", "uai_saisi": "e.uai_saisi", "uai_valide": "e.uai_valide", "nom": "e.nom",
                 "commune": "e.commune", "dossier": "e.dossier_number", "collectivite": _COLLECTIVITE,
                 "state": "d.state"},
        search=("e.uai", "e.uai_saisi", "e.nom", "e.commune", _COLLECTIVITE),
        number_search="e.dossier_number",
        filters={"valid": {"1": "e.uai_valide = 1", "0": "e.uai_valide = 0"},
                 "state": {s: _in_state("e.dossier_number", s) for s in _DOSSIER_STATES}},
        sorts={"dossier": ("e.dossier_number", "e.position"), "uai": "e.uai", "nom": "e.nom", "commune": "e.commune",
               "collectivite": _COLLECTIVITE},
        default_sort="uai",  # idx_ecoles_demarche_uai: no sort of the démarche's schools
    ),
}


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def list_page(db: sqlite_utils.Database, name: str, demarche: int, *, today: date, search: str = "",
              filters: dict[str, str] | None = None, sort: str | None = None, descending: bool = False,
              page: int = 1, size: int = PAGE_SIZE) -> Page:
    """One page of the list ``name`` for a démarche, in three statements: the count, the page's rowids
    (filtered, sorted, LIMIT/OFFSET), their columns. Filter values and sorts not in the spec are
    ignored; the search is a LIKE on the spec's text columns, or the dossier number when it is one
    (up to 9 digits)."""
    spec = LISTS[name]
    alias = spec.alias
    params: dict[str, Any] = {"demarche": demarche, "today": today.isoformat()}
    conditions = [f"{alias}.demarche_number = :demarche"]
    for fname, value in (filters or {}).items():
        condition = spec.filters.get(fname, {}).get(value)
        if condition:
            conditions.append(f"({condition})")
    text = search.strip()
    if text:
        likes = [f"{expr} LIKE :like ESCAPE '\\'" for expr in spec.search]
        if spec.number_search and text.isdigit() and len(text) <= 9:  # a dossier number (a SIRET has 14 digits)
            likes = [f"{spec.number_search} = :number"]
            params["number"] = int(text)
        params["like"] = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append("(" + " OR ".join(likes) + ")")
    where = " AND ".join(conditions)
    direction = "DESC" if descending else "ASC"
    keys = spec.sorts.get(sort or spec.default_sort, spec.sorts[spec.default_sort])
    keys = keys if isinstance(keys, tuple) else (keys,)
    # Plain column order (SQLite puts NULLs first ascending): an index on the sort column then serves
    # the ORDER BY without sorting every row of the démarche.
    order = ", ".join(f"{k} {direction}" for k in keys) + f", {alias}.rowid {direction}"
    used = " ".join(spec.joins[a] for a in spec.joins if f"{a}." in where or f"{a}." in order)
    total = db.conn.execute(f"SELECT count(*) FROM {spec.table} {used} WHERE {where}", params).fetchone()[0]
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    rowids = [r for (r,) in db.conn.execute(
        f"SELECT {alias}.rowid FROM {spec.table} {used} WHERE {where} ORDER BY {order} LIMIT :limit OFFSET :offset",
        {**params, "limit": size, "offset": (page - 1) * size})]
    columns = ", ".join(f"{sql} AS {col}" for col, sql in spec.columns.items())
    marks = ", ".join(f":r{i}" for i in range(len(rowids)))
    found: dict[int, dict[str, Any]] = {}
    if rowids:
        for row in _rows(db, f"SELECT {alias}.rowid AS _rowid, {columns} FROM {spec.table} "
                             f"{' '.join(spec.joins.values())} WHERE {alias}.rowid IN ({marks})",
                         {"today": params["today"], **{f"r{i}": r for i, r in enumerate(rowids)}}):
            found[row.pop("_rowid")] = row
    return Page(rows=[found[r] for r in rowids if r in found], total=total, page=page, pages=pages)

# --- the dossier page ----------------------------------------------------------------------------


def dossier(db: sqlite_utils.Database, number: int) -> dict[str, Any] | None:
    """The dossier's row (without its raw JSON) with its form's summary and groupe instructeur."""
    return _one(db, """
        SELECT d.number, d.demarche_number, d.state, d.archived, d.date_depot, d.date_passage_en_instruction,
               d.date_traitement, d.date_derniere_modification, d.motivation, d.usager_email, d.demandeur_type,
               coalesce(f.siret, d.demandeur_siret) AS siret,
               coalesce(f.collectivite, d.demandeur_name) AS collectivite,
               d.pending_deletion, d.quarantined, d.synced_at, f.profile, f.nombre_ecoles, f.nombre_ecoles_saisi,
               f.cout, f.cout_saisi, f.ecoles_listees, g.label AS groupe, m.title AS demarche_title
        FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number
        LEFT JOIN groupes_instructeurs g ON g.number = d.groupe_instructeur_number
        LEFT JOIN demarches m ON m.number = d.demarche_number
        WHERE d.number = ?""", [number])


def role_values(db: sqlite_utils.Database, number: int, demarche: int, roles: tuple[str, ...] = SIGNATORY_ROLES
                ) -> dict[str, str]:
    """The dossier's champs that play ``roles`` (any revision's mapping): role -> value as text."""
    marks = ", ".join("?" * len(roles))
    out: dict[str, str] = {}
    for role, value in db.conn.execute(f"""
            SELECT r.role, c.string_value FROM champs c
            JOIN form_roles r ON r.descriptor_id = +c.descriptor_id
            WHERE c.dossier_number = ? AND c.row_id IS NULL AND r.demarche_number = ? AND r.role IN ({marks})
            ORDER BY r.active DESC, c.position""",  # +: the dossier's champs by key, not every dossier's
            [number, demarche, *roles]):
        if value and role not in out:
            out[role] = value
    return out


def ecoles_of(db: sqlite_utils.Database, number: int) -> list[dict[str, Any]]:
    return _rows(db, "SELECT position, uai_saisi, uai, uai_valide, nom, commune, source, champ FROM ecoles "
                     "WHERE dossier_number = ? ORDER BY position", [number])


def anomalies_of(db: sqlite_utils.Database, number: int) -> list[dict[str, Any]]:
    """Every anomaly of the dossier, open ones first, with its history (first seen, last seen, resolved)."""
    return _rows(db, "SELECT code, severity, champ, message, first_seen_at, last_seen_at, resolved_at FROM anomalies "
                     "WHERE dossier_number = ? ORDER BY resolved_at IS NOT NULL, first_seen_at, code", [number])


def convention_of(db: sqlite_utils.Database, number: int) -> dict[str, Any] | None:
    """The dossier's convention row with its proof: the message, the file and the annotation it names."""
    row = _one(db, "SELECT * FROM conventions WHERE dossier_number = ?", [number])
    if row is None:
        return None
    row["proof_message"] = _one(db, "SELECT id, email, sender, body, created_at FROM messages WHERE id = ?",
                                [row["proof_message_id"]]) if row["proof_message_id"] else None
    row["proof_file"] = _one(db, "SELECT file_key, filename, content_type, byte_size, created_at, downloaded_at, "
                                 "virus_scan FROM files WHERE file_key = ?",
                             [row["proof_file_key"]]) if row["proof_file_key"] else None
    row["proof_annotation"] = _one(db, "SELECT label, string_value, updated_at FROM annotations "
                                       "WHERE dossier_number = ? AND champ_id = ?",
                                   [number, row["proof_annotation_id"]]) if row["proof_annotation_id"] else None
    return row


def actions_of(db: sqlite_utils.Database, number: int) -> list[dict[str, Any]]:
    return _rows(db, "SELECT id, kind, step, state, rule, deadline, attempts, created_at, sent_at, updated_at, "
                     "ds_answer, last_error FROM actions WHERE dossier_number = ? ORDER BY step, id", [number])


def messages_of(db: sqlite_utils.Database, number: int) -> list[dict[str, Any]]:
    """The dossier's messagerie, oldest first, each with the names of its attachments."""
    messages = _rows(db, "SELECT id, email, sender, body, created_at FROM messages WHERE dossier_number = ? "
                         "AND discarded = 0 ORDER BY created_at, id", [number])
    files: dict[str, list[dict[str, Any]]] = {}
    for f in _rows(db, "SELECT owner_id, file_key, filename, byte_size, downloaded_at FROM files "
                       "WHERE dossier_number = ? AND owner_kind = 'message' ORDER BY filename", [number]):
        files.setdefault(f["owner_id"], []).append(f)
    for m in messages:
        m["files"] = files.get(m["id"], [])
    return messages


def demarche_of(db: sqlite_utils.Database, number: int) -> int | None:
    row = db.conn.execute("SELECT demarche_number FROM dossiers WHERE number = ?", [number]).fetchone()
    return row[0] if row else None
