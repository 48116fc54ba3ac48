"""What one dossier's form says, read from the mirror through its démarche's role mapping.

``dossier_form(db, number)`` gives the collectivité (SIRET and name: the demandeur, or a SiretChamp),
the declared number of schools and cost, the schools listed, and the champs of every role. Dossiers
filed under an old revision keep their meaning: a role is looked up by the descriptor ids of the active
mapping, then by those it had in earlier revisions (``form_roles``), then by matching the dossier's own
champ labels with the role's patterns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from connector.config import DemarcheConfig
from connector.forms.identifiers import normalize_siret
from connector.forms.profiles import SPECS, Descriptor, Resolution, descriptors_from_rows, kind, match, resolve
from connector.forms.schools import School, make_school, parse_school_text
from connector.roles import ROLES, SCHOOL_COLUMNS
from connector.store import forms as store


@dataclass
class DossierForm:
    number: int
    demarche: int
    state: str
    profile: str
    siret: str | None
    siret_source: str | None  # "champ" (a SiretChamp) or "demandeur"
    collectivite: str | None
    demandeur_type: str | None
    nombre_ecoles: int | None
    nombre_ecoles_saisi: str | None
    cout: float | None
    cout_saisi: str | None
    schools: list[School] = field(default_factory=list)
    champs: dict[str, list[dict]] = field(default_factory=dict)  # role -> champ rows (annotations too)
    problems: list[str] = field(default_factory=list)  # values not what the profile expects (English, logs)
    date_depot: str | None = None
    date_traitement: str | None = None
    date_passage_en_instruction: str | None = None

    def champ(self, role: str) -> dict | None:
        rows = self.champs.get(role) or []
        return rows[0] if rows else None

    def text(self, role: str) -> str | None:
        row = self.champ(role)
        if row is None:
            return None
        value = row["string_value"] if row["string_value"] is not None else row["value"]
        return None if value is None else str(value).strip()

    def where(self, role: str, fallback: str | None = None) -> str | None:
        """The label of the role's champ, for messages that point at it."""
        row = self.champ(role)
        return (row or {}).get("label") or fallback


_DIGITS = re.compile(r"\d+")
_AMOUNT = re.compile(r"\d+(?:[.,]\d{1,2})?")


def parse_count(text: Any) -> int | None:
    """``"12"``, ``12``, ``"12 écoles"`` -> 12; None when there is no number."""
    if text is None:
        return None
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return int(text) if float(text).is_integer() else None
    m = _DIGITS.search(str(text).replace("\u202f", "").replace("\xa0", ""))
    return int(m.group()) if m else None


def parse_euros(text: Any) -> float | None:
    """``"3 280 €"``, ``"492,00 €"``, ``492`` -> the amount; None when there is no amount."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    s = str(text).replace("\u202f", "").replace("\xa0", "").replace(" ", "")
    m = _AMOUNT.search(s)
    return float(m.group().replace(",", ".")) if m else None


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


_FORM_ROLES = tuple(r for r in ROLES if r not in SCHOOL_COLUMNS)  # the repetition's columns: per row


class _Roles:
    """Which descriptor ids each role is looked up by in one démarche: those of the active mapping, then
    those the role had in earlier revisions (``form_roles``). Built once per page of dossiers."""

    def __init__(self, resolution: Resolution, history: dict[str, list[tuple[str, str | None, int]]]):
        self.resolution = resolution
        self.ids = {role: set(resolution.champs(role)) | {did for did, _, _ in history.get(role, ())}
                    for role in ROLES}
        # descriptor id -> the roles (repetition columns aside) looking for it, among the public (False)
        # or private (True) champs
        self.by_descriptor: dict[bool, dict[str, list[str]]] = {False: {}, True: {}}
        for role in _FORM_ROLES:
            for did in self.ids[role]:
                self.by_descriptor[SPECS[role].private].setdefault(did, []).append(role)
        # the descriptor ids whose champs are read (the repetitions' cells are read anyway)
        self.wanted = {private: set(by_id) for private, by_id in self.by_descriptor.items()}


class _Lookup:
    """Finds a role's champs in one dossier (see the module docstring)."""

    def __init__(self, roles: _Roles, champs: list[dict], annotations: list[dict], old_revision: bool):
        self.roles = roles
        self.rows = {False: champs, True: annotations}
        self.old_revision = old_revision  # filed under another revision: some champ has an old descriptor
        self.by_role: dict[str, list[dict]] = {}
        self.children: dict[str, list[dict]] = {}  # repetition champ id -> its cells
        for private, rows in self.rows.items():
            wanted = roles.by_descriptor[private]
            for c in rows:
                for role in wanted.get(c["descriptor_id"], ()):
                    self.by_role.setdefault(role, []).append(c)
                if not private and c["parent_id"] is not None:
                    self.children.setdefault(c["parent_id"], []).append(c)
        self._pseudo: dict[bool, list[Descriptor]] = {}

    def found(self) -> dict[str, list[dict]]:
        """The champs of every role found in this dossier (the repetition's columns aside: per row)."""
        if not self.old_revision:
            return {role: self.by_role[role] for role in _FORM_ROLES if role in self.by_role}
        return {role: found for role in _FORM_ROLES if (found := self.find(role))}

    def find(self, role: str) -> list[dict]:
        """The champs of a role (not a repetition's column)."""
        rows = self.by_role.get(role, [])
        if rows or not self.old_revision or role in SCHOOL_COLUMNS:
            return rows
        # Filed under another revision: match the dossier's own champs by label.
        private = SPECS[role].private
        found = match(SPECS[role], self._descriptors(private), {})
        wanted = {d.id for d in found}
        return [c for c in self.rows[private] if c["champ_id"] in wanted]

    def column(self, role: str, cells: list[dict]) -> dict | None:
        """The first of a repetition row's cells that plays this column's role."""
        ids = self.roles.ids[role]
        for c in cells:
            if c["descriptor_id"] in ids:
                return c
        if not self.old_revision:
            return None
        for c in cells:
            if _column_match(role, Descriptor(c["champ_id"], False, None, c["type"], c["label"])):
                return c
        return None

    def _descriptors(self, private: bool) -> list[Descriptor]:
        if private not in self._pseudo:
            rows = [{"id": c["champ_id"], "private": int(private), "parent_id": None, "type": c["type"],
                     "label": c["label"], "options": None}
                    for c in self.rows[private] if c["parent_id"] is None]
            self._pseudo[private] = descriptors_from_rows(rows)
        return self._pseudo[private]


