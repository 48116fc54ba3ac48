"""Form profiles: which champ of a démarche plays which role (the signatory, the schools, the cost...).

A role is recognised from the démarche's champ descriptors (table ``champ_descriptors``, the active
revision) by type and label patterns, and by the section (the header above the champ), so that a form
cloned by another académie with slightly different wording still maps. A profile is one of the three
processes of the ENT-École (Occitanie adhesion, Poitiers convention, Créteil order finalisation): the
roles that identify its form, the roles its form must have and whether a signed convention is due
within a deadline. A profile says nothing of an académie: the départements and the fee per school come
from the config or from the démarche itself (``connector.forms.rules.settings_for``).

``resolve()`` picks the profile, configured or detected. Detection only recognises a profile whose
identifying roles match (:attr:`Profile.identifying`, at least :attr:`Profile.needed` of them, the
schools always among them: a champ that is a list of schools, i.e. a repetition with a school or UAI
column, a drop-down whose options carry UAIs, or a UAI text champ); among the recognised ones, the one
whose expected roles match best. No profile recognised: the profile is ``none`` (the démarche is
mirrored, no form is read, no anomaly, no convention, no action) and :attr:`Resolution.note` names the
best candidate and what it lacked. Every role is then mapped; a role that matches no champ, or several
where one is expected, is a problem (a human message naming the candidates), never a silent guess: an
error when the profile cannot work without the role (:attr:`Profile.expected`), else a warning. A
``[demarches.roles]`` override names the champ by its label or its descriptor id.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from connector.config import DemarcheConfig
from connector.roles import NO_PROFILE, PRIVATE_ROLES, PROFILE_NAMES, ROLES, SCHOOL_COLUMNS, SEVERAL
from connector.store import forms as store

_NOT_WORD = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def normalize(text: str | None) -> str:
    """``"Nombre d'écoles inscrites (pour…)"`` -> ``"nombre d ecoles inscrites pour"``."""
    if not text:
        return ""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(_NOT_WORD.sub(" ", ascii_text).split())


@functools.lru_cache(maxsize=256)
def kind(type_name: str | None) -> str:
    """A descriptor's or a champ's type as one word: ``EmailChampDescriptor`` and ``TextChamp`` -> ``Text``
    (DS serves e-mail, phone and textarea champs as TextChamp)."""
    name = (type_name or "").removesuffix("Descriptor").removesuffix("Champ")
    return {"Email": "Text", "Phone": "Text", "Textarea": "Text", "AnnuaireEducation": "Text"}.get(name, name)


@dataclass(frozen=True)
class RoleSpec:
    """How a role is recognised: champ types, a label pattern, and optionally a pattern that the label
    or its section must (``context``) or must not (``not_context``) match. Patterns are regular
    expressions searched in the normalised label (lower case, no accents, words)."""

    role: str
    types: tuple[str, ...]
    label: str
    not_label: str | None = None
    context: str | None = None
    not_context: str | None = None
    parent: str | None = None  # the role of the repetition this column belongs to

    @property
    def private(self) -> bool:
        return self.role in PRIVATE_ROLES

    @property
    def several(self) -> bool:
        return self.role in SEVERAL


_REFERENT = r"referent|correspondant"
_SECOND = r"\bseconde?\b|\b2e\b|deuxieme|referent 2\b"
_SECOND_REFERENT = r"(\bseconde?\b|\b2e\b|deuxieme).*(referent|correspondant)|(referent|correspondant) 2\b"
_NAME = r"prenom.*\bnom\b|^nom\b|nom et prenom|nom du signataire"
_MAIL = r"mail|courriel|messagerie|adresse electronique"
_SCHOOL_TYPES = ("MultipleDropDownList", "Repetition", "Text", "DropDownList")

SPECS: dict[str, RoleSpec] = {s.role: s for s in (
    RoleSpec("siret", ("Siret",), r"siret"),
    RoleSpec("collectivite", ("Text",), r"nom de la collectivite|raison sociale|denomination"),
    RoleSpec("departement", ("Departement", "DropDownList"), r"^departement"),
    RoleSpec("commune", ("Commune",), r"commune|ville", not_context=r"\becole"),
    RoleSpec("signataire_nom", ("Text",), _NAME, not_label=r"ecole|" + _SECOND, not_context=_REFERENT),
    RoleSpec("signataire_prenom", ("Text",), r"^prenom$|^prenom du signataire", not_context=_REFERENT),
    RoleSpec("signataire_qualite", ("DropDownList", "Text"), r"qualite|fonction",
             not_label=r"precise|autre", not_context=_REFERENT),
    RoleSpec("signataire_qualite_autre", ("Text",), r"precise|autre", context=r"qualite|fonction",
             not_context=_REFERENT),
    RoleSpec("telephone", ("Text",), r"telephone|\btel\b", not_context=_REFERENT),
    RoleSpec("email", ("Text",), _MAIL, not_context=_REFERENT),
    RoleSpec("ecoles", _SCHOOL_TYPES, r"ecole|etablissement|\buai\b", not_label=r"nombre|precise|^choix"),
    RoleSpec("ecole_commune", ("Commune", "Text"), r"commune|ville", parent="ecoles"),
    RoleSpec("ecole_choix", ("DropDownList", "Text"), r"ecole|etablissement", not_label=r"\buai\b|\brne\b",
             parent="ecoles"),
    RoleSpec("ecole_uai", ("Text",), r"\buai\b|\brne\b", parent="ecoles"),
    RoleSpec("ecole_nom", ("Text",), r"^nom", parent="ecoles"),
    RoleSpec("nombre_ecoles", ("DropDownList", "IntegerNumber", "DecimalNumber", "Text"),
             r"nombre d?\s?(ecoles|etablissements)"),
    RoleSpec("cout", ("DropDownList", "IntegerNumber", "DecimalNumber", "Text"),
             r"\bcout\b|montant|contribution", not_label=r"^confirmation|nombre"),
    RoleSpec("referent1_nom", ("Text",), _NAME, not_label=_SECOND, context=_REFERENT),
    RoleSpec("referent1_email", ("Text",), _MAIL, not_label=_SECOND, context=_REFERENT),
    RoleSpec("referent2_nom", ("Text",), _NAME, context=_SECOND_REFERENT),
    RoleSpec("referent2_email", ("Text",), _MAIL, context=_SECOND_REFERENT),
    RoleSpec("engagements", ("Checkbox",), r"engage|informee|atteste|certifie",
             not_label=r"j approuve|\bsigne\b"),
    RoleSpec("signature", ("Checkbox",), r"j approuve|\bsigne\b|signature"),
    RoleSpec("pieces", ("PieceJustificative",), r"."),
    RoleSpec("commentaires", ("Text",), r"commentaire|observation|remarque"),
    # The académie's annotations.
    RoleSpec("convention_recue", ("Checkbox",), r"convention.*recue|recue"),
    RoleSpec("date_reception", ("Date", "Datetime"), r"reception"),
    RoleSpec("statut", ("DropDownList", "Text"), r"^statut"),
    RoleSpec("relance", ("Date", "Datetime"), r"relance"),
    RoleSpec("aaf_envoye", ("Checkbox",), r"\baaf\b|annuaire|transmis|livre"),
    RoleSpec("aaf_date", ("Date", "Datetime"), r"\baaf\b|annuaire|transmission|livraison"),
)}
assert set(SPECS) == set(ROLES)


@dataclass(frozen=True)
class Profile:
    name: str
    title: str  # the process, for people
    convention_deadline: bool  # a signed convention is due within two months (Occitanie)
    expected: tuple[str, ...]  # roles the profile cannot work without: each one missing is an error
    identifying: tuple[str, ...] = ()  # roles that tell this process's form from any other form
    needed: int = 0  # identifying roles that must match (``ecoles`` always among them)
    billed: bool = False  # the cost is declared in the form and billed per school
    title_pattern: str = ""  # a démarche title that says which process it is


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("occitanie", "adhésion par conventionnement (convention signée en PDF)", True,
            ("departement", "signataire_nom", "signataire_qualite", "telephone", "ecoles", "nombre_ecoles",
             "cout", "engagements"),
            identifying=("ecoles", "nombre_ecoles", "cout", "engagements"), needed=3,
            billed=True, title_pattern=r"adhesion"),
    Profile("poitiers", "convention signée en cochant une case", False,
            ("signataire_nom", "signataire_qualite", "ecoles", "signature"),
            identifying=("ecoles", "signataire_nom", "signataire_qualite", "signature"), needed=3,
            title_pattern=r"conventionnement ent"),
    Profile("creteil", "finalisation de commande (trois pièces justificatives)", False,
            ("departement", "commune", "signataire_nom", "signataire_prenom", "email", "telephone", "ecoles",
             "pieces"),
            identifying=("ecoles", "pieces", "departement", "commune"), needed=3,
            title_pattern=r"finalisation de commande"),
)}
assert set(PROFILES) == set(PROFILE_NAMES)
assert all("ecoles" in p.identifying and 0 < p.needed <= len(p.identifying) for p in PROFILES.values())
# Not an ENT-École form (or not recognised as one): mirrored, nothing read, nothing checked, nothing done.
NONE = Profile(NO_PROFILE, "pas un formulaire ENT-École reconnu", False, ())


def definition_of(name: str | None) -> Profile:
    """The profile named ``name`` (``none`` and unknown names: :data:`NONE`)."""
    return PROFILES.get(name or NO_PROFILE, NONE)


@dataclass
class Descriptor:
    id: str
    private: bool
    parent_id: str | None
    type: str
    label: str | None
    section: str = ""  # the header above it (normalised)
    required: bool = False
    options: list[str] | None = None
    description: str | None = None

    @property
    def norm(self) -> str:
        return normalize(self.label)


def descriptors_from_rows(rows: list[dict]) -> list[Descriptor]:
    """Descriptors in form order with the section each one sits in (repetition columns take their
    block's section)."""
    out: list[Descriptor] = []
    section = {0: "", 1: ""}
    by_id: dict[str, Descriptor] = {}
    top = [r for r in rows if not r.get("parent_id")]
    children = [r for r in rows if r.get("parent_id")]
    for r in top:
        private = int(r.get("private") or 0)
        if kind(r["type"]) == "HeaderSection":
            section[private] = normalize(r.get("label"))
        d = Descriptor(r["id"], bool(private), None, r["type"], r.get("label"), section[private],
                       bool(r.get("required")), _options(r.get("options")), r.get("description"))
        out.append(d)
        by_id[d.id] = d
    for r in children:
        parent = by_id.get(r["parent_id"])
        out.append(Descriptor(r["id"], bool(r.get("private")), r["parent_id"], r["type"], r.get("label"),
                              parent.section if parent else "", bool(r.get("required")), _options(r.get("options")),
                              r.get("description")))
    return out


def _options(value: Any) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None


def match(spec: RoleSpec, descriptors: list[Descriptor], parents: dict[str, list[str]]) -> list[Descriptor]:
    """The descriptors ``spec`` recognises (``parents``: role -> descriptor ids already resolved)."""
    found = []
    for d in descriptors:
        if d.private != spec.private or kind(d.type) not in spec.types:
            continue
        if spec.parent is None:
            if d.parent_id is not None:
                continue
        elif d.parent_id not in parents.get(spec.parent, ()):
            continue
        label = d.norm
        if not re.search(spec.label, label):
            continue
        if spec.not_label and re.search(spec.not_label, label):
            continue
        context = f"{label} | {d.section}"
        if spec.context and not re.search(spec.context, context):
            continue
        if spec.not_context and re.search(spec.not_context, context):
            continue
        if spec.role == "ecoles" and not _looks_like_schools(d, descriptors):
            continue
        found.append(d)
    return found


_UAI_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9]{3}[0-9A-Za-z]{4}[A-Za-z](?![0-9A-Za-z])")


