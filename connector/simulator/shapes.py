"""The world's records as GraphQL-shaped dicts: what DS's types expose (docs/ds-api.md §7).

A shape's keys are the schema's field names, so graphql-core's default resolver reads them
directly; the few fields that depend on the request (``File.url``, a champ's ``__typename``,
``champs(id:)``...) get resolvers in ``resolvers.py`` and read the underscore keys kept here.
Shapes hold no request-specific data, so the app caches a dossier's shape until it changes.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any

from connector.schema import schema
from connector.simulator.state import (
    PARIS,
    Champ,
    ChampDescriptor,
    Demarche,
    DeletedDossier,
    Dossier,
    GroupeInstructeur,
    Message,
    Revision,
    StoredFile,
    World,
    iso,
    typed_id,
)

# Attachments DS silently drops from every list (app/graphql/extensions/attachment.rb).
DROPPED_SCANS = ("infected", "integrity_error")

# Champ types shown as their real type only when the document holds a fragment on it (§7).
FALLBACK_TYPES = {
    "AddressChamp": "TextChamp",
    "CommuneChamp": "TextChamp",
    "DepartementChamp": "TextChamp",
    "RegionChamp": "TextChamp",
    "PaysChamp": "TextChamp",
    "DropDownListChamp": "TextChamp",
    "HeaderSectionChamp": "TextChamp",
    "ExplicationChamp": "TextChamp",
    "YesNoChamp": "CheckboxChamp",
    "DatetimeChamp": "DateChamp",
    "TitreIdentiteChamp": "PieceJustificativeChamp",
}

# Champ types whose value object is the field itself (DepartementChamp.departement...).
_OBJECT_FIELD = {"DepartementChamp": "departement", "RegionChamp": "region", "PaysChamp": "pays"}
# Champ types whose value dict holds several fields (CommuneChamp.commune + .departement...).
_MULTI_FIELD = ("CommuneChamp", "AddressChamp", "LinkedDropDownListChamp", "EpciChamp", "RNAChamp", "RNFChamp")
_CIVILITE = {"M.": "M", "M": "M", "Mme": "Mme"}
# DS's TypeDeChamp names that do not follow the CamelCase -> snake_case rule.
_TYPE_DE_CHAMP = {"Commune": "communes", "Departement": "departements", "Region": "regions"}


@lru_cache(maxsize=1)
def champ_types() -> frozenset[str]:
    s = schema()
    return frozenset(t.name for t in s.get_possible_types(s.type_map["Champ"]))


@lru_cache(maxsize=1)
def descriptor_types() -> frozenset[str]:
    s = schema()
    return frozenset(t.name for t in s.get_possible_types(s.type_map["ChampDescriptor"]))


@lru_cache(maxsize=1)
def type_de_champ_values() -> frozenset[str]:
    return frozenset(schema().type_map["TypeDeChamp"].values)


_ROOT_CHAMP_IDS: dict[int, str] = {}


def champ_id(stable_id: int) -> str:
    """A root champ's id, ``typed_id("Champ", stable_id)``: the same in every dossier (§7), so cached."""
    found = _ROOT_CHAMP_IDS.get(stable_id)
    if found is None:
        found = _ROOT_CHAMP_IDS[stable_id] = typed_id("Champ", stable_id)
    return found


def file_shape(f: StoredFile) -> dict[str, Any]:
    return {
        "_key": f.key,
        "filename": f.filename,
        "contentType": f.content_type,
        "checksum": f.checksum,
        "byteSizeBigInt": str(f.size),
        "byteSize": f.size,
        "createdAt": iso(f.created_at),
        "virusScanResult": f.virus_scan,
    }


def files_shape(files: list[StoredFile]) -> list[dict[str, Any]]:
    return [file_shape(f) for f in files if f.virus_scan not in DROPPED_SCANS]


def profile(kind: str, ident: Any, email: str) -> dict[str, Any]:
    return {"id": typed_id(kind, ident), "email": email}


def _midnight(day: str) -> str | None:
    try:
        return iso(datetime.combine(date.fromisoformat(day), time(), PARIS))
    except (TypeError, ValueError):
        return None


