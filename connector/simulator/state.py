"""The simulator's world: démarches, dossiers, champs, messages, files, tokens, and its clock.

This module is the contract between the seeder (``seed.py``, which builds a World) and the GraphQL
app (``app.py`` and friends, which serve and mutate it). Records hold DS's *internal* facts
(microsecond timestamps, hidden-at columns, stable ids); the GraphQL layer derives what the API
shows (Paris-time strings at second precision, typed ids, visibility rules).

Conventions
- Every datetime is timezone-aware UTC with microseconds (DS's ``updated_at`` precision); the API
  layer formats it with :func:`iso` (Europe/Paris, seconds).
- ``Champ.type`` is the *real* GraphQL object type (``"CommuneChamp"``, ``"DropDownListChamp"``...);
  the API layer decides which typename to show from the fragments in the document (docs/ds-api.md §7).
- ``Champ.value`` holds the typed value for that type (see the table in :class:`Champ`).
- Nothing in here imports connector code outside ``connector.simulator`` and ``connector.schema``.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc

# DS's Commentaire::SYSTEM_EMAILS (CONTACT_EMAIL first).
SYSTEM_EMAIL = "contact@demarche.numerique.gouv.fr"

DOSSIER_STATES = ("brouillon", "en_construction", "en_instruction", "accepte", "refuse", "sans_suite")
TERMINATED = ("accepte", "refuse", "sans_suite")
DELETED_REASONS = (
    "expired", "instructeur_request", "manager_request", "procedure_removed",
    "user_expired", "user_removed", "user_request",
)


def iso(dt: datetime | None) -> str | None:
    """DS's ISO8601DateTime rendering: Europe/Paris offset, truncated to the second."""
    if dt is None:
        return None
    return dt.astimezone(PARIS).isoformat(timespec="seconds")


def typed_id(kind: str, key: Any) -> str:
    """DS's GraphQL ids: base64("<Type>-<key>") (strict base64, padded), e.g. Dossier-12."""
    return base64.b64encode(f"{kind}-{key}".encode()).decode()


def parse_typed_id(value: str) -> tuple[str, str] | None:
    """Inverse of :func:`typed_id`; None when ``value`` is not one."""
    try:
        raw = base64.b64decode(value.encode(), validate=True).decode()
    except Exception:
        return None
    kind, sep, key = raw.partition("-")
    return (kind, key) if sep else None


class Clock:
    """Simulated time: a fixed start instant that ticks with the real clock, plus a movable offset.

    Data seeded for a seed is the same whatever the day it runs; tests move time with :meth:`advance`.
    """

    def __init__(self, start: datetime):
        self.start = start.astimezone(UTC)
        self._t0 = time.monotonic()
        self.offset = timedelta()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass(slots=True)
class Token:
    """An API token (the bearer string is the dict key in World.tokens)."""

    demarches: frozenset[int] | None = None  # None: every démarche of the administrateur
    expired: bool = False
    write_access: bool = True
    revoked: bool = False


@dataclass(slots=True)
class Instructeur:
    id: int
    email: str


@dataclass(slots=True)
class GroupeInstructeur:
    id: int
    number: int
    label: str
    closed: bool = False
    instructeur_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Label:
    id: int
    name: str
    color: str  # LabelColorEnum value, e.g. "green_bourgeon"


@dataclass(slots=True)
class StoredFile:
    """A file DS stores. Its bytes are generated from ``key`` (see ``content``), never kept twice.

    ``checksum`` is base64(md5(bytes)); ``size`` is the byte size (byteSizeBigInt, a string on the API).
    """

    key: str  # unique, stable: identifies the blob in file URLs
    filename: str
    content_type: str
    size: int
    checksum: str
    created_at: datetime
    virus_scan: str = "safe"  # pending | safe | infected | integrity_error


@dataclass(slots=True)
class Row:
    id: str  # "Row-<ulid-like>" key; typed_id("Row", ...) on the API
    champs: list["Champ"]


@dataclass(slots=True)
class Champ:
    """One champ (or annotation) of a dossier.

    ``value`` by ``type``:
      TextChamp/TextareaChamp-like (all exposed as TextChamp): str | None
      CheckboxChamp / YesNoChamp: bool | None         DateChamp: "YYYY-MM-DD" | None
      DatetimeChamp: datetime | None                  IntegerNumberChamp: int | None
      DecimalNumberChamp: float | None                DropDownListChamp: str | None
      MultipleDropDownListChamp: list[str]            CiviliteChamp: "M." | "Mme" | None
      CommuneChamp: {"commune": {"name","code","postalCode"}, "departement": {"name","code"}} | None
      DepartementChamp: {"name","code"} | None        SiretChamp: {"siret": ...} | None
      PieceJustificativeChamp: None (see ``files``)   RepetitionChamp: None (see ``rows``)
      HeaderSectionChamp / ExplicationChamp: None
      CarteChamp: [{"__typename": "SelectionUtilisateur"|"ParcelleCadastrale", "id", "source",
                    "description", "geometry": {"type", "coordinates"}, ...}]
      EpciChamp: {"epci": {"name","code"}, "departement": {"name","code"}} | None
      RNAChamp: {"rna": {"id","title","address"}, "commune", "departement"} | None   RNFChamp: likewise with "rnf"
      EngagementJuridiqueChamp: {"montantEngage","montantPaye"} | None
      DossierLinkChamp: None (``string_value`` is the linked dossier's number, as DS sends it)
    ``string_value`` is DS's ``stringValue`` (None for pièces justificatives).
    """

    stable_id: int
    type: str
    label: str
    string_value: str | None = None
    value: Any = None
    files: list[StoredFile] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    updated_at: datetime | None = None
    prefilled: bool = False


