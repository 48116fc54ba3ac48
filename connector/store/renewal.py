"""Every SQL statement of the renewal from one school year to the next: table ``renouvellements``
(declared in ``store/shape.py``, ``RENEWAL_TABLES``: migration ``0007_renewal``) and the reads of the
mirror the decision needs.

``renouvellements``: one row per school and new campaign: every school open at the end of the
previous campaign (statut ``renouvelee``, ``en_attente``, ``non_renouvelee``, ``fermee``) and every
school of the new campaign's live dossiers not open the year before (``nouvelle``), with the dossiers
on both sides, the change of holder, the opening date, the reason of a closure, and the Paris day the
statuses hold at (``calcule_au``: DS's clock when computed). Derived from the
mirror (rewritten in the sync page's transaction and after each sync with DS's clock); no foreign key:
it describes a pair of démarches, not one dossier.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from connector.store.sql import in_chunks, now_utc, require_transaction

COLUMNS = ("demarche_number", "uai", "previous_demarche_number", "statut", "ecole", "commune", "dossier_precedent",
           "siret_precedent", "collectivite_precedente", "dossier", "siret", "collectivite", "changement_titulaire",
           "convention", "type", "ouverture", "motif", "calcule_au")

def _rows(db: sqlite_utils.Database, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, list(params))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def table_exists(db: sqlite_utils.Database) -> bool:
    return db.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'renouvellements'"
                           ).fetchone() is not None


def new_dossiers(db: sqlite_utils.Database, demarche_number: int) -> list[dict[str, Any]]:
    """The new campaign's dossiers not pending deletion nor in the administration's trash: number,
    state, SIRET and collectivité (the form's, else the demandeur's), dépôt, convention status."""
    has_conventions = db.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conventions'").fetchone() is not None
    convention = ("(SELECT c.status FROM conventions c WHERE c.dossier_number = d.number)" if has_conventions
                  else "NULL")
    return _rows(db, f"""
        SELECT d.number, d.state, coalesce(f.siret, d.demandeur_siret) AS siret,
               coalesce(f.collectivite, d.demandeur_name) AS collectivite, d.date_depot,
               {convention} AS convention
        FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number
        WHERE d.demarche_number = ? AND d.pending_deletion = 0 AND d.date_suppression_par_administration IS NULL
        ORDER BY d.number""", [demarche_number])


def valid_schools(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each dossier's valid schools (normalised UAI, name, commune), in form order."""
    out: dict[int, list[dict[str, Any]]] = {n: [] for n in numbers}
    for chunk, marks in in_chunks(numbers):
        for row in _rows(db, f"SELECT dossier_number, uai, nom, commune FROM ecoles WHERE dossier_number IN ({marks}) "
                             "AND uai_valide = 1 ORDER BY dossier_number, position", chunk):
            out[row["dossier_number"]].append(row)
    return out


def save(db: sqlite_utils.Database, demarche_number: int, rows: list[dict[str, Any]]) -> int:
    """Make the campaign's rows exactly ``rows`` (dicts of :data:`COLUMNS`); unchanged rows keep their
    ``updated_at``. Inside the caller's transaction. Returns how many rows changed or went."""
    require_transaction(db, "renewal.save")
    stored = {r[1]: r for r in db.conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM renouvellements WHERE demarche_number = ?", [demarche_number])}
    wanted = {r["uai"]: tuple(r[c] for c in COLUMNS) for r in rows}
    changed = [v for uai, v in wanted.items() if stored.get(uai) != v]
    gone = [[demarche_number, uai] for uai in stored if uai not in wanted]
    now = now_utc()
    db.conn.executemany(
        f"INSERT OR REPLACE INTO renouvellements ({', '.join(COLUMNS)}, updated_at) "
        f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})", [(*v, now) for v in changed])
    db.conn.executemany("DELETE FROM renouvellements WHERE demarche_number = ? AND uai = ?", gone)
    return len(changed) + len(gone)


def rows(db: sqlite_utils.Database, demarche_number: int | None = None,
         statuts: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    where, params = ["1 = 1"], []
    if demarche_number is not None:
        where.append("demarche_number = ?")
        params.append(demarche_number)
    if statuts:
        where.append(f"statut IN ({', '.join('?' * len(statuts))})")
        params += list(statuts)
    if not table_exists(db):
        return []
    return _rows(db, f"SELECT * FROM renouvellements WHERE {' AND '.join(where)} "
                     "ORDER BY demarche_number, statut = 'nouvelle', uai", params)


def computed_on(db: sqlite_utils.Database, demarche_number: int) -> str | None:
    """The Paris day (ISO) the campaign's statuses were last computed at, if any."""
    row = db.conn.execute("SELECT max(calcule_au) FROM renouvellements WHERE demarche_number = ?",
                          [demarche_number]).fetchone()
    return row[0] if row else None


def counts(db: sqlite_utils.Database, demarche_number: int) -> dict[str, int]:
    if not table_exists(db):
        return {}
    return dict(db.conn.execute("SELECT statut, count(*) FROM renouvellements WHERE demarche_number = ? "
                                "GROUP BY statut", [demarche_number]).fetchall())


def summary(db: sqlite_utils.Database) -> dict[int, dict[str, object]]:
    """Per new campaign: schools by status, and the previous campaign's communes (SIRET) that renewed
    (one of their schools renewed by them, or they filed a school of their own) and that did not."""
    out: dict[int, dict[str, object]] = {}
    for number, statut, n in db.conn.execute(
            "SELECT demarche_number, statut, count(*) FROM renouvellements GROUP BY demarche_number, statut"):
        out.setdefault(number, {"schools": {}, "renewed": 0, "communes": 0})["schools"][statut] = n  # type: ignore[index]
    for number, communes, renewed in db.conn.execute("""
            SELECT r.demarche_number, count(DISTINCT r.siret_precedent),
                   count(DISTINCT CASE WHEN r.siret_precedent IN (SELECT s.siret FROM renouvellements s
                         WHERE s.demarche_number = r.demarche_number AND s.statut IN ('renouvelee', 'nouvelle'))
                         THEN r.siret_precedent END)
            FROM renouvellements r WHERE r.statut != 'nouvelle' GROUP BY r.demarche_number"""):
        out.setdefault(number, {"schools": {}})
        out[number].update(communes=communes, renewed=renewed)
    return out