def _looks_like_schools(d: Descriptor, descriptors: list[Descriptor]) -> bool:
    """A school champ: a repetition (of schools), a drop-down whose options carry UAIs, or a text champ
    (an AnnuaireEducation champ, or a typed UAI)."""
    k = kind(d.type)
    if k == "Repetition":
        return any(c.parent_id == d.id for c in descriptors)
    if k in ("MultipleDropDownList", "DropDownList"):
        return bool(d.options) and any(_UAI_IN_TEXT.search(o or "") for o in d.options[:50])
    return d.type.startswith("AnnuaireEducation") or bool(re.search(r"\buai\b|\brne\b", d.norm))


@dataclass
class Resolution:
    """The roles of one démarche's form. ``champ(role)``: the one descriptor id (None when the role is
    missing or ambiguous); ``champs(role)``: every descriptor id mapped to it. ``problems``: what the
    profile cannot work without (errors); ``warnings``: what it can (an optional role ambiguous or
    named by an override that matches nothing, a démarche not synced yet). ``note``: why the profile
    is ``none`` when detection recognised nothing. ``service``: what the démarche says of who runs it
    (its service's name and organisme), ``texts``: what its form says (descriptions), for the settings."""

    demarche: int
    profile: str
    detected: bool
    mapping: dict[str, list[Descriptor]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    descriptors: list[Descriptor] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    note: str | None = None
    service: str = ""
    description: str = ""

    @property
    def definition(self) -> Profile:
        return definition_of(self.profile)

    @property
    def recognised(self) -> bool:
        """An ENT-École form (configured or detected): its dossiers are read and checked."""
        return self.profile != NO_PROFILE

    @property
    def convention_deadline(self) -> bool:
        return self.definition.convention_deadline

    def champ(self, role: str) -> str | None:
        found = self.mapping.get(role) or []
        return found[0].id if len(found) == 1 else None

    def champs(self, role: str) -> list[str]:
        return [d.id for d in self.mapping.get(role) or []]

    def label(self, role: str) -> str | None:
        found = self.mapping.get(role) or []
        return found[0].label if len(found) == 1 else None

    def descriptor(self, role: str) -> Descriptor | None:
        found = self.mapping.get(role) or []
        return found[0] if len(found) == 1 else None


def _describe(d: Descriptor) -> str:
    label = d.label or ""
    label = label if len(label) <= 70 else label[:67] + "…"
    return f"«{label}» ({kind(d.type)}, {d.id})"


def map_roles(descriptors: list[Descriptor], profile: Profile, overrides: dict[str, str],
              demarche: int) -> tuple[dict[str, list[Descriptor]], list[str], list[str]]:
    """Every role mapped against these descriptors, with the problems (human messages): errors (a
    role of ``profile.expected``) and warnings (any other role)."""
    mapping: dict[str, list[Descriptor]] = {}
    errors: list[str] = []
    warnings: list[str] = []
    parents: dict[str, list[str]] = {}
    ordered = [r for r in ROLES if r not in SCHOOL_COLUMNS] + list(SCHOOL_COLUMNS)
    for role in ordered:
        spec = SPECS[role]
        graded = errors if role in profile.expected else warnings
        if role in overrides:
            found, problem = _override(role, overrides[role], descriptors, demarche)
            if problem:
                graded.append(problem)
        else:
            found = match(spec, descriptors, parents)
            if len(found) > 1 and not spec.several:
                names = ", ".join(_describe(d) for d in found)
                graded.append(
                    f"démarche {demarche}: role {role} matches {len(found)} champs: {names}; "
                    f"name the right one in [demarches.roles] {role} = \"<label or descriptor id>\"")
                found = []
            if not found and role in profile.expected:
                errors.append(_missing(role, spec, descriptors, demarche))
        if found:
            mapping[role] = found
            parents[role] = [d.id for d in found]
    if "ecoles" in mapping and not _lists_schools(mapping):
        (errors if "ecoles" in profile.expected else warnings).append(
            f"démarche {demarche}: the schools' block {_describe(mapping['ecoles'][0])} has no "
            "column with the school (a drop-down of schools or a UAI)")
    return mapping, errors, warnings


def _lists_schools(mapping: dict[str, list[Descriptor]]) -> bool:
    """The ``ecoles`` role is a list of schools: a repetition needs a school or UAI column."""
    found = mapping.get("ecoles") or []
    if not found:
        return False
    return kind(found[0].type) != "Repetition" or any(r in mapping for r in ("ecole_choix", "ecole_uai"))


def _missing(role: str, spec: RoleSpec, descriptors: list[Descriptor], demarche: int) -> str:
    candidates = [d for d in descriptors if d.private == spec.private and kind(d.type) in spec.types]
    near = difflib.get_close_matches(role.replace("_", " "), [d.norm for d in candidates], n=3, cutoff=0.1)
    names = ", ".join(_describe(d) for d in candidates if d.norm in near)
    hint = f"; candidates: {names}" if names else ""
    return (f"démarche {demarche}: role {role} matches no champ{hint}; name it in [demarches.roles] "
            f"{role} = \"<label or descriptor id>\"")


def _override(role: str, wanted: str, descriptors: list[Descriptor],
              demarche: int) -> tuple[list[Descriptor], str | None]:
    spec = SPECS[role]
    pool = [d for d in descriptors if d.private == spec.private and kind(d.type) not in ("HeaderSection", "Explication")]
    by_id = [d for d in pool if d.id == wanted]
    if by_id:
        return by_id, None
    names = [n.strip() for n in wanted.split("|")] if spec.several else [wanted]
    found: list[Descriptor] = []
    for name in names:
        hits = [d for d in pool if (d.label or "").strip() == name] or [d for d in pool if d.norm == normalize(name)]
        if len(hits) == 1 or (hits and spec.several):
            found += hits
            continue
        if hits:
            return [], (f"démarche {demarche}: [demarches.roles] {role} = {name!r} matches {len(hits)} champs: "
                        f"{', '.join(_describe(d) for d in hits)}; use the descriptor id instead")
        close = difflib.get_close_matches(normalize(name), [d.norm for d in pool], n=3, cutoff=0.5)
        hint = ", ".join(_describe(next(d for d in pool if d.norm == c)) for c in close)
        return [], (f"démarche {demarche}: [demarches.roles] {role} = {name!r} is no champ label or descriptor id "
                    f"of the active revision" + (f"; did you mean {hint}?" if hint else ""))
    return found, None


def score(mapping: dict[str, list[Descriptor]], profile: Profile) -> float:
    return sum(1 for r in profile.expected if mapping.get(r)) / len(profile.expected)


def identifying_roles(mapping: dict[str, list[Descriptor]], profile: Profile) -> tuple[list[str], list[str]]:
    """The profile's identifying roles this mapping has, and those it lacks (``ecoles`` counts only as
    a list of schools)."""
    has = [r for r in profile.identifying if (_lists_schools(mapping) if r == "ecoles" else mapping.get(r))]
    return has, [r for r in profile.identifying if r not in has]


def recognises(mapping: dict[str, list[Descriptor]], profile: Profile) -> bool:
    """The form is this profile's: ``ecoles`` and at least ``profile.needed`` identifying roles match."""
    has, _ = identifying_roles(mapping, profile)
    return "ecoles" in has and len(has) >= profile.needed


def rule_of(profile: Profile) -> str:
    """How ``profile`` is recognised, for people (check-config, README)."""
    others = [r for r in profile.identifying if r != "ecoles"]
    return f"ecoles and {profile.needed - 1} of {', '.join(others)}"


def _none_note(demarche: int, candidates: list[tuple[str, dict[str, list[Descriptor]]]]) -> str:
    """"no ENT-École profile recognised", the best candidate and what it lacked."""
    def strength(item: tuple[str, dict]) -> tuple[int, float]:
        name, mapping = item
        return len(identifying_roles(mapping, PROFILES[name])[0]), score(mapping, PROFILES[name])

    name, mapping = max(candidates, key=strength)
    has, lacks = identifying_roles(mapping, PROFILES[name])
    return (f"démarche {demarche}: no ENT-École profile recognised; best candidate {name} "
            f"({len(has)} of {len(PROFILES[name].identifying)} identifying roles: "
            f"{'has ' + ', '.join(has) + '; ' if has else ''}lacks {', '.join(lacks)}; it needs "
            f"{rule_of(PROFILES[name])}). Mirrored without form checks, conventions or actions; if it is an "
            f"ENT-École form, set profile = \"{name}\" and name its champs in [demarches.roles]")


def resolve_descriptors(demarche: int, rows: list[dict], title: str | None,
                        demarche_config: DemarcheConfig | None = None, service: str = "",
                        description: str = "") -> Resolution:
    """``resolve()`` on descriptor rows already read (tests, check-config). ``title`` None: the démarche
    is not in the mirror yet."""
    descriptors = descriptors_from_rows(rows)
    configured = getattr(demarche_config, "profile", "auto") or "auto"
    overrides = dict(getattr(demarche_config, "roles", ()) or ())
    facts = {"service": service or "", "description": description or ""}
    if configured == NO_PROFILE:
        return Resolution(demarche, NO_PROFILE, False, descriptors=descriptors, **facts)
    if not descriptors:
        name = configured if configured != "auto" else NO_PROFILE
        if title is None:
            return Resolution(demarche, name, configured == "auto", warnings=[
                f"démarche {demarche}: not in the mirror yet (run a sync first): its form is not read"], **facts)
        note = (f"démarche {demarche}: no ENT-École profile recognised: its form has no champ"
                if name == NO_PROFILE else None)
        problems = [] if name == NO_PROFILE else [f"démarche {demarche}: its form has no champ for profile {name}"]
        return Resolution(demarche, name, configured == "auto", problems=problems, note=note, **facts)
    if configured != "auto":
        mapping, errors, warnings = map_roles(descriptors, PROFILES[configured], overrides, demarche)
        return Resolution(demarche, configured, False, mapping, errors, descriptors, warnings, **facts)
    best: tuple[tuple[float, int, int], str, dict, list, list] | None = None
    candidates: list[tuple[str, dict[str, list[Descriptor]]]] = []
    for name, profile in PROFILES.items():
        mapping, errors, warnings = map_roles(descriptors, profile, overrides, demarche)
        candidates.append((name, mapping))
        if not recognises(mapping, profile):
            continue
        titled = int(bool(profile.title_pattern and re.search(profile.title_pattern, normalize(title))))
        key = (score(mapping, profile), titled, len(profile.expected))
        if best is None or key > best[0]:
            best = (key, name, mapping, errors, warnings)
    if best is None:
        return Resolution(demarche, NO_PROFILE, True, descriptors=descriptors,
                          note=_none_note(demarche, candidates), **facts)
    return Resolution(demarche, best[1], True, best[2], best[3], descriptors, best[4], **facts)


def resolve(db: sqlite_utils.Database, demarche_number: int,
            demarche_config: DemarcheConfig | None = None) -> Resolution:
    """The roles of the démarche's form, from the mirror's champ descriptors (its active revision).
    ``demarche_config``: a ``DemarcheConfig`` (``profile``, ``roles`` overrides) or None (auto)."""
    service, description = store.demarche_facts(db, demarche_number)
    return resolve_descriptors(demarche_number, store.champ_descriptors(db, demarche_number),
                               store.demarche_title(db, demarche_number), demarche_config, service, description)