@dataclass(slots=True)
class ChampDescriptor:
    stable_id: int
    type: str  # champ type, e.g. "RepetitionChamp"; the descriptor typename is type + "Descriptor"
    label: str
    description: str | None = None
    required: bool = False
    options: list[str] | None = None
    children: list["ChampDescriptor"] = field(default_factory=list)


@dataclass(slots=True)
class Revision:
    id: int
    created_at: datetime
    published_at: datetime | None
    champ_descriptors: list[ChampDescriptor]
    annotation_descriptors: list[ChampDescriptor]


@dataclass(slots=True)
class Message:
    id: int
    email: str
    body: str
    created_at: datetime
    attachments: list[StoredFile] = field(default_factory=list)
    discarded_at: datetime | None = None


@dataclass(slots=True)
class Traitement:
    id: int
    state: str  # en_construction | en_instruction | accepte | refuse | sans_suite
    event: str  # TraitementEvent value, e.g. "depose", "passer_en_instruction", "accepter"...
    processed_at: datetime
    email_agent_traitant: str | None = None
    motivation: str | None = None


@dataclass(slots=True)
class Dossier:
    number: int  # also the db id: DS ids are typed_id("Dossier", number)
    demarche_number: int
    state: str
    created_at: datetime
    updated_at: datetime
    revision_id: int
    groupe_instructeur_number: int
    usager_email: str
    demandeur: dict[str, Any]  # GraphQL-shaped, with "__typename" (PersonneMorale/…Incomplete/PersonnePhysique)
    champs: list[Champ] = field(default_factory=list)
    annotations: list[Champ] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    traitements: list[Traitement] = field(default_factory=list)
    follower_ids: list[int] = field(default_factory=list)
    label_ids: list[int] = field(default_factory=list)
    archived: bool = False
    depose_at: datetime | None = None
    en_construction_at: datetime | None = None
    en_instruction_at: datetime | None = None
    processed_at: datetime | None = None
    champs_updated_at: datetime | None = None
    annotations_updated_at: datetime | None = None
    hidden_by_user_at: datetime | None = None
    hidden_by_administration_at: datetime | None = None
    hidden_by_expired_at: datetime | None = None
    motivation: str | None = None
    connection_usager: str = "password"  # password | france_connect | deleted
    pending_correction_at: datetime | None = None
    attestation: StoredFile | None = None
    # Planted test anomaly names (e.g. "count_mismatch", "bad_uai"), for tests to check detection.
    anomalies: tuple[str, ...] = ()


@dataclass(slots=True)
class DeletedDossier:
    """A purged dossier (deletedDossiers). ``id`` is DeletedDossier's own db id."""

    id: int
    number: int
    demarche_number: int
    state: str
    reason: str
    deleted_at: datetime


@dataclass
class Demarche:
    number: int
    title: str
    description: str
    state: str  # DemarcheState: publiee, close, ...
    declarative: str | None  # "accepte" | "en_instruction" | None
    created_at: datetime
    published_at: datetime | None
    revisions: list[Revision]
    active_revision_id: int
    groupes: list[GroupeInstructeur]
    labels: list[Label] = field(default_factory=list)
    kind: str = ""  # "occitanie" | "poitiers" | "creteil": which ENT-École process it models
    fee_cents: int | None = None  # annual fee per school (Occitanie: 4100 for 2026-27)
    duree_conservation_mois: int = 12
    service: tuple[str, str] | None = None  # (nom, organisme) of the service that runs it (DS's Service)


@dataclass
class World:
    """Everything the simulator knows. Mutate only through the app layer (it bumps updated_at)."""

    clock: Clock
    demarches: dict[int, Demarche] = field(default_factory=dict)
    dossiers: dict[int, Dossier] = field(default_factory=dict)  # by number, every démarche
    deleted: list[DeletedDossier] = field(default_factory=list)
    instructeurs: dict[int, Instructeur] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    seed: int = 0
    next_ids: dict[str, int] = field(default_factory=dict)

    def new_id(self, kind: str) -> int:
        """A fresh db id for ``kind`` ("Dossier", "Commentaire", "File", "Row", ...)."""
        n = self.next_ids.get(kind, 0) + 1
        self.next_ids[kind] = n
        return n


_MAGIC = {
    "application/pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "text/plain": b"",
}


def file_content(key: str, size: int, content_type: str) -> bytes:
    """The bytes of a stored file: deterministic from its key, exactly ``size`` long."""
    import random

    head = _MAGIC.get(content_type, b"")[:size]
    body = random.Random(key).randbytes(max(0, size - len(head)))
    return head + body


def make_file(
    world: World,
    filename: str,
    content_type: str,
    size: int,
    created_at: datetime,
    virus_scan: str = "safe",
) -> StoredFile:
    """Create a StoredFile with a fresh key and the right checksum (base64 of the MD5 digest)."""
    import hashlib

    key = f"f{world.seed}-{world.new_id('Blob')}"
    digest = hashlib.md5(file_content(key, size, content_type)).digest()
    return StoredFile(
        key=key,
        filename=filename,
        content_type=content_type,
        size=size,
        checksum=base64.b64encode(digest).decode(),
        created_at=created_at,
        virus_scan=virus_scan,
    )