def champ_shape(champ: Champ, fallback_time: datetime, row_id: str | None = None) -> dict[str, Any]:
    """A champ or annotation; ``_type`` is its real type, resolved per document (§7)."""
    kind = champ.type if champ.type in champ_types() else "TextChamp"
    key = champ.stable_id if row_id is None else f"{champ.stable_id}|{row_id}"
    value = champ.value
    out: dict[str, Any] = {
        "_type": kind,
        "_stable_id": champ.stable_id,
        "id": champ_id(champ.stable_id) if row_id is None else typed_id("Champ", key),
        "champDescriptorId": champ_id(champ.stable_id),
        "label": champ.label,
        "stringValue": champ.string_value,
        "updatedAt": iso(champ.updated_at or fallback_time),
        "prefilled": champ.prefilled,
        "columns": [],
        # TextChamp.value, also what fallback types (CommuneChamp shown as TextChamp...) answer.
        "value": champ.string_value,
    }
    if kind in ("TextChamp", "DropDownListChamp", "YesNoChamp", "DecimalNumberChamp"):
        out["value"] = value
    elif kind == "CheckboxChamp":
        out["value"] = bool(value)
    elif kind == "IntegerNumberChamp":
        out["value"] = None if value is None else str(value)  # BigInt is a string on the wire
    elif kind == "CiviliteChamp":
        out["value"] = _CIVILITE.get(value)
    elif kind == "DateChamp":
        out["date"] = value
        out["value"] = _midnight(value) if value else None
    elif kind == "DatetimeChamp":
        out["datetime"] = out["value"] = iso(value)
        out["date"] = value.astimezone(PARIS).date().isoformat() if value else None
    elif kind == "MultipleDropDownListChamp":
        out["values"] = list(value or [])
    elif kind in _OBJECT_FIELD:
        out[_OBJECT_FIELD[kind]] = value
    elif kind in _MULTI_FIELD and isinstance(value, dict):
        out.update(value)
    elif kind == "SiretChamp":
        out["etablissement"] = (
            {"__typename": "PersonneMorale", "id": typed_id("Etablissement", value.get("siret")), **value}
            if isinstance(value, dict) else None
        )
    elif kind in ("PieceJustificativeChamp", "TitreIdentiteChamp"):
        files = files_shape(champ.files)
        out["files"] = files
        out["file"] = files[0] if files else None
        out["filled"] = bool(files)
        out["grantType"] = "piece_justificative"
    elif kind == "RepetitionChamp":
        rows = []
        for row in champ.rows:
            rid = row.id.removeprefix("Row-")
            rows.append({
                "id": typed_id("Row", rid),
                "champs": [champ_shape(c, fallback_time, rid) for c in row.champs],
            })
        out["rows"] = rows
        out["champs"] = [c for r in rows for c in r["champs"]]
    elif kind == "HeaderSectionChamp":
        out["level"] = 1
    elif kind == "CarteChamp":  # value: the areas, each with its __typename (GeoArea is an interface)
        out["geoAreas"] = list(value or [])
    elif kind == "EngagementJuridiqueChamp":
        out["engagementJuridique"] = value
    elif kind == "DossierLinkChamp":
        out["dossier"] = None  # the linked dossier itself: not served by the simulator
    return out


def descriptor_shape(d: ChampDescriptor) -> dict[str, Any]:
    typename = f"{d.type}Descriptor"
    if typename not in descriptor_types():
        typename = "TextChampDescriptor"
    base = d.type.removesuffix("Champ")
    tdc = _TYPE_DE_CHAMP.get(base) or "".join("_" + c.lower() if c.isupper() else c for c in base).lstrip("_")
    children = [descriptor_shape(c) for c in d.children] if d.type == "RepetitionChamp" else None
    return {
        "__typename": typename,
        "id": typed_id("Champ", d.stable_id),
        "label": d.label,
        "description": d.description,
        "required": d.required,
        "options": d.options,
        "otherOption": False if d.options is not None else None,
        "champDescriptors": children,
        "type": tdc if tdc in type_de_champ_values() else "text",
        "level": 1,
    }