def _column_match(role: str, d: Descriptor) -> bool:
    spec = SPECS[role]
    return kind(d.type) in spec.types and bool(re.search(spec.label, d.norm)) and not (
        spec.not_label and re.search(spec.not_label, d.norm))


class FormReader:
    """What the forms of a page of dossiers say: their rows, champs, annotations and role history are
    read once for the page (one query each, and one more per table when some dossier of the page was
    filed under another revision), then ``form(number)`` builds each dossier's."""

    def __init__(self, db: sqlite_utils.Database, numbers: list[int], resolution: Resolution,
                 rows: dict[int, dict] | None = None):
        self.db = db
        self.resolution = resolution
        self.rows = store.dossier_rows(db, numbers) if rows is None else rows
        self._roles: dict[int, _Roles] = {}
        # Only the champs a role is looked up by, the repetitions' cells and those of other revisions;
        # then every champ of the dossiers filed under another revision (their roles are found by label).
        wanted, current = self._wanted_ids(), {d.id for d in resolution.descriptors}
        self.champs = store.champs_by_dossier(db, numbers, False, wanted[False], current)
        self.annotations = store.champs_by_dossier(db, numbers, True, wanted[True], current)
        self.old_revision = {number for by_dossier in (self.champs, self.annotations)
                             for number, rows in by_dossier.items()
                             if {c["descriptor_id"] for c in rows} - current - {None, ""}}
        if self.old_revision:
            old = sorted(self.old_revision)
            self.champs.update(store.champs_by_dossier(db, old))
            self.annotations.update(store.champs_by_dossier(db, old, private=True))

    def _wanted_ids(self) -> dict[bool, set[str]]:
        wanted: dict[bool, set[str]] = {False: set(), True: set()}
        for demarche in {r["demarche_number"] for r in self.rows.values()}:
            for private, ids in self.roles(demarche).wanted.items():
                wanted[private] |= ids
        return wanted

    def roles(self, demarche: int) -> _Roles:
        if demarche not in self._roles:
            self._roles[demarche] = _Roles(self.resolution, store.role_history(self.db, demarche))
        return self._roles[demarche]

    def form(self, number: int) -> DossierForm | None:
        """What the dossier's form says; None when the dossier is not in the mirror."""
        row = self.rows.get(number)
        if row is None:
            return None
        return _build_form(row, self.champs.get(number, []), self.annotations.get(number, []),
                           number in self.old_revision, self.resolution, self.roles(row["demarche_number"]))


def dossier_form(db: sqlite_utils.Database, number: int, resolution: Resolution | None = None,
                 demarche_config: DemarcheConfig | None = None) -> DossierForm | None:
    """What the dossier's form says; None when the dossier is not in the mirror. Without a
    ``resolution``, the démarche's is computed (with ``demarche_config``'s profile and overrides)."""
    rows = store.dossier_rows(db, [number])
    if number not in rows:
        return None
    if resolution is None:
        resolution = resolve(db, rows[number]["demarche_number"], demarche_config)
    return FormReader(db, [number], resolution, rows).form(number)


