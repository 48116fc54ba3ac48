"""Turning DS JSON (queries/fragments.graphql shapes) into column values: champ values, message
senders, file keys, canonical raw JSON, date comparison, and the connector's one rule for the day of
an instant: its Europe/Paris calendar day (``paris_day``), whatever offset the text carries (DS writes
Paris offsets, the connector's own timestamps are UTC: cutting either string at 10 characters is wrong
for one of them, and for UTC between 00:00 and 01:00/02:00 Paris).
"""

from __future__ import annotations

import hashlib
import json

import orjson
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

# Commentaire::SYSTEM_EMAILS (docs/ds-api.md §7): CONTACT_EMAIL and its legacy spellings.
SYSTEM_EMAILS = frozenset({
    "contact@demarche.numerique.gouv.fr",
    "contact@demarches.numerique.gouv.fr",
    "contact@demarches-simplifiees.fr",
    "contact@tps.apientreprise.fr",
})

# Fields every champ carries (ChampFragment); the rest is type-specific.
_COMMON = frozenset({"id", "champDescriptorId", "__typename", "label", "stringValue", "updatedAt"})


def _json(value: Any) -> str | None:
    """Compact JSON, non-ASCII as is (orjson: what ``json.dumps(value, ensure_ascii=False,
    separators=(",", ":"))`` writes, faster; the stdlib for what orjson refuses)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)  # BigInt comes as a string


def _number(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# __typename -> the typed `value` column (aliases as in ChampFragment). Containers hold their item
# count: files of a pièce justificative, rows of a repetition.
CHAMP_VALUES = {
    "TextChamp": lambda c: c.get("text"),
    "DateChamp": lambda c: c.get("date"),
    "DatetimeChamp": lambda c: c.get("datetime"),
    "CheckboxChamp": lambda c: _flag(c.get("checked")),
    "YesNoChamp": lambda c: _flag(c.get("selected")),
    "DecimalNumberChamp": lambda c: _float(c.get("decimalNumber")),
    "IntegerNumberChamp": lambda c: _int(c.get("integerNumber")),
    "CiviliteChamp": lambda c: c.get("civilite"),
    "DropDownListChamp": lambda c: c.get("choice"),
    "MultipleDropDownListChamp": lambda c: _json(c.get("values")),
    "LinkedDropDownListChamp": lambda c: _json(
        {"primary": c.get("primaryValue"), "secondary": c.get("secondaryValue")}
    ),
    "CommuneChamp": lambda c: _json(
        {"commune": c["commune"], "departement": c.get("departement")} if c.get("commune") else None
    ),
    "DepartementChamp": lambda c: _json(c.get("departement")),
    "RegionChamp": lambda c: _json(c.get("region")),
    "PaysChamp": lambda c: _json(c.get("pays")),
    "AddressChamp": lambda c: _json(c.get("address")),
    "SiretChamp": lambda c: (c.get("etablissement") or {}).get("siret"),
    "TitreIdentiteChamp": lambda c: _flag(c.get("filled")),
    "PieceJustificativeChamp": lambda c: len(c.get("files") or []),
    "RepetitionChamp": lambda c: len(c.get("rows") or []),
    "HeaderSectionChamp": lambda c: None,
    "ExplicationChamp": lambda c: None,
    # The linked dossier's number: DS's stringValue for this type is the number as text (the
    # ``dossier`` field is not asked: it loads another dossier, which the token may not cover).
    "DossierLinkChamp": lambda c: _number(c.get("stringValue")),
    # The drawn areas (selections, cadastral parcels) with their GeoJSON geometry.
    "CarteChamp": lambda c: _json(c.get("geoAreas") or []),
    "EpciChamp": lambda c: _json(
        {"epci": c["epci"], "departement": c.get("departement")} if c.get("epci") else None
    ),
    "RNAChamp": lambda c: _json(c.get("rna")),
    "RNFChamp": lambda c: _json(c.get("rnf")),
    "EngagementJuridiqueChamp": lambda c: _json(c.get("engagementJuridique")),
}


def champ_value(champ: dict) -> tuple[Any, str | None]:
    """(typed value, raw JSON). A type the connector does not know keeps its stringValue column and
    its whole JSON in ``raw``; it is never an error."""
    convert = CHAMP_VALUES.get(champ.get("__typename", ""))
    if convert is None:
        return None, _json(champ)
    return convert(champ), None


def classify_sender(email: str | None, instructeur_emails: set[str]) -> str:
    """system | instructeur | usager (docs/ds-api.md §7: there is no sender field, only the e-mail).

    ``instructeur_emails`` must be lower-cased. Invited co-authors count as usager.
    """
    address = (email or "").strip().lower()
    if address in SYSTEM_EMAILS:
        return "system"
    if address in instructeur_emails:
        return "instructeur"
    return "usager"


def file_key(dossier_number: int, owner_kind: str, owner_id: str, checksum: str, filename: str) -> str:
    """A stable key for one attachment: the same file keeps its row (and download state) across
    updates of its dossier, and the URL (which changes at every fetch) plays no part."""
    ident = json.dumps([dossier_number, owner_kind, owner_id, checksum, filename], ensure_ascii=False)
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def instant(value: str) -> datetime:
    """A DS date as a comparable instant (offsets differ across DST: never compare the strings)."""
    return datetime.fromisoformat(value)


def parse_ds(value: str | None) -> datetime | None:
    """A DS ISO 8601 date-time (Paris offset) or a plain date, as an aware datetime (None stays None).
    A text without an offset (a plain date) is Paris time."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PARIS)
    return parsed


def paris_day(at: datetime) -> date:
    """The Paris calendar day of an instant."""
    return at.astimezone(PARIS).date()


def day_of(value: str | None) -> str | None:
    """The Paris day (``YYYY-MM-DD``) of a stored date or instant, any offset (None or empty stays None):
    what a person reads as "the day" of a timestamp (``2026-10-14T22:30:00+00:00`` -> ``2026-10-15``)."""
    at = parse_ds(value)
    return paris_day(at).isoformat() if at is not None else None