def revision_shape(r: Revision) -> dict[str, Any]:
    return {
        "id": typed_id("ProcedureRevision", r.id),
        "dateCreation": iso(r.created_at),
        "datePublication": iso(r.published_at),
        "champDescriptors": [descriptor_shape(d) for d in r.champ_descriptors],
        "annotationDescriptors": [descriptor_shape(d) for d in r.annotation_descriptors],
    }


def groupe_shape(world: World, g: GroupeInstructeur) -> dict[str, Any]:
    return {
        "id": typed_id("GroupeInstructeur", g.id),
        "number": g.number,
        "label": g.label,
        "closed": g.closed,
        "instructeurs": [
            profile("Instructeur", i, world.instructeurs[i].email) for i in g.instructeur_ids if i in world.instructeurs
        ],
    }


def demarche_shape(world: World, d: Demarche) -> dict[str, Any]:
    """Demarche (and the DemarcheDescriptor fields): revisions, groups, labels; dossier lists resolve apart."""
    revisions = {r.id: revision_shape(r) for r in d.revisions}
    active = revisions[d.active_revision_id]
    published = [r for r in d.revisions if r.published_at]
    return {
        "_number": d.number,
        "_revisions": revisions,
        "id": typed_id("Procedure", d.number),
        "number": d.number,
        "title": d.title,
        "description": d.description,
        "state": d.state,
        "declarative": d.declarative,
        "dateCreation": iso(d.created_at),
        "datePublication": iso(d.published_at),
        "dateDerniereModification": iso(max(r.created_at for r in d.revisions) if d.revisions else d.created_at),
        "dateDepublication": None,
        "dateFermeture": None,
        "activeRevision": active,
        "revision": active,
        "publishedRevision": revisions[published[-1].id] if published else None,
        "draftRevision": active,
        "revisions": list(revisions.values()),
        "champDescriptors": active["champDescriptors"],
        "annotationDescriptors": active["annotationDescriptors"],
        "_groupes": [groupe_shape(world, g) for g in d.groupes],
        "labels": [{"id": typed_id("Label", lb.id), "name": lb.name, "color": lb.color} for lb in d.labels],
        "administrateurs": [],
        "service": None if d.service is None else {
            "id": typed_id("Service", d.number), "nom": d.service[0], "organisme": d.service[1], "siret": None,
            "typeOrganisme": "administration_centrale"},
        "dureeConservationDossiers": d.duree_conservation_mois,
        "opendata": False,
        "tags": [],
        "zones": [],
    }


def _add_months(dt: datetime, months: int) -> datetime:
    month = dt.month - 1 + months
    year, month = dt.year + month // 12, month % 12 + 1
    for day in range(dt.day, 27, -1):
        try:
            return dt.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return dt.replace(year=year, month=month, day=min(dt.day, 28))


def expiration(d: Dossier, months: int) -> datetime | None:
    """DS's ``expired_at``: the retention period counted from the last state date; none en instruction."""
    if d.state == "en_instruction":
        return None
    start = d.processed_at if d.state in ("accepte", "refuse", "sans_suite") else d.en_construction_at
    return _add_months(start, months) if start else None


def message_shape(m: Message) -> dict[str, Any]:
    discarded = m.discarded_at is not None
    files = [] if discarded else files_shape(m.attachments)
    return {
        "_id": m.id,
        "id": typed_id("Commentaire", m.id),
        "email": m.email,
        "body": "" if discarded else m.body,
        "createdAt": iso(m.created_at),
        "discardedAt": iso(m.discarded_at),
        "attachments": files,
        "attachment": files[0] if files else None,
        "correction": None,
    }


def is_degraded(demandeur: dict[str, Any]) -> bool:
    """Degraded API Entreprise data (§7): PersonneMoraleIncomplete, or a PersonneMorale lacking siegeSocial."""
    kind = demandeur.get("__typename")
    return kind == "PersonneMoraleIncomplete" or (kind == "PersonneMorale" and demandeur.get("siegeSocial") is None)