def _build_form(row: dict, champs: list[dict], annotations: list[dict], old_revision: bool,
                resolution: Resolution, roles: _Roles) -> DossierForm:
    lookup = _Lookup(roles, champs, annotations, old_revision)
    form = DossierForm(row["number"], row["demarche_number"], row["state"], resolution.profile, None, None,
                       row["demandeur_name"], row["demandeur_type"], None, None, None, None,
                       date_depot=row["date_depot"], date_traitement=row["date_traitement"],
                       date_passage_en_instruction=row["date_passage_en_instruction"])
    form.champs = lookup.found()
    _identify(form, row)
    _declared(form)
    form.schools = _schools(form, lookup)
    commune = _commune_name(form.champ("commune"))
    if commune:
        for school in form.schools:
            school.commune = school.commune or commune
    return form


def _commune_name(row: dict | None) -> str | None:
    if row is None:
        return None
    value = _json(row["value"])
    if isinstance(value, dict):
        return (value.get("commune") or {}).get("name") or row["string_value"]
    return row["string_value"]


def _identify(form: DossierForm, row: dict) -> None:
    siret_champ = form.champ("siret")
    if siret_champ is not None and (siret_champ["value"] or siret_champ["string_value"]):
        form.siret = normalize_siret(str(siret_champ["value"] or siret_champ["string_value"]))
        form.siret_source = "champ"
    elif row["demandeur_siret"]:
        form.siret = normalize_siret(row["demandeur_siret"])
        form.siret_source = "demandeur"
    name = form.text("collectivite")
    if name:
        form.collectivite = name


def _declared(form: DossierForm) -> None:
    for role, parse, attr in (("nombre_ecoles", parse_count, "nombre_ecoles"), ("cout", parse_euros, "cout")):
        row = form.champ(role)
        if row is None:
            continue
        typed = row["value"] if row["value"] is not None else row["string_value"]
        setattr(form, attr + "_saisi", None if typed is None else str(typed))
        if typed is None or str(typed).strip() == "":
            continue
        value = parse(typed)
        if value is None:
            form.problems.append(f"{role}: {row['label']!r} holds {str(typed)[:60]!r}, not a number")
        setattr(form, attr, value)


def _schools(form: DossierForm, lookup: _Lookup) -> list[School]:
    out: list[School] = []
    containers = form.champs.get("ecoles") or []
    if not containers:
        form.problems.append("ecoles: no school champ in this dossier")
        return out
    for container in containers:
        where = container["descriptor_id"] or container["label"]
        k = kind(container["type"])
        if k == "Repetition":
            cells = lookup.children.get(container["champ_id"], [])
            rows: dict[Any, list[dict]] = {}
            for c in cells:
                rows.setdefault((c["row_index"], c["row_id"]), []).append(c)
            for _, row_cells in sorted(rows.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0)):
                school = _school_of_row(len(out), row_cells, lookup, container, where)
                if school is not None:
                    out.append(school)
        elif k == "MultipleDropDownList":
            values = _json(container["value"])
            if values is None:
                continue
            if not isinstance(values, list):
                form.problems.append(f"ecoles: {container['label']!r} holds {str(values)[:60]!r}, not a list")
                continue
            for text in values:
                typed, nom, commune = parse_school_text(str(text))
                out.append(make_school(len(out), typed, nom, commune, "option", where))
        else:
            text = container["string_value"] or (container["value"] if isinstance(container["value"], str) else None)
            if text:
                typed, nom, commune = parse_school_text(text)
                source = "uai" if typed and nom is None else "option"
                out.append(make_school(len(out), typed, nom, commune, source, where))
    return out


def _school_of_row(position: int, cells: list[dict], lookup: _Lookup, container: dict, where: str) -> School | None:
    choice, uai_cell, nom_cell, commune_cell = (lookup.column(r, cells)
                                                for r in SCHOOL_COLUMNS[1:] + SCHOOL_COLUMNS[:1])
    commune = None
    if commune_cell is not None:
        value = _json(commune_cell["value"])
        if isinstance(value, dict):
            commune = ((value.get("commune") or {}).get("name")) or commune_cell["string_value"]
        else:
            commune = commune_cell["string_value"]
    if uai_cell is not None and (uai_cell["string_value"] or uai_cell["value"]):
        typed = str(uai_cell["string_value"] or uai_cell["value"])
        nom = (nom_cell or {}).get("string_value")
        return make_school(position, typed, nom, commune, "uai", where)
    if choice is not None and choice["string_value"]:
        typed, nom, from_text = parse_school_text(choice["string_value"])
        return make_school(position, typed, nom, from_text or commune, "option", where)
    # Columns not mapped: any cell whose text holds a UAI.
    for c in cells:
        text = c["string_value"]
        if text and c is not commune_cell:
            typed, nom, from_text = parse_school_text(text)
            if typed:
                return make_school(position, typed, nom, from_text or commune, "uai" if nom is None else "option",
                                   where)
    return None
