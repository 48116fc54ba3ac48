"""Savers for the démarche descriptor and for pages of dossiers.

They never commit nor open a transaction: the engine wraps a page and its bookmark in one
``with db.atomic():`` (docs/operations.md §3.3), and they refuse to run outside one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from connector.logs import get_logger
from connector.store.sql import insert_many, now_utc, require_transaction, upsert, upsert_many
from connector.store.values import (
    canonical_json,
    champ_value,
    classify_sender,
    file_key,
    instant,
)
from connector.store.written import Written

log = get_logger(__name__)

CHILD_TABLES = ("champs", "annotations", "messages", "dossier_labels")
REQUIRED_KEYS = ("id", "number", "state", "dateDerniereModification")


def dossier_problem(node: Any) -> str | None:
    """Why ``save_dossiers`` cannot take this dossier node, or None: the one validity check."""
    if not isinstance(node, dict):
        return "dossier node is not an object"
    missing = [k for k in REQUIRED_KEYS if node.get(k) is None]
    if missing:
        return f"dossier node without {', '.join(missing)}"
    try:
        int(node["number"])
        instant(node["dateDerniereModification"])
    except (TypeError, ValueError):
        return "dossier node with an unreadable number or dateDerniereModification"
    return None


def split_dossiers(nodes: list[Any]) -> tuple[list[dict], list[tuple[Any, str]]]:
    """Nodes the savers can take, and the others with why (``dossier_problem``)."""
    good, bad = [], []
    for node in nodes:
        problem = dossier_problem(node)
        if problem is None:
            good.append(node)
        else:
            bad.append((node, problem))
    return good, bad


@dataclass
class SaveCounts:
    """What ``save_dossiers`` did. ``removed_files`` are local copies of attachments that left their
    dossier: unlink them after the commit."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    removed_files: list[Path] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)  # numbers of the new and updated dossiers
    written: Written | None = None  # their rows as written, for the hooks (``connector.store.written``)

    def add(self, other: SaveCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.removed_files += other.removed_files
        self.changed += other.changed


def save_demarche(db: sqlite_utils.Database, descriptor: dict) -> None:
    """Save the ``demarche`` object of getDemarcheDescriptor: the démarche row, the active revision's
    champ and annotation descriptors, groupes instructeurs, instructeurs and their membership.
    Descriptors and groupes are replaced exactly; labels and instructeurs are only upserted (dossiers
    and other démarches may still refer to them)."""
    require_transaction(db, "save_demarche")
    number = int(descriptor["number"])
    revision = descriptor.get("activeRevision") or {}
    upsert(db, "demarches", {
        "number": number,
        "id": descriptor["id"],
        "title": descriptor.get("title"),
        "description": descriptor.get("description"),
        "state": descriptor.get("state"),
        "declarative": descriptor.get("declarative"),
        "date_creation": descriptor.get("dateCreation"),
        "date_publication": descriptor.get("datePublication"),
        "date_derniere_modification": descriptor.get("dateDerniereModification"),
        "date_fermeture": descriptor.get("dateFermeture"),
        "active_revision_id": revision.get("id"),
        "active_revision_date_publication": revision.get("datePublication"),
        "raw": canonical_json(descriptor),
        "synced_at": now_utc(),
    }, ("number",))

    db.conn.execute("DELETE FROM champ_descriptors WHERE demarche_number = ?", [number])
    rows: list[dict] = []
    for private, key in ((0, "champDescriptors"), (1, "annotationDescriptors")):
        for position, desc in enumerate(revision.get(key) or []):
            rows.append(_descriptor_row(number, private, None, position, desc))
            for child_position, child in enumerate(desc.get("champDescriptors") or []):
                rows.append(_descriptor_row(number, private, desc["id"], child_position, child))
    insert_many(db, "champ_descriptors", rows)

    # Cascades to the membership rows.
    db.conn.execute("DELETE FROM groupes_instructeurs WHERE demarche_number = ?", [number])
    for groupe in descriptor.get("groupeInstructeurs") or []:
        upsert(db, "groupes_instructeurs", {
            "number": int(groupe["number"]),
            "id": groupe["id"],
            "demarche_number": number,
            "label": groupe.get("label"),
            "closed": int(bool(groupe.get("closed"))),
        }, ("number",))
        for instructeur in groupe.get("instructeurs") or []:
            upsert(db, "instructeurs", {"id": instructeur["id"], "email": instructeur["email"]}, ("id",))
            upsert(db, "groupe_instructeur_members", {
                "groupe_instructeur_number": int(groupe["number"]),
                "instructeur_id": instructeur["id"],
            }, ("groupe_instructeur_number", "instructeur_id"))
    for label in descriptor.get("labels") or []:
        upsert(db, "labels", _label_row(number, label), ("id",))


def save_dossiers(
    db: sqlite_utils.Database, demarche_number: int, nodes: list[dict], seen_at: str | None = None,
    *, unknown_types: set[str] | None = None,
) -> SaveCounts:
    """Upsert a page of dossiers (DossierFragment) and replace their children exactly.

    - A dossier whose ``dateDerniereModification`` and raw JSON (URLs aside) are unchanged is not
      rewritten; the URLs of its files not yet downloaded are refreshed.
    - A node older than the stored dossier (by ``dateDerniereModification``) is skipped as stale.
    - Any dossier seen here is visible in DS: its pending-deletion flag and its quarantine entry go.
    - A tombstoned number that comes back is logged and re-inserted (DS never reuses numbers, so the
      dossier really is back, e.g. after a wrong "vanished" verdict); its tombstone goes.
    - Attachment rows keep their download state while the same file stays on the same owner.
    - File URLs go to ``files.url``, not into the raw JSON; the caller's nodes are not changed.
    - A champ type without a typed value (a DS release ahead of the vendored schema) keeps its raw
      JSON and is logged once (``store.unknown_champ_types``) per type and ``unknown_types`` set:
      the caller passes one set per run (None: this call's own set), so one warning per type per run.

    Only the door (``connector.store.door.enter``) calls it outside the tests: it adds validation,
    quarantine and the hooks.

    The page is written with one statement per table (``executemany``), not one per dossier, and
    every row is built before the first write: a node it cannot read raises (KeyError, TypeError,
    ValueError, AttributeError) before anything is written, so the caller needs no savepoint to save
    the page again dossier by dossier. Those errors from the writing itself would be a bug: they
    come out as ``RuntimeError``, which aborts the page's transaction instead.
    """
    require_transaction(db, "save_dossiers")
    seen_at = seen_at or now_utc()
    counts = SaveCounts()
    nodes = list({int(n["number"]): n for n in nodes}.values())  # a number once per page
    if not nodes:
        return counts
    numbers = [int(n["number"]) for n in nodes]
    stored = {
        number: (date, raw)
        for number, date, raw in _select_in(
            db, "SELECT number, date_derniere_modification, raw FROM dossiers WHERE number IN ({})", numbers)
    }
    instructeurs = _instructeur_emails(db, demarche_number)
    page = _PageRows()
    unknown: dict[str, list[int]] = {}  # champ types without a typed value: kept raw, logged
    for node in nodes:
        number = int(node["number"])
        files = _file_rows(number, node, seen_at)
        raw = raw_json(node)
        old = stored.get(number)
        if old is not None and old[1] == raw and old[0] == node["dateDerniereModification"]:
            counts.unchanged += 1
            page.refreshed.extend(f for f in files.values() if f["url"])
            continue
        if old is not None and instant(node["dateDerniereModification"]) < instant(old[0]):
            log.warning("store.stale_dossier_skipped", dossier=number,
                        stored=old[0], received=node["dateDerniereModification"])
            counts.unchanged += 1
            continue
        if old is None:
            counts.new += 1
            page.new.append(number)
        else:
            counts.updated += 1
            page.updated.append(number)
        page.dossiers.append(_dossier_row(demarche_number, node, raw, seen_at))
        before = len(page.champs), len(page.annotations)
        _champ_rows(number, node.get("champs") or [], page.champs)
        _champ_rows(number, node.get("annotations") or [], page.annotations)
        kinds = {r[_TYPE] for r in page.champs[before[0]:] if r[_RAW] is not None}
        kinds |= {r[_TYPE] for r in page.annotations[before[1]:] if r[_RAW] is not None}
        for kind in sorted(kinds):
            unknown.setdefault(kind, []).append(number)
        emails = instructeurs | _dossier_instructeur_emails(node)
        page.messages += _message_rows(number, node.get("messages") or [], emails)
        for label in node.get("labels") or []:
            page.labels.append(_label_row(demarche_number, label))
            page.dossier_labels.append({"dossier_number": number, "label_id": label["id"]})
        page.files[number] = files
    try:
        counts.removed_files = page.write(db, demarche_number)
        _clear_flags(db, numbers)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RuntimeError(f"save_dossiers failed while writing (a bug, not a bad dossier): {exc!r}") from exc
    counts.changed = page.new + page.updated
    counts.written = page.written()
    warned = set() if unknown_types is None else unknown_types
    fresh = {kind: numbers for kind, numbers in unknown.items() if kind not in warned}
    if fresh:
        log.warning("store.unknown_champ_types", types=fresh,
                    note="kept raw in champs.raw; once per type and run")
        warned.update(fresh)
    return counts


@dataclass
class _PageRows:
    """Rows of the changed dossiers of one page, written table by table."""

    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    dossiers: list[dict] = field(default_factory=list)
    champs: list[tuple] = field(default_factory=list)  # CHAMP_COLUMNS
    annotations: list[tuple] = field(default_factory=list)
    messages: list[tuple] = field(default_factory=list)  # MESSAGE_COLUMNS
    labels: list[dict] = field(default_factory=list)
    dossier_labels: list[dict] = field(default_factory=list)
    files: dict[int, dict[str, dict]] = field(default_factory=dict)  # dossier -> file_key -> row
    refreshed: list[dict] = field(default_factory=list)  # files of unchanged dossiers: new URLs

    def written(self) -> Written:
        """The dossiers, champs and annotations rows as SQLite gives them back once written (see
        ``connector.store.written``): the flags ``_clear_flags`` just cleared, booleans as 0/1."""
        out = Written()
        for row in self.dossiers:
            out.dossiers[row["number"]] = {**row, "pending_deletion": 0, "pending_deletion_date": None,
                                           "quarantined": 0}
        for rows, into in ((self.champs, out.champs), (self.annotations, out.annotations)):
            for r in rows:
                if isinstance(r[_VALUE], bool):
                    r = (*r[:_VALUE], int(r[_VALUE]), *r[_VALUE + 1:])
                into.setdefault(r[0], []).append(r)
        return out

    def write(self, db: sqlite_utils.Database, demarche_number: int) -> list[Path]:
        back = [n for (n,) in _select_in(db, "SELECT number FROM tombstones WHERE number IN ({})", self.new)]
        if back:
            _execute_in(db, "DELETE FROM tombstones WHERE number IN ({})", back)
            log.warning("store.tombstone_reinserted", dossiers=back, demarche=demarche_number)
        for table in CHILD_TABLES:
            _execute_in(db, f"DELETE FROM {table} WHERE dossier_number IN ({{}})", self.updated)
        upsert_many(db, "dossiers", self.dossiers, ("number",))
        db.conn.executemany(_INSERT_CHAMPS.format(table="champs"), self.champs)
        db.conn.executemany(_INSERT_CHAMPS.format(table="annotations"), self.annotations)
        # OR REPLACE: a message id is global; were DS ever to list it under another dossier, the
        # latest sighting wins instead of failing the page.
        db.conn.executemany(_INSERT_MESSAGES, self.messages)
        upsert_many(db, "labels", self.labels, ("id",))
        upsert_many(db, "dossier_labels", self.dossier_labels, ("dossier_number", "label_id"))
        db.conn.executemany(
            "UPDATE files SET url = ?, url_seen_at = ? WHERE file_key = ? AND downloaded_at IS NULL",
            [[f["url"], f["url_seen_at"], f["file_key"]] for f in self.refreshed],
        )
        return self._replace_files(db)

    def _replace_files(self, db: sqlite_utils.Database) -> list[Path]:
        """Make each changed dossier's file rows exactly its files, keeping the download columns of
        the survivors; return the local copies of the files that left."""
        gone = [
            (key, local_path)
            for key, number, local_path in _select_in(
                db, "SELECT file_key, dossier_number, local_path FROM files WHERE dossier_number IN ({})",
                list(self.files))
            if key not in self.files[number]
        ]
        db.conn.executemany("DELETE FROM files WHERE file_key = ?", [[key] for key, _ in gone])
        upsert_many(db, "files", [row for files in self.files.values() for row in files.values()], ("file_key",))
        return [Path(p) for _, p in gone if p]


def _clear_flags(db: sqlite_utils.Database, numbers: list[int]) -> None:
    _execute_in(db, "DELETE FROM pending_deletions WHERE number IN ({})", numbers)
    _execute_in(db, "DELETE FROM quarantine WHERE dossier_number IN ({})", numbers)
    _execute_in(
        db,
        "UPDATE dossiers SET pending_deletion = 0, pending_deletion_date = NULL, quarantined = 0 "
        "WHERE number IN ({}) AND (pending_deletion OR quarantined)",
        numbers,
    )


def _select_in(db: sqlite_utils.Database, sql: str, values: list) -> list[tuple]:
    if not values:
        return []
    return db.conn.execute(sql.format(", ".join("?" * len(values))), values).fetchall()


def _execute_in(db: sqlite_utils.Database, sql: str, values: list) -> None:
    if values:
        db.conn.execute(sql.format(", ".join("?" * len(values))), values)


def _dossier_row(demarche_number: int, node: dict, raw: str, seen_at: str) -> dict:
    demandeur = node.get("demandeur") or {}
    kind = demandeur.get("__typename")
    if kind == "PersonnePhysique":
        name = " ".join(p for p in (demandeur.get("prenom"), demandeur.get("nom")) if p) or None
    else:
        name = (demandeur.get("entreprise") or {}).get("raisonSociale")
    usager = node.get("usager") or {}
    groupe = node.get("groupeInstructeur") or {}
    return {
        "number": int(node["number"]),
        "id": node["id"],
        "demarche_number": demarche_number,
        "state": node["state"],
        "archived": int(bool(node.get("archived"))),
        "date_depot": node.get("dateDepot"),
        "date_passage_en_construction": node.get("datePassageEnConstruction"),
        "date_passage_en_instruction": node.get("datePassageEnInstruction"),
        "date_traitement": node.get("dateTraitement"),
        "date_expiration": node.get("dateExpiration"),
        "date_derniere_modification": node["dateDerniereModification"],
        "date_derniere_modification_champs": node.get("dateDerniereModificationChamps"),
        "date_derniere_modification_annotations": node.get("dateDerniereModificationAnnotations"),
        "date_suppression_par_usager": node.get("dateSuppressionParUsager"),
        "date_suppression_par_administration": node.get("dateSuppressionParAdministration"),
        "date_derniere_correction_en_attente": node.get("dateDerniereCorrectionEnAttente"),
        "connection_usager": node.get("connectionUsager"),
        "motivation": node.get("motivation"),
        "usager_id": usager.get("id"),
        "usager_email": usager.get("email"),
        "demandeur_type": kind,
        "demandeur_siret": demandeur.get("siret"),
        "demandeur_name": name,
        "groupe_instructeur_number": groupe.get("number"),
        "raw": raw,
        "synced_at": seen_at,
    }


CHAMP_COLUMNS = ("dossier_number", "champ_id", "descriptor_id", "parent_id", "row_id", "row_index", "position",
                 "label", "type", "string_value", "value", "raw", "updated_at")
_TYPE, _RAW, _VALUE = CHAMP_COLUMNS.index("type"), CHAMP_COLUMNS.index("raw"), CHAMP_COLUMNS.index("value")
_INSERT_CHAMPS = (f"INSERT INTO {{table}} ({', '.join(CHAMP_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(CHAMP_COLUMNS))})")
MESSAGE_COLUMNS = ("id", "dossier_number", "email", "sender", "body", "created_at", "discarded", "discarded_at")
_INSERT_MESSAGES = (f"INSERT OR REPLACE INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})")


def _champ_rows(number: int, champs: list[dict], out: list[tuple]) -> None:
    """Append the champs' rows (repetition rows' champs after their parent) to ``out``. Rows are
    tuples in CHAMP_COLUMNS order: the hottest loop of a sync (about 20 rows a dossier)."""
    append = out.append
    for champ, position, parent_id, row_id, row_index in _walk(champs):
        get = champ.get
        value, raw = champ_value(champ)
        append((number, champ["id"], get("champDescriptorId"), parent_id, row_id, row_index, position,
                get("label"), get("__typename") or "Champ", get("stringValue"), value, raw, get("updatedAt")))


def _walk(champs: list[dict]) -> Iterator[tuple[dict, int, str | None, str | None, int | None]]:
    """(champ, position, parent id, row id, row index) of each champ, its repetition rows' after it.

    A repetition's children are stored once per row, keyed by champ id AND row (answers recorded
    from DS's forks repeat the same child ids in every row). A repetition without ``rows`` but with
    the flat ``champs`` list older DS versions and forks send: its children are stored too, a new
    row starting whenever a child id comes again."""
    for position, champ in enumerate(champs):
        yield champ, position, None, None, None
        rows = champ.get("rows")
        if rows is None and champ.get("champs"):
            rows = _rows_of_flat_children(champ["champs"])
        for row_index, row in enumerate(rows or ()):
            for child_position, child in enumerate(row.get("champs") or ()):
                yield child, child_position, champ["id"], row.get("id"), row_index


def _rows_of_flat_children(children: list[dict]) -> list[dict]:
    rows: list[dict] = []
    seen: set = set()
    for child in children:
        if not rows or child.get("id") in seen:
            rows.append({"champs": []})
            seen = set()
        rows[-1]["champs"].append(child)
        seen.add(child.get("id"))
    return rows


def _message_rows(number: int, messages: list[dict], emails: set[str]) -> list[tuple]:
    return [(m["id"], number, m.get("email"), classify_sender(m.get("email"), emails), m.get("body"),
             m["createdAt"], int(m.get("discardedAt") is not None), m.get("discardedAt"))
            for m in messages]


# A File's `url` member in DS's JSON: never inside a string (there every quote is escaped), and
# FileFragment puts it after `createdAt`; the second form is the (unused) first-member case.
_URL_VALUE = rb'"url":(?:null|"(?:[^"\\]|\\.)*")'
_URL_MEMBER = re.compile(rb"," + _URL_VALUE)
_FIRST_URL_MEMBER = re.compile(rb"(?<=\{)" + _URL_VALUE + rb",?")


def raw_json(node: dict) -> str:
    """The dossier as its ``raw`` column keeps it: compact JSON, non-ASCII as is, without the files'
    ``url`` (signed URLs change at every fetch and expire within the hour: they would make every
    dossier with a file look modified). orjson writes exactly what ``json.dumps(node,
    ensure_ascii=False, separators=(",", ":"))`` does, 10× faster; the stdlib takes what orjson
    refuses (lone surrogates). The caller's node is not changed."""
    try:
        text = orjson.dumps(node)
    except orjson.JSONEncodeError:
        text = json.dumps(node, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        return _without_url_members(text).decode("utf-8", "surrogatepass")
    return _without_url_members(text).decode()


def _without_url_members(text: bytes) -> bytes:
    if b'"url":' not in text:  # a plain search is much faster than the regex: most dossiers
        return text
    text = _URL_MEMBER.sub(b"", text)
    return _FIRST_URL_MEMBER.sub(b"", text) if b'{"url":' in text else text


def _file_rows(number: int, node: dict, seen_at: str) -> dict[str, dict]:
    """The node's attachments as ``files`` rows, each with its File's ``url``."""
    owners: list[tuple[str, str, list[dict]]] = []
    for kind, key in (("champ", "champs"), ("annotation", "annotations")):
        for champ in node.get(key) or ():
            if champ.get("files"):
                owners.append((kind, champ["id"], champ["files"]))
            for row in champ.get("rows") or ():
                owners.extend((kind, c["id"], c["files"]) for c in row.get("champs") or () if c.get("files"))
    owners.extend(("message", m["id"], m["attachments"]) for m in node.get("messages") or () if m.get("attachments"))
    rows: dict[str, dict] = {}
    for kind, owner_id, files in owners:
        for f in files:
            url = f.get("url")
            key = file_key(number, kind, owner_id, f.get("checksum") or "", f["filename"])
            rows[key] = {
                "file_key": key,
                "dossier_number": number,
                "owner_kind": kind,
                "owner_id": owner_id,
                "filename": f["filename"],
                "content_type": f.get("contentType"),
                "byte_size": None if f.get("byteSize") is None else int(f["byteSize"]),
                "checksum": f.get("checksum"),
                "created_at": f.get("createdAt"),
                "virus_scan": f.get("virusScanResult"),
                "url": url,
                "url_seen_at": seen_at if url else None,
            }
    return rows


def _label_row(demarche_number: int, label: dict) -> dict:
    return {"id": label["id"], "demarche_number": demarche_number,
            "name": label.get("name"), "color": label.get("color")}


def _descriptor_row(number: int, private: int, parent_id: str | None, position: int, desc: dict) -> dict:
    options = desc.get("options")
    return {
        "demarche_number": number,
        "id": desc["id"],
        "private": private,
        "parent_id": parent_id,
        "position": position,
        "type": desc.get("__typename") or "ChampDescriptor",
        "label": desc.get("label"),
        "description": desc.get("description"),
        "required": None if desc.get("required") is None else int(desc["required"]),
        "options": None if options is None else canonical_json(options),
        "other_option": None if desc.get("otherOption") is None else int(desc["otherOption"]),
    }


def _instructeur_emails(db: sqlite_utils.Database, demarche_number: int) -> set[str]:
    """E-mails of the instructeurs of every groupe of the démarche (from save_demarche)."""
    return {
        email.lower()
        for (email,) in db.conn.execute(
            "SELECT i.email FROM instructeurs i "
            "JOIN groupe_instructeur_members m ON m.instructeur_id = i.id "
            "JOIN groupes_instructeurs g ON g.number = m.groupe_instructeur_number "
            "WHERE g.demarche_number = ?",
            [demarche_number],
        )
    }


def _dossier_instructeur_emails(node: dict) -> set[str]:
    """The dossier's followers and the agents who changed its state are instructeurs too."""
    emails = {(p.get("email") or "").lower() for p in node.get("instructeurs") or []}
    emails |= {(t.get("emailAgentTraitant") or "").lower() for t in node.get("traitements") or []}
    return emails - {""}