def dossier_shape(world: World, d: Dossier, demarche: dict[str, Any]) -> dict[str, Any]:
    dem = world.demarches[d.demarche_number]
    groupe = next((g for g in demarche["_groupes"] if g["number"] == d.groupe_instructeur_number), None)
    revision = demarche["_revisions"].get(d.revision_id, demarche["activeRevision"])
    demandeur = dict(d.demandeur)
    kind = "Individual" if demandeur.get("__typename") == "PersonnePhysique" else "Etablissement"
    demandeur.setdefault("id", typed_id(kind, d.number))
    labels = {lb["id"]: lb for lb in demarche["labels"]}
    deleted_user = d.connection_usager == "deleted"
    return {
        "_number": d.number,
        "id": typed_id("Dossier", d.number),
        "number": d.number,
        "state": d.state,
        "archived": d.archived,
        "prefilled": False,
        "dateDepot": iso(d.depose_at),
        "datePassageEnConstruction": iso(d.en_construction_at or d.depose_at),
        "datePassageEnInstruction": iso(d.en_instruction_at),
        "dateTraitement": iso(d.processed_at),
        "dateExpiration": iso(expiration(d, dem.duree_conservation_mois)),
        "dateDerniereModification": iso(d.updated_at),
        "dateDerniereModificationChamps": iso(d.champs_updated_at or d.created_at),
        "dateDerniereModificationAnnotations": iso(d.annotations_updated_at or d.created_at),
        "dateSuppressionParUsager": iso(d.hidden_by_user_at),
        "dateSuppressionParAdministration": iso(d.hidden_by_administration_at),
        "dateDerniereCorrectionEnAttente": iso(d.pending_correction_at),
        "connectionUsager": d.connection_usager,
        "motivation": d.motivation,
        "motivationAttachment": None,
        "attestation": file_shape(d.attestation) if d.attestation and d.attestation.virus_scan not in DROPPED_SCANS else None,
        "pdf": None,
        "geojson": None,
        "deposeParUnTiers": False,
        "prenomMandataire": None,
        "nomMandataire": None,
        "usager": {
            "id": "<deleted>" if deleted_user else typed_id("User", zlib.crc32(d.usager_email.encode())),
            "email": d.usager_email,
        },
        "demandeur": demandeur,
        "groupeInstructeur": groupe,
        "instructeurs": [
            profile("Instructeur", i, world.instructeurs[i].email) for i in d.follower_ids if i in world.instructeurs
        ],
        "labels": [labels[typed_id("Label", i)] for i in d.label_ids if typed_id("Label", i) in labels],
        "traitements": [
            {
                "id": typed_id("Traitement", t.id),
                "state": t.state,
                "event": t.event,
                "dateTraitement": iso(t.processed_at),
                "emailAgentTraitant": t.email_agent_traitant,
                "motivation": t.motivation,
                "revision": None,
            }
            for t in d.traitements
        ],
        "champs": [champ_shape(c, d.champs_updated_at or d.created_at) for c in d.champs],
        "annotations": [champ_shape(c, d.annotations_updated_at or d.created_at) for c in d.annotations],
        "messages": [message_shape(m) for m in sorted(d.messages, key=lambda m: (m.created_at, m.id))],
        "avis": [],
        "demarche": {**demarche, "revision": revision},
        "revision": revision,
    }


def deleted_shape(x: DeletedDossier) -> dict[str, Any]:
    return {
        "id": typed_id("DeletedDossier", x.id),
        "number": x.number,
        "state": x.state,
        "reason": x.reason,
        "dateSupression": iso(x.deleted_at),
    }


def pending_deleted_shape(d: Dossier, reason: str | None) -> dict[str, Any]:
    """A dossier in the trash, as DeletedDossier; ``reason`` is DS's ``hidden_by_reason``."""
    return {
        "id": typed_id("DeletedDossier", d.number),
        "number": d.number,
        "state": d.state,
        "reason": reason or ("user_request" if d.hidden_by_administration_at is None else "instructeur_request"),
        "dateSupression": iso(d.hidden_by_administration_at or d.hidden_by_user_at),
    }
