"""Seeded simulator worlds: the three ENT-École démarches, their people, and realistic dossiers.

``seed_world(seed)`` is deterministic: one ``random.Random(seed)`` drives everything, the clock
starts at :data:`DEFAULT_START` (2026-10-15 09:00 Paris) unless ``start`` is given, and every
campaign window is counted back from that start.

The démarches (forms in ``forms.py``; labels from shared/seeds)
- :data:`OCCITANIE` adhesion 2026-27 (seeds 000/002/004): declarative ``accepte``, attestation =
  the pre-filled convention; an instructeur asks for the signed PDF, which comes back through the
  messagerie on time, late, never, or as the wrong kind of file.
- :data:`POITIERS` convention (seed 001): declarative ``accepte``, signature by ticking a box.
- :data:`CRETEIL` order finalisation (seed 003): instructed by hand; three mandatory uploads.

Planted facts, recorded by name in ``Dossier.anomalies`` (rates are Bernoulli draws, except the
fates, which are exact rounded counts of ``dossiers``):

=================================  ======  ====================================================
name                               rate    population and meaning
=================================  ======  ====================================================
count_mismatch                     8 %     Occitanie: "Nombre d'écoles" ≠ schools selected
cost_mismatch                      5 %     Occitanie: cost ≠ count × 41 €
bad_uai                            ~3 %    of school entries: wrong check letter (catalogue
                                           typos, Créteil typing); the dossier gets the name
bad_siret                          2 %     any: demandeur SIRET fails Luhn
demandeur_incomplete               ~2 %    any: PersonneMoraleIncomplete (half the bad SIRETs,
                                           plus 1 % with a valid SIRET: degraded API Entreprise)
missing_upload                     5 %     Créteil: a mandatory upload empty, or infected (DS
                                           drops infected files from the API)
signature_unchecked                4 %     Poitiers: the signature box unticked
duplicate_school                   3 %     Poitiers, Créteil: a school entered twice
reopened                           3 %     Occitanie: reopened for a correction after acceptance
usager_deleted                     ~0.5 %  terminated: ``connection_usager = "deleted"``
brouillon                          5 %     any: never deposited, never on the API
hidden_by_administration           1 %     terminated, in the trash (last 13 days)
hidden_by_user_en_construction     1 %     Créteil en construction, in the trash
hidden_by_user_terminated          0.5 %   terminated, still listed (dateSuppressionParUsager)
hidden_by_expiry                   1 %     Créteil, 12 months after processing: the limbo
(purged, in world.deleted)         3 %     in addition to ``dossiers``; reasons user_request
                                           (backdated), instructeur_request, manager_request,
                                           user_removed, expired
=================================  ======  ====================================================

Occitanie convention outcomes as of the clock start (markers, same field): ``convention_on_time``,
``convention_late`` (first signed PDF after dépôt + 2 months), ``convention_missing``, plus
``reply_non_pdf`` / ``reply_image`` / ``reply_text`` when such replies exist and
``pdf_scan_pending`` when a signed PDF's virus scan is still pending. Créteil UAIs are sometimes
typed with a lower-case letter or a trailing space: noise, valid once normalised, not an anomaly.
"""

from __future__ import annotations

import base64
import calendar
import gc
import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.simulator import forms, ident, referentiel as ref
from connector.simulator.forms import CHAMP_TYPE, SELF_FILLED, Form
from connector.simulator.state import (
    PARIS,
    SYSTEM_EMAIL,
    TERMINATED,
    UTC,
    Champ,
    ChampDescriptor,
    Clock,
    DeletedDossier,
    Demarche,
    Dossier,
    GroupeInstructeur,
    Instructeur,
    Label,
    Message,
    Revision,
    Row,
    StoredFile,
    Token,
    Traitement,
    World,
    make_file,
)

OCCITANIE = 131274
POITIERS = 128905
CRETEIL = 112640
DEMARCHES = (OCCITANIE, POITIERS, CRETEIL)
DEFAULT_START = datetime(2026, 10, 15, 9, 0, tzinfo=PARIS)
FIRST_DOSSIER_NUMBER = 20_000_000

COUNT_MISMATCH = "count_mismatch"
COST_MISMATCH = "cost_mismatch"
BAD_UAI = "bad_uai"
BAD_SIRET = "bad_siret"
DEMANDEUR_INCOMPLETE = "demandeur_incomplete"
MISSING_UPLOAD = "missing_upload"
SIGNATURE_UNCHECKED = "signature_unchecked"
DUPLICATE_SCHOOL = "duplicate_school"
REOPENED = "reopened"
USAGER_DELETED = "usager_deleted"
BROUILLON = "brouillon"
HIDDEN_BY_ADMINISTRATION = "hidden_by_administration"
HIDDEN_BY_USER_EN_CONSTRUCTION = "hidden_by_user_en_construction"
HIDDEN_BY_USER_TERMINATED = "hidden_by_user_terminated"
HIDDEN_BY_EXPIRY = "hidden_by_expiry"
CONVENTION_ON_TIME = "convention_on_time"
CONVENTION_LATE = "convention_late"
CONVENTION_MISSING = "convention_missing"
REPLY_NON_PDF = "reply_non_pdf"
REPLY_IMAGE = "reply_image"
REPLY_TEXT = "reply_text"
PDF_SCAN_PENDING = "pdf_scan_pending"

RATES = {
    COUNT_MISMATCH: 0.08, COST_MISMATCH: 0.05, BAD_UAI: ref.BAD_UAI_RATE, BAD_SIRET: 0.02,
    MISSING_UPLOAD: 0.05, SIGNATURE_UNCHECKED: 0.04, DUPLICATE_SCHOOL: 0.03, REOPENED: 0.03,
}
# Exact shares of ``dossiers`` (purged ones come in addition).
FATES = {
    BROUILLON: 0.05, HIDDEN_BY_ADMINISTRATION: 0.01, HIDDEN_BY_USER_EN_CONSTRUCTION: 0.01,
    HIDDEN_BY_EXPIRY: 0.01, HIDDEN_BY_USER_TERMINATED: 0.005,
}
PURGED_RATE = 0.03
PURGE_REASONS = {"user_request": 30, "instructeur_request": 25, "expired": 20, "user_removed": 10,
                 "manager_request": 15}
USAGER_MESSAGE_KINDS = ("signed_pdf", "non_pdf", "image", "text")

_NORMAL = "normal"
_SHARE = {OCCITANIE: 0.5, POITIERS: 0.25, CRETEIL: 0.25}
_DAY = timedelta(days=1)


# --- The démarches -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    number: int
    kind: str
    title: str
    description: str
    service: str
    departements: tuple[str, ...]
    declarative: str | None
    fee_cents: int | None
    revision_id: int
    created_days_before: int
    groupes: tuple[tuple[int, str, tuple[str, ...], bool], ...]  # id, label, départements, closed
    instructeurs: tuple[tuple[int, int, str], ...]  # id, groupe id, e-mail
    tech: tuple[int, str]  # the connector's account, in every groupe
    labels: tuple[tuple[int, str, str], ...]


SPECS = {
    OCCITANIE: _Spec(
        OCCITANIE, "occitanie", "ENT-École : demande d'adhésion par conventionnement 2026-2027",
        "Ce formulaire s'adresse aux collectivités. Il permet de réaliser une demande d'adhésion à "
        "l'ENT-École pour l'année scolaire 2026-2027, après concertation avec les équipes pédagogiques "
        "des écoles. Un seul formulaire doit être complété par collectivité.",
        "Direction de région académique du numérique pour l'éducation (DRANE Occitanie)",
        ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"), "accepte", 4100,
        612044, 190,
        ((70412, "Académie de Montpellier", ("11", "30", "34", "48", "66"), False),
         (70413, "Académie de Toulouse", ("09", "12", "31", "32", "46", "65", "81", "82"), False),
         (70414, "Campagne 2025-2026", (), True)),
        ((90101, 70412, "sophie.castel@ac-montpellier.fr"), (90102, 70412, "julien.pujol@ac-montpellier.fr"),
         (90103, 70413, "nathalie.barthe@ac-toulouse.fr"), (90104, 70413, "eric.rouquette@ac-toulouse.fr"),
         (90105, 70413, "agnes.serres@ac-toulouse.fr"), (90106, 70414, "alain.bosc@ac-montpellier.fr")),
        (90100, "ent-ecole-api@ac-toulouse.fr"),
        ((8101, "Convention reçue", "green_bourgeon"), (8102, "Relancé", "yellow_tournesol"),
         (8103, "Hors délai", "brown_cafe_creme"), (8104, "À vérifier", "pink_macaron")),
    ),
    POITIERS: _Spec(
        POITIERS, "poitiers",
        "Conventionnement ENT école et mise en place de l'accès aux ressources numériques (GAR) par "
        "l'ENT : validation des conventions",
        "La collectivité s'identifie grâce à son SIRET, désigne le signataire de la convention, choisit "
        "les écoles ENT de son périmètre, et désigne un référent (facultatif).",
        "Rectorat de l'académie de Poitiers - Délégation régionale académique au numérique éducatif",
        ("16", "17", "79", "86"), "accepte", None, 598310, 200,
        ((70501, "Charente et Charente-Maritime", ("16", "17"), False),
         (70502, "Vienne et Deux-Sèvres", ("79", "86"), False),
         (70503, "défaut", (), True)),
        ((90201, 70501, "helene.fabre@ac-poitiers.fr"), (90202, 70501, "pascal.morin@ac-poitiers.fr"),
         (90203, 70502, "celine.guerin@ac-poitiers.fr"), (90204, 70502, "francois.perrin@ac-poitiers.fr")),
        (90200, "ent-ecole-api@ac-poitiers.fr"),
        ((8201, "Transmis AAF", "green_menthe"), (8202, "Doublon", "beige_gris_galet")),
    ),
    CRETEIL: _Spec(
        CRETEIL, "creteil", "Finalisation de commande ENT 1er degré pour l'académie de Créteil",
        "Vous avez adhéré au groupement de commandes de la région académique Île-de-France. Après avoir "
        "passé commande auprès du titulaire du marché vous devez informer l'Académie de Créteil pour que "
        "celle-ci puisse mettre à disposition du titulaire les annuaires de vos écoles.",
        "Région académique Île-de-France - DRANE, site de Créteil",
        ("77", "93", "94"), None, None, 541877, 520,
        ((70601, "Seine-et-Marne (77)", ("77",), False),
         (70602, "Seine-Saint-Denis (93) et Val-de-Marne (94)", ("93", "94"), False),
         (70603, "Campagne 2025 (clôturée)", (), True)),
        ((90301, 70601, "christophe.vidal@ac-creteil.fr"), (90302, 70601, "martine.leroy@ac-creteil.fr"),
         (90303, 70602, "stephane.diallo@ac-creteil.fr"), (90304, 70602, "aurelie.benali@ac-creteil.fr"),
         (90305, 70603, "gerard.moreau@ac-creteil.fr")),
        (90300, "ent-ecole-api@ac-creteil.fr"),
        ((8301, "Pièces manquantes", "pink_macaron"), (8302, "AAF livré", "green_emeraude")),
    ),
}
TECH_ACCOUNTS = {n: s.tech[1] for n, s in SPECS.items()}


def _form(kind: str) -> Form:
    if kind == "occitanie":
        return forms.occitanie(ref.school_options(SPECS[OCCITANIE].departements))
    if kind == "poitiers":
        return forms.poitiers(ref.school_options(SPECS[POITIERS].departements))
    return forms.creteil()


def _build_demarche(world: World, spec: _Spec, form: Form, start: datetime) -> Demarche:
    created = (start - spec.created_days_before * _DAY).replace(hour=10, minute=12, second=7, microsecond=413208)
    published = created + timedelta(days=9, hours=5, minutes=3, seconds=2, microseconds=118045)
    revision = Revision(spec.revision_id, created, published, form.champs, form.annotations)
    groupes = []
    for gid, label, _, closed in spec.groupes:
        members = [spec.tech[0]] + [i for i, g, _ in spec.instructeurs if g == gid]
        groupes.append(GroupeInstructeur(gid, gid, label, closed, members))
    world.instructeurs[spec.tech[0]] = Instructeur(*spec.tech)
    for iid, _, email in spec.instructeurs:
        world.instructeurs[iid] = Instructeur(iid, email)
    return Demarche(
        number=spec.number, title=spec.title, description=spec.description, state="publiee",
        declarative=spec.declarative, created_at=created, published_at=published, revisions=[revision],
        active_revision_id=spec.revision_id, groupes=groupes,
        labels=[Label(*lb) for lb in spec.labels], kind=spec.kind, fee_cents=spec.fee_cents,
    )


def _form_of(dem: Demarche) -> Form:
    """The world's active descriptors of ``dem``, keyed like ``forms`` keys them."""
    revision = next(r for r in dem.revisions if r.id == dem.active_revision_id)
    by_id = {}
    for d in revision.champ_descriptors + revision.annotation_descriptors:
        by_id[d.stable_id] = d
        by_id.update((c.stable_id, c) for c in d.children)
    template = _form(dem.kind)
    keys = {k: by_id[d.stable_id] for k, d in template.keys.items() if d.stable_id in by_id}
    return Form(revision.champ_descriptors, revision.annotation_descriptors, keys)


# --- Small generators -----------------------------------------------------------------------------

_MOIS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
         "novembre", "décembre")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _paris_day(dt: datetime) -> str:
    return dt.astimezone(PARIS).date().isoformat()


def _fr_date(day: str) -> str:
    y, m, d = day.split("-")
    return f"{d} {_MOIS[int(m) - 1]} {y}"


def _add_months(dt: datetime, months: int) -> datetime:
    """Calendar months later (earlier if negative), on the month's last day when the day does not exist."""
    month = dt.month - 1 + months
    year, month = dt.year + month // 12, month % 12 + 1
    return dt.replace(year=year, month=month, day=min(dt.day, calendar.monthrange(year, month)[1]))


_B32_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD)


def _ulid_time(at: datetime) -> str:
    """The 10-character time part of a ULID (milliseconds since the epoch, Crockford base 32)."""
    ms = int(at.timestamp() * 1000)
    return "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))


def _ulid(rng: random.Random, time_part: str) -> str:
    return time_part + base64.b32encode(rng.randbytes(10)).decode().translate(_B32_TO_CROCKFORD)


def _file_size(rng: random.Random, lo: int = 2_000, hi: int = 60_000) -> int:
    """Mostly small files (mean about lo + 1/7 of the range): their bytes are generated to be checksummed."""
    return lo + int((hi - lo) * rng.random() ** 6)


def _office_hours(rng: random.Random, t: datetime) -> datetime:
    """``t`` moved to a weekday between 8:00 and 18:00 Paris time, never earlier than ``t``."""
    local = t.astimezone(PARIS)
    if local.hour >= 18:
        local += _DAY
    while local.weekday() >= 5:
        local += _DAY
    if not 8 <= local.hour < 18:
        local = local.replace(hour=rng.randint(8, 17), minute=rng.randrange(60), second=rng.randrange(60),
                              microsecond=rng.randrange(1_000_000))
    out = local.astimezone(UTC)
    return out if out > t else t + timedelta(minutes=rng.uniform(3, 90))


def _after(rng: random.Random, t: datetime, lo_days: float, hi_days: float, office: bool = True) -> datetime:
    out = t + timedelta(days=rng.uniform(lo_days, hi_days))
    return _office_hours(rng, out) if office else out


def _between(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    return lo + (hi - lo) * rng.random()


def _person(rng: random.Random) -> tuple[str, str, str]:
    first, civilite = rng.choice(ref.FIRST_NAMES)
    return first, rng.choice(ref.LAST_NAMES), civilite


def _email(first: str, last: str, domain: str) -> str:
    return f"{ref.slug(first)}.{ref.slug(last)}@{domain}".replace("-.", ".")


def _phone(rng: random.Random, departement: str) -> str:
    digits = f"{ref.PHONE_PREFIX[departement]}{rng.randrange(10 ** 8):08d}"
    style = rng.random()
    if style < 0.55:
        return " ".join(digits[i:i + 2] for i in range(0, 10, 2))
    if style < 0.9:
        return digits
    return "+33 " + " ".join([digits[1]] + [digits[i:i + 2] for i in range(2, 10, 2)])


def _usager_email(rng: random.Random, commune: ref.Commune) -> str:
    s = ref.slug(commune.name)
    return rng.choice((f"mairie@{s}.fr", f"mairie.{s}@wanadoo.fr", f"secretariat@mairie-{s}.fr",
                       f"{s}.mairie@orange.fr", f"accueil@ville-{s}.fr", f"dgs@{s}.fr"))


_STREETS = ("Place de la Mairie", "Rue de la Mairie", "Place de l'Hôtel de Ville", "Grand Rue",
            "Place de la République", "Avenue de la Libération")


def _demandeur(commune: ref.Commune, siret: str, incomplete: bool) -> dict:
    if incomplete:
        return {"__typename": "PersonneMoraleIncomplete", "siret": siret}
    dept, upper = commune.departement, ref.ascii_upper(commune.name)
    number, street = str(int(commune.insee[-2:]) % 24 + 1), _STREETS[int(commune.insee) % len(_STREETS)]
    label = f"MAIRIE\n{number} {ref.ascii_upper(street)}\n{commune.postal_code} {upper}"
    region = ref.REGION_OF[dept]
    return {
        "__typename": "PersonneMorale", "siret": siret, "siegeSocial": True, "naf": "84.11Z",
        "libelleNaf": "Administration publique générale",
        "address": {
            "label": label, "type": "housenumber", "streetAddress": f"{number} {street}",
            "streetNumber": number, "streetName": street, "postalCode": commune.postal_code,
            "cityName": commune.name, "cityCode": commune.insee, "departmentCode": dept,
            "departmentName": ref.DEPARTEMENTS[dept], "regionCode": region, "regionName": ref.REGIONS[region],
            "countryCode": "FR", "countryName": "France", "geometry": None,
        },
        "adresse": label, "numeroVoie": number, "typeVoie": None, "nomVoie": street, "complementAdresse": "MAIRIE",
        "codePostal": commune.postal_code, "localite": upper, "codeInseeLocalite": commune.insee,
        "entreprise": {
            "siren": siret[:9], "raisonSociale": f"COMMUNE DE {upper}", "nomCommercial": "",
            "formeJuridique": "Commune et commune nouvelle", "formeJuridiqueCode": "7210",
            "siretSiegeSocial": siret, "etatAdministratif": "Actif", "dateCreation": "1983-03-01",
            "inlineAdresse": label.replace("\n", " "), "enseigne": None, "nom": None, "prenom": None,
            "capitalSocial": None, "numeroTvaIntracommunautaire": None, "codeEffectifEntreprise": None,
            "effectifMensuel": None, "effectifAnnuel": None, "attestationFiscaleAttachment": None,
            "attestationSocialeAttachment": None,
        },
        "association": None,
    }


# --- Champs ---------------------------------------------------------------------------------------

def _string_value(kind: str, value: object) -> str | None:
    if value is None or kind in SELF_FILLED:
        return None
    if kind in ("CheckboxChamp", "YesNoChamp"):
        return "Oui" if value else "Non"
    if kind == "DateChamp":
        return _fr_date(value)  # type: ignore[arg-type]
    if kind == "MultipleDropDownListChamp":
        return ", ".join(value)  # type: ignore[arg-type]
    if kind == "CommuneChamp":
        c = value["commune"]  # type: ignore[index]
        return f"{c['name']} ({c['postalCode']})"
    if kind == "DepartementChamp":
        return f"{value['code']} – {value['name']}"  # type: ignore[index]
    return str(value)


# ``files``/``rows`` of champs that can hold neither: one shared immutable empty sequence, not two
# lists per champ (a 50 000-dossier world has over a million champs).
_NOTHING: list = ()  # type: ignore[assignment]


def _champ(desc: ChampDescriptor, value: object, at: datetime, rng: random.Random) -> Champ:
    kind = CHAMP_TYPE.get(desc.type, desc.type)
    if kind == "PieceJustificativeChamp":
        return Champ(desc.stable_id, kind, desc.label, None, None, list(value or ()), _NOTHING, at)  # type: ignore[call-overload]
    if kind == "RepetitionChamp":
        rows, time_part = [], _ulid_time(at)
        for row_values in value or ():  # type: ignore[attr-defined]
            cells = [_champ(c, row_values[c.stable_id], at, rng) for c in desc.children if c.stable_id in row_values]
            rows.append(Row(_ulid(rng, time_part), cells))
        return Champ(desc.stable_id, kind, desc.label, None, None, _NOTHING, rows, at)
    return Champ(desc.stable_id, kind, desc.label, _string_value(kind, value), value, _NOTHING, _NOTHING, at)


def _champs(descs: list[ChampDescriptor], values: dict[int, object], first: datetime, last: datetime,
            rng: random.Random, shared: dict) -> list[Champ]:
    """The champs of ``descs`` that ``values`` (by stable id) holds, filled section by section from
    ``first`` to ``last``; a descriptor missing from ``values`` is a hidden conditional champ, absent
    from the dossier. Header sections and explanations are always there: valueless, one read-only
    object per world shared by every dossier (``updated_at`` None: the API falls back to the dossier's)."""
    sections = sum(d.type == "HeaderSectionChamp" for d in descs) or 1
    out, step, at, seen = [], (last - first) / sections, first, 0
    for desc in descs:
        if desc.type in SELF_FILLED:
            if desc.type == "HeaderSectionChamp":
                seen += 1
                at = last if seen == sections else first + step * seen
            key = ("self-filled", desc.stable_id)
            if key not in shared:
                shared[key] = _champ(desc, None, None, rng)  # type: ignore[arg-type]
            out.append(shared[key])
        elif desc.stable_id in values:
            out.append(_champ(desc, values[desc.stable_id], at, rng))
    return out


def _empty_annotations(descs: list[ChampDescriptor], at: datetime) -> list[Champ]:
    return [
        Champ(d.stable_id, CHAMP_TYPE.get(d.type, d.type), d.label,
              *(("Non", False) if d.type == "CheckboxChamp" else (None, None)), _NOTHING, _NOTHING, at)
        for d in descs
    ]


# --- One dossier's life ---------------------------------------------------------------------------

_TRAITEMENT_STATE = {
    "depose": "en_construction", "accepte_automatiquement": "accepte", "accepte": "accepte",
    "passe_en_instruction": "en_instruction", "refuse": "refuse", "classe_sans_suite": "sans_suite",
    "repasse_en_instruction": "en_instruction", "repasse_en_construction": "en_construction",
}
_SUBJECTS = {
    "depose": "Votre dossier nº {n} a bien été déposé ({title})",
    "passe_en_instruction": "Votre dossier nº {n} va être examiné ({title})",
    "accepte": "Votre dossier nº {n} a été accepté ({title})",
    "refuse": "Votre dossier nº {n} a été refusé ({title})",
    "classe_sans_suite": "Votre dossier nº {n} a été classé sans suite ({title})",
    "repasse_en_instruction": "Votre dossier nº {n} est repassé en instruction ({title})",
    "repasse_en_construction": "Votre dossier nº {n} est repassé en construction ({title})",
}
_OCCITANIE_ACCEPTE = (
    "<p>Bonjour,</p><p>Votre demande d'adhésion à l'ENT-École a été acceptée le {day}. La convention "
    "pré-remplie est disponible sur votre dossier (bouton « Télécharger l'attestation »).</p><p>Vous "
    "devez ensuite :</p><ul><li>IMPRIMER la convention</li><li>VERIFIER les informations fournies</li>"
    "<li>FAIRE SIGNER la convention par le représentant de la collectivité</li><li>SCANNER et RETOURNER "
    "la convention en pièce jointe dans la messagerie interne de démarches simplifiées dans un délai "
    "maximum de deux mois après la demande. Si ce délai n'est pas respecté, la demande sera classée sans "
    "suite.</li></ul><p>Bien cordialement,</p><p>{service}</p>"
)
_REQUEST = (
    "Bonjour,\n\nVotre demande d'adhésion à l'ENT-École 2026-2027 a bien été acceptée. Merci de nous "
    "retourner la convention signée par le représentant de la collectivité, scannée au format PDF, en "
    "pièce jointe d'un message sur cette messagerie, au plus tard le {deadline}.\n\nSans retour de la "
    "convention signée dans ce délai, la demande sera classée sans suite et l'accès à l'ENT fermé pour "
    "les écoles.\n\nBien cordialement,\nLa DRANE Occitanie"
)
_REMINDER = (
    "Bonjour,\n\nSauf erreur de notre part, nous n'avons pas reçu la convention signée de votre "
    "collectivité. Nous vous rappelons qu'elle doit être déposée dans cette messagerie au format PDF avant "
    "le {deadline}.\n\nBien cordialement,\nLa DRANE Occitanie"
)
_SANS_SUITE = ("Convention signée non transmise dans le délai de deux mois : demande classée sans suite, "
               "accès à l'ENT fermé pour les écoles.")
_USAGER_TEXTS = {
    "signed_pdf": ("Bonjour,\n\nVeuillez trouver ci-joint la convention signée.\n\nCordialement,\n{sign}",
                   "Bonjour, voici la convention ENT-École signée par M. le Maire. Bonne journée.",
                   "Convention signée en pièce jointe.", ""),
    "non_pdf": ("Bonjour, voici la convention complétée.\nCordialement,\n{sign}",
                "Ci-joint la convention.", "Bonjour,\nje vous transmets la convention signée.\n{sign}"),
    "image": ("Bonjour, ci-joint la convention signée (scan).\n{sign}", "Voici la photo de la convention signée.",
              "Convention signée"),
    "text": ("Bonjour,\n\nLa convention sera signée lors du prochain conseil municipal. Nous vous la "
             "transmettrons ensuite.\n\nCordialement,\n{sign}",
             "Bonjour, pouvez-vous nous renvoyer la convention ? Nous ne la trouvons plus. Merci.",
             "Bonjour,\nLe maire est absent jusqu'à la fin du mois, la convention sera signée à son retour.\n"
             "{sign}"),
}
_ATTACHMENTS = {
    "signed_pdf": (("convention_signee.pdf", "Convention ENT signée.pdf", "CONVENTION ENT ECOLE 2026.PDF",
                    "scan_{day}.pdf", "{slug}_convention_ent_2026-2027.pdf", "Doc{n}.pdf"), "application/pdf"),
    "non_pdf": (("convention ENT.docx", "Convention_ENT_Ecole.docx"),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "non_pdf_odt": (("convention.odt", "convention ent {slug}.odt"), "application/vnd.oasis.opendocument.text"),
    "image": (("IMG_{day}_1015.jpg", "convention.jpg", "Scan0001.JPG"), "image/jpeg"),
    "image_png": (("convention signée.png", "capture.png"), "image/png"),
}


@dataclass
class _Life:
    """Helpers that write one dossier's history: traitements, system and human messages, annotations."""

    world: World
    dem: Demarche
    form: Form
    d: Dossier
    rng: random.Random
    now: datetime
    spec: _Spec
    humans: list[str]  # the groupe's instructeurs, the technical account aside
    ids: dict[str, int]  # instructeur ids by e-mail
    events: list[datetime] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def _follow(self, email: str) -> None:
        iid = self.ids[email]
        if iid not in self.d.follower_ids:
            self.d.follower_ids.append(iid)

    def message(self, at: datetime, email: str, body: str, attachments: list[StoredFile] | None = None) -> Message:
        m = Message(self.world.new_id("Commentaire"), email, body, at, attachments or _NOTHING)
        self.d.messages.append(m)
        self.events.append(at)
        return m

    def instructeur_message(self, at: datetime, body: str, email: str | None = None) -> None:
        email = email or self.rng.choice(self.humans)
        self.message(at, email, body)
        self._follow(email)

    def transition(self, at: datetime, event: str, agent: str | None = None, motivation: str | None = None) -> None:
        d, state = self.d, _TRAITEMENT_STATE[event]
        d.state = state
        d.traitements.append(Traitement(self.world.new_id("Traitement"), state, event, at, agent, motivation))
        if event == "depose":
            d.depose_at = d.en_construction_at = at
        elif state == "en_construction":
            d.en_construction_at = at
        elif state == "en_instruction":
            d.en_instruction_at, d.processed_at, d.motivation, d.attestation, d.archived = at, None, None, None, False
        else:
            d.processed_at, d.motivation = at, motivation
        if agent:
            self._follow(agent)
        subject = _SUBJECTS["accepte" if event == "accepte_automatiquement" else event].format(
            n=d.number, title=self.dem.title)
        if self.spec.kind == "occitanie" and state == "accepte":
            body = _OCCITANIE_ACCEPTE.format(day=_fr_date(_paris_day(at)), service=self.spec.service)
        else:
            body = f"<p>Bonjour,</p><p>{subject.split(' (')[0]}.</p>" + (
                f"<p>Motif : {motivation}</p>" if motivation else "") + f"<p>Bonne journée,</p><p>{self.spec.service}</p>"
        self.message(at, SYSTEM_EMAIL, f"<p>[{subject}]</p>{body}")
        if state == "accepte" and self.spec.kind != "creteil":
            self.d.attestation = make_file(self.world, f"attestation-dossier-{d.number}.pdf", "application/pdf",
                                           _file_size(self.rng, 6_000), at + timedelta(seconds=self.rng.uniform(4, 40)))

    def annotate(self, at: datetime, key: str, value: object, email: str) -> None:
        desc = self.form.keys.get(key)
        if desc is None:
            return
        for champ in self.d.annotations:
            if champ.stable_id == desc.stable_id:
                champ.value, champ.string_value, champ.updated_at = value, _string_value(champ.type, value), at
        self.d.annotations_updated_at = max(self.d.annotations_updated_at or at, at)
        self.events.append(at)
        self._follow(email)

    def label(self, name: str) -> None:
        lid = next(lb.id for lb in self.dem.labels if lb.name == name)
        if lid not in self.d.label_ids:
            self.d.label_ids.append(lid)

    def archive(self, at: datetime) -> None:
        self.d.archived = True
        self.events.append(at)

    def usager_message(self, at: datetime, kind: str, virus_scan: str = "safe") -> Message:
        m = _usager_message(self.world, self.d, kind, at, self.rng, virus_scan)
        self.events.append(at)
        return m

    def close_sans_suite(self, at: datetime, motivation: str) -> None:
        agent = self.rng.choice(self.humans)
        if self.d.state in TERMINATED:
            self.transition(at, "repasse_en_instruction", agent)
            at += timedelta(minutes=self.rng.uniform(0.5, 6))
        elif self.d.state == "en_construction":
            self.transition(at, "passe_en_instruction", agent)
            at += timedelta(minutes=self.rng.uniform(0.5, 6))
        self.transition(at, "classe_sans_suite", agent, motivation)


def _usager_message(world: World, d: Dossier, kind: str, at: datetime, rng: random.Random,
                    virus_scan: str = "safe") -> Message:
    if kind not in USAGER_MESSAGE_KINDS:
        raise ValueError(f"unknown usager message kind {kind!r}; expected one of {', '.join(USAGER_MESSAGE_KINDS)}")
    sign = rng.choice(("Le secrétariat de mairie", "La mairie", "Service scolaire", ""))
    body = rng.choice(_USAGER_TEXTS[kind]).format(sign=sign).strip()
    attachments = []
    if kind != "text":
        variant = kind if rng.random() < 0.7 else {"non_pdf": "non_pdf_odt", "image": "image_png"}.get(kind, kind)
        names, content_type = _ATTACHMENTS[variant]
        slug = ref.slug(d.usager_email.split("@")[1].split(".")[0])
        name = rng.choice(names).format(day=_paris_day(at).replace("-", ""), slug=slug, n=rng.randint(1, 40))
        if kind == "signed_pdf" and rng.random() < 0.03:
            content_type = "application/octet-stream"  # a PDF known only by its name
        size = _file_size(rng)
        attachments.append(make_file(world, name, content_type, size, at, virus_scan))
    email = d.usager_email
    if rng.random() < 0.1:  # an invited co-author or a colleague's address
        email = "secretariat." + d.usager_email.split("@")[0] + "@" + d.usager_email.split("@")[1]
    m = Message(world.new_id("Commentaire"), email, body, at, attachments or _NOTHING)
    d.messages.append(m)
    return m


def make_usager_message(world: World, dossier: Dossier, kind: str, when: datetime, *,
                        virus_scan: str = "safe") -> Message:
    """Append a message from the usager: ``signed_pdf``, ``non_pdf`` (.docx/.odt), ``image`` (jpeg/png scan)
    or ``text``. Does not touch ``updated_at`` (the app's control layer does)."""
    rng = random.Random(f"{world.seed}-usager-{dossier.number}-{len(dossier.messages)}-{kind}")
    return _usager_message(world, dossier, kind, when.astimezone(UTC), rng, virus_scan)


# --- The three forms, filled ---------------------------------------------------------------------

def _pick_schools(rng: random.Random, commune: ref.Commune, planted: bool) -> list[ref.School]:
    """Usually all the commune's schools, sometimes part of them; clean dossiers skip the catalogue's typos."""
    schools = [s for s in commune.schools if planted or ident.uai_is_valid(s.uai)]
    if len(schools) > 3 and rng.random() < 0.5:
        schools = sorted(rng.sample(schools, rng.randint((len(schools) + 1) // 2, len(schools))),
                         key=schools.index)
    return schools


def _signataire(rng: random.Random) -> str:
    first, last, _ = _person(rng)
    return f"{first} {last}" if rng.random() < 0.93 else f"{first} {last.capitalize()}"


def _qualite(rng: random.Random, values: dict[str, object]) -> None:
    values["qualite"] = rng.choices(forms.QUALITES, cum_weights=(80, 88, 100))[0]
    if values["qualite"] == "Autre":
        values["qualite_autre"] = rng.choice(("Adjoint au maire", "1ère adjointe", "Maire délégué",
                                              "Adjointe déléguée aux affaires scolaires"))


def _referent(rng: random.Random, commune: ref.Commune, values: dict[str, object], second: bool) -> None:
    values["referent"] = rng.random() < 0.45
    if not values["referent"]:
        return
    domain = f"mairie-{ref.slug(commune.name)}.fr"
    first, last, _ = _person(rng)
    values["referent_nom"], values["referent_email"] = f"{first} {last}", _email(first, last, domain)
    if second:
        values["referent2"] = rng.random() < 0.3
        if values["referent2"]:
            first, last, _ = _person(rng)
            values["referent2_nom"], values["referent2_email"] = f"{first} {last}", _email(first, last, domain)


def _fill_occitanie(rng: random.Random, commune: ref.Commune, planted: bool, anomalies: list[str]) -> dict:
    schools = _pick_schools(rng, commune, planted)
    listed = len(schools)
    count = listed
    if planted and rng.random() < RATES[COUNT_MISMATCH]:
        count = rng.choice([k for k in (listed - 2, listed - 1, listed + 1, listed + 2) if k >= 1])
        anomalies.append(COUNT_MISMATCH)
    cost_count = count
    if planted and rng.random() < RATES[COST_MISMATCH]:
        cost_count = rng.choice([k for k in (count - 1, count + 1, count + 2) if k >= 1])
        anomalies.append(COST_MISMATCH)
    dept = commune.departement
    values: dict[str, object] = {
        "departement": {"name": ref.DEPARTEMENTS[dept], "code": dept}, "signataire": _signataire(rng),
        "telephone": _phone(rng, dept), "ecoles": [s.label for s in schools], "nombre_ecoles": str(count),
        "cout": forms.euros(cost_count * forms.OCCITANIE_FEE_EUROS),
        "engagement_convention": True, "engagement_paiement": True,
    }
    _qualite(rng, values)
    _referent(rng, commune, values, second=True)
    if any(not ident.uai_is_valid(s.uai) for s in schools):
        anomalies.append(BAD_UAI)
    return values


def _commune_value(commune: ref.Commune, shared: dict) -> dict:
    """A CommuneChamp value, one dict per commune and world (read-only once built)."""
    key = ("commune", commune.insee)
    if key not in shared:
        shared[key] = _make_commune_value(commune)
    return shared[key]


def _make_commune_value(commune: ref.Commune) -> dict:
    dept = commune.departement
    return {"commune": {"name": commune.name, "code": commune.insee, "postalCode": commune.postal_code},
            "departement": {"name": ref.DEPARTEMENTS[dept], "code": dept}}


def _fill_poitiers(rng: random.Random, commune: ref.Commune, planted: bool, anomalies: list[str],
                   form: Form, shared: dict) -> dict:
    schools = _pick_schools(rng, commune, planted)
    where, which = form.keys["ecole_commune"].stable_id, form.keys["ecole_choix"].stable_id
    place = _commune_value(commune, shared)
    rows = [{where: place, which: s.label} for s in schools]
    if planted and rng.random() < RATES[DUPLICATE_SCHOOL]:
        rows.insert(rng.randint(0, len(rows)), dict(rng.choice(rows)))
        anomalies.append(DUPLICATE_SCHOOL)
    values: dict[str, object] = {"signataire": _signataire(rng), "ecoles": rows, "signature": True}
    if planted and rng.random() < RATES[SIGNATURE_UNCHECKED]:
        values["signature"] = False
        anomalies.append(SIGNATURE_UNCHECKED)
    _qualite(rng, values)
    _referent(rng, commune, values, second=False)
    if any(not ident.uai_is_valid(s.uai) for s in schools):
        anomalies.append(BAD_UAI)
    return values


_FONCTIONS = ("Directeur général des services", "Responsable du service scolaire", "Secrétaire de mairie",
              "Adjoint au maire chargé de l'éducation", "Responsable des systèmes d'information",
              "Chargée de mission numérique éducatif", "Directrice de l'éducation")


def _fill_creteil(world: World, rng: random.Random, commune: ref.Commune, planted: bool, anomalies: list[str],
                  at: datetime, shared: dict) -> dict:
    typed, bad = [], False
    for school in _pick_schools(rng, commune, planted):
        uai = school.uai[:7] + ident.uai_letter(school.uai[:7])  # communes type their schools' true UAIs...
        if planted and rng.random() < RATES[BAD_UAI]:
            uai = ident.with_wrong_letter(uai, rng)  # ...with a few typos
        bad = bad or not ident.uai_is_valid(uai)
        noise = rng.random()
        typed.append(uai[:7] + uai[7].lower() if noise < 0.02 else uai + " " if noise < 0.04 else uai)
    if planted and rng.random() < RATES[DUPLICATE_SCHOOL]:
        typed.insert(rng.randint(0, len(typed)), rng.choice(typed))
        anomalies.append(DUPLICATE_SCHOOL)
    if bad:
        anomalies.append(BAD_UAI)
    slug = ref.slug(commune.name)
    files = {
        "certificat": (f"attestation_adhesion_groupement_{slug}.pdf", "application/pdf"),
        "bon_editeur": (rng.choice(("BC_editeur_ENT_2026.pdf", f"bon de commande ENT {commune.name}.pdf",
                                    "BC-2026-0412.pdf")), "application/pdf"),
        "bon_chorus": (rng.choice(("BC_Chorus.pdf", "EJ_1300482211.pdf", "bon_commande_chorus.jpg")), None),
    }
    missing = rng.choice(tuple(files)) if planted and rng.random() < RATES[MISSING_UPLOAD] else None
    if missing:
        anomalies.append(MISSING_UPLOAD)
    uploads = {}
    for key, (name, content_type) in files.items():
        content_type = content_type or ("image/jpeg" if name.endswith(".jpg") else "application/pdf")
        scan = "safe"
        if key == missing:
            if rng.random() < 0.5:
                uploads[key] = []
                continue
            scan = "infected"
        uploads[key] = [make_file(world, name, content_type, _file_size(rng), at, scan)]
    first, last, civilite = _person(rng)
    dept = commune.departement
    values: dict[str, object] = {
        "departement": forms.CRETEIL_DEPARTEMENTS[dept], "commune": _commune_value(commune, shared), "civilite": civilite,
        "nom": last if rng.random() < 0.6 else last.capitalize(), "prenom": first,
        "fonction": rng.choice(_FONCTIONS), "email": _email(first, last, f"ville-{slug}.fr"),
        "telephone": _phone(rng, dept), "ecoles": typed,
        "commentaires": (f"Commande passée via Chorus Pro le {_fr_date(_paris_day(at - 9 * _DAY))}."
                         if rng.random() < 0.3 else None),
        **uploads,
    }
    return values


def _values_by_id(form: Form, values: dict[str, object]) -> dict[int, object]:
    out: dict[int, object] = {}
    for key, value in values.items():
        desc = form.keys.get(key)
        if desc is None:
            continue
        if desc.type == "RepetitionChamp" and desc.children and value and not isinstance(value[0], dict):  # type: ignore[index]
            child = desc.children[0].stable_id
            value = [{child: v} for v in value]  # type: ignore[union-attr]
        out[desc.stable_id] = value
    return out


# --- Plans: who exists, when, and what happens to them ---------------------------------------------

@dataclass(slots=True)
class _Plan:
    demarche: int
    fate: str
    created_at: datetime
    depose_at: datetime | None
    processed_at: datetime | None = None  # forced (expiry fates)
    purge: str | None = None  # DeletedDossier reason


class _Windows:
    """Campaign windows, counted back from the clock start."""

    def __init__(self, now: datetime):
        self.now = now
        self.campaign = (now - 167 * _DAY, now - timedelta(minutes=30))  # 1 May -> 15 Oct 2026
        self.creteil = (now - 228 * _DAY, now - timedelta(minutes=30))  # from 1 March 2026

    def depose(self, rng: random.Random, demarche: int, latest: datetime | None = None) -> datetime:
        lo, hi = self.creteil if demarche == CRETEIL else self.campaign
        hi = min(hi, latest or hi)
        r = rng.random()
        if r < 0.25:  # the opening rush
            hi = min(hi, lo + 40 * _DAY)
        elif r < 0.5:  # before the late-October close
            lo = max(lo, hi - 40 * _DAY)
        t = _between(rng, lo, hi)
        office = _office_hours(rng, t)
        return office if office < hi and rng.random() < 0.85 else t


def _plans(rng: random.Random, n: int, now: datetime) -> list[_Plan]:
    w = _Windows(now)
    fates = [f for f, share in FATES.items() for _ in range(round(n * share))][:n]
    fates += [_NORMAL] * (n - len(fates))
    purged = round(n * PURGED_RATE)
    reasons = rng.choices(tuple(PURGE_REASONS), tuple(PURGE_REASONS.values()), k=purged)
    entries = [(f, None) for f in fates] + [("purged", r) for r in reasons]
    rng.shuffle(entries)
    demarches, cumulated = tuple(_SHARE), tuple(itertools.accumulate(_SHARE.values()))
    plans = []
    for fate, reason in entries:
        dem = rng.choices(demarches, cum_weights=cumulated)[0]
        processed = None
        if fate in (HIDDEN_BY_USER_EN_CONSTRUCTION,) or reason in ("user_request", "user_removed"):
            dem = CRETEIL
        if fate == HIDDEN_BY_EXPIRY or reason == "expired":
            dem = CRETEIL
            back = rng.uniform(0.2, 13) if fate == HIDDEN_BY_EXPIRY else rng.uniform(15, 70)
            processed = _add_months(now - back * _DAY, -12)
            depose = processed - rng.uniform(1, 25) * _DAY
        elif fate in (HIDDEN_BY_ADMINISTRATION, HIDDEN_BY_USER_TERMINATED) or reason in (
                "instructeur_request", "manager_request", "user_request"):
            depose = w.depose(rng, dem, latest=now - 45 * _DAY)
        else:
            depose = w.depose(rng, dem)
        created = depose - (timedelta(minutes=rng.uniform(3, 40)) if rng.random() < 0.75
                            else rng.uniform(1, 12) * _DAY)
        if fate == BROUILLON:
            created, depose = depose - rng.uniform(0, 20) * _DAY, None
        plans.append(_Plan(dem, fate if reason is None else "purged", created, depose, processed, reason))
    plans.sort(key=lambda p: p.created_at)
    return plans


# --- Building dossiers -----------------------------------------------------------------------------

class _Communes:
    """Each démarche walks its communes in a shuffled cycle: distinct communes until all have filed."""

    def __init__(self, rng: random.Random, departements: tuple[str, ...]):
        self.rng, self.pool = rng, [c for d in departements for c in ref.communes(d)]
        self.queue: list[ref.Commune] = []

    def next(self) -> ref.Commune:
        if not self.queue:
            self.queue = self.pool[:]
            self.rng.shuffle(self.queue)
        return self.queue.pop()


def _groupe_for(spec: _Spec, departement: str, old: bool) -> int:
    for gid, _, depts, closed in spec.groupes:
        if (closed and old) or (not old and departement in depts):
            return gid
    return spec.groupes[0][0]


def _new_dossier(world: World, dem: Demarche, form: Form, rng: random.Random, number: int, commune: ref.Commune,
                 created: datetime, last_edit: datetime, planted: bool, old: bool, shared: dict) -> _Life:
    """A dossier filled from ``created`` to ``last_edit``, with its anomalies drawn when ``planted``."""
    spec = SPECS[dem.number]
    anomalies: list[str] = []
    siret, incomplete = commune.siret, False
    if planted and rng.random() < RATES[BAD_SIRET]:
        siret = ident.with_bad_luhn(siret, rng)
        anomalies.append(BAD_SIRET)
        incomplete = rng.random() < 0.5
    elif planted and rng.random() < 0.01:
        incomplete = True
    if incomplete:
        anomalies.append(DEMANDEUR_INCOMPLETE)
    key = ("demandeur", commune.insee, siret, incomplete)
    if key not in shared:
        shared[key] = _demandeur(commune, siret, incomplete)
    if dem.kind == "occitanie":
        values = _fill_occitanie(rng, commune, planted, anomalies)
    elif dem.kind == "poitiers":
        values = _fill_poitiers(rng, commune, planted, anomalies, form, shared)
    else:
        values = _fill_creteil(world, rng, commune, planted, anomalies, last_edit, shared)
    d = Dossier(
        number=number, demarche_number=dem.number, state="brouillon", created_at=created, updated_at=created,
        revision_id=dem.active_revision_id, groupe_instructeur_number=_groupe_for(spec, commune.departement, old),
        usager_email=_usager_email(rng, commune), demandeur=shared[key],
        connection_usager="france_connect" if rng.random() < 0.12 else "password",
    )
    d.champs = _champs(form.champs, _values_by_id(form, values), created, last_edit, rng, shared)
    d.annotations = _empty_annotations(form.annotations, created)
    d.champs_updated_at, d.annotations_updated_at = last_edit, created
    world.dossiers[number] = d
    if ("ids",) not in shared:
        shared[("ids",)] = {i.email: i.id for i in world.instructeurs.values()}
    key = ("humans", d.groupe_instructeur_number)
    if key not in shared:
        groupe = next(g for g in dem.groupes if g.number == d.groupe_instructeur_number)
        shared[key] = [world.instructeurs[i].email for i in groupe.instructeur_ids if i != spec.tech[0]] or [spec.tech[1]]
    return _Life(world, dem, form, d, rng, world.clock.start, spec, shared[key], shared[("ids",)],
                 [created, last_edit], anomalies)


def _finish(life: _Life) -> Dossier:
    d = life.d
    d.messages.sort(key=lambda m: m.created_at)
    d.updated_at = max(life.events)
    d.anomalies = tuple(life.anomalies)
    return d


def _occitanie_life(life: _Life, reopen_allowed: bool) -> None:
    d, rng, now = life.d, life.rng, life.now
    accepted = d.depose_at + timedelta(seconds=rng.uniform(20, 80))  # type: ignore[operator]
    life.transition(accepted, "accepte_automatiquement")
    if reopen_allowed and rng.random() < RATES[REOPENED]:
        _reopen(life, accepted)
        return
    deadline = _add_months(d.depose_at, 2)  # type: ignore[arg-type]
    deadline_text = _fr_date(_paris_day(deadline))
    request = _after(rng, accepted, 0.05, 6)
    if rng.random() < 0.9 and request <= now:
        life.instructeur_message(request, _REQUEST.format(deadline=deadline_text))
    replies: list[tuple[datetime, str]] = []
    u = rng.random()
    if u < 0.62:
        replies.append((_after(rng, d.depose_at, 2, 58, office=False), "signed_pdf"))  # type: ignore[arg-type]
    elif u < 0.72:
        replies.append((_after(rng, deadline, 2, 60, office=False), "signed_pdf"))
    elif u < 0.82:
        first = _after(rng, d.depose_at, 2, 40, office=False)  # type: ignore[arg-type]
        replies.append((first, rng.choice(("non_pdf", "image", "text"))))
        if rng.random() < 0.5:
            replies.append((_after(rng, first, 3, 30, office=False), "signed_pdf"))
    replies = [(t, k) for t, k in replies if t <= now]
    pdf_at = next((t for t, k in replies if k == "signed_pdf"), None)
    if (pdf_at is None or pdf_at > d.depose_at + 45 * _DAY) and rng.random() < 0.5:  # type: ignore[operator]
        reminder = _after(rng, d.depose_at, 45, 55)  # type: ignore[arg-type]
        if reminder <= now and (pdf_at is None or reminder < pdf_at):
            email = rng.choice(life.humans)
            life.instructeur_message(reminder, _REMINDER.format(deadline=deadline_text), email)
            life.annotate(reminder + timedelta(minutes=rng.uniform(1, 20)), "relance", _paris_day(reminder), email)
            life.annotate(reminder + timedelta(minutes=rng.uniform(21, 30)), "statut", "Relancée", email)
            life.label("Relancé")
    closed_at = None
    if (deadline <= now and (pdf_at is None or pdf_at > deadline) and d.connection_usager != "deleted"
            and rng.random() < 0.35):
        closing = _after(rng, deadline, 1, 25)
        if closing <= now and (pdf_at is None or closing < pdf_at):
            email = rng.choice(life.humans)
            life.annotate(closing, "statut", "Classée sans suite", email)
            life.close_sans_suite(closing + timedelta(minutes=rng.uniform(1, 4)), _SANS_SUITE)
            life.label("Hors délai")
            closed_at = closing
            archived = _after(rng, closing, 1, 10)
            if rng.random() < 0.5 and archived <= now:
                life.archive(archived)
                replies = [(t, k) for t, k in replies if t < archived]  # the messagerie closes
    for at, kind in replies:
        scan = "pending" if kind != "text" and (rng.random() < 0.02 or now - at < timedelta(hours=6)) else "safe"
        life.usager_message(at, kind, scan)
        if kind == "signed_pdf" and scan == "pending":
            life.anomalies.append(PDF_SCAN_PENDING)
        elif kind != "signed_pdf":
            life.anomalies.append({"non_pdf": REPLY_NON_PDF, "image": REPLY_IMAGE, "text": REPLY_TEXT}[kind])
    pdf_at = next((t for t, k in replies if k == "signed_pdf"), None)
    life.anomalies.append(CONVENTION_MISSING if pdf_at is None else
                          CONVENTION_ON_TIME if pdf_at <= deadline else CONVENTION_LATE)
    if pdf_at is not None and closed_at is None:
        noted = _after(rng, pdf_at, 0.1, 8)
        if noted <= now and rng.random() < 0.75:
            email = rng.choice(life.humans)
            life.annotate(noted, "convention_recue", True, email)
            life.annotate(noted + timedelta(seconds=rng.uniform(5, 60)), "date_reception", _paris_day(pdf_at), email)
            life.annotate(noted + timedelta(seconds=rng.uniform(61, 120)), "statut", "Reçue", email)
            life.label("Convention reçue")
            if rng.random() < 0.3:
                life.instructeur_message(noted + timedelta(minutes=2), "Bonjour,\n\nNous accusons bonne réception "
                                         "de la convention signée. Merci.\n\nBien cordialement,\nLa DRANE", email)
            archived = _after(rng, noted, 5, 30)
            if rng.random() < 0.15 and archived <= now:
                life.archive(archived)


def _reopen(life: _Life, accepted: datetime) -> None:
    """The usager reports an error in the convention; the dossier goes back en construction, is corrected,
    then accepted again by hand (as far as the clock allows)."""
    d, rng, now = life.d, life.rng, life.now
    life.anomalies.append(REOPENED)
    asked = _after(rng, accepted, 1, 20, office=False)
    if asked > now:
        return
    life.usager_message(asked, "text")
    d.messages[-1].body = ("Bonjour,\n\nNous avons constaté une erreur dans la liste des écoles de la convention. "
                           "Pouvez-vous rouvrir le dossier afin que nous puissions la corriger ?\n\nMerci.")
    reopened = _after(rng, asked, 0.3, 3)
    if reopened > now:
        return
    agent = rng.choice(life.humans)
    life.transition(reopened, "repasse_en_instruction", agent)
    life.transition(reopened + timedelta(minutes=rng.uniform(1, 3)), "repasse_en_construction", agent)
    life.instructeur_message(reopened + timedelta(minutes=4), "Bonjour,\n\nLe dossier a été rouvert : vous "
                             "pouvez corriger la liste des écoles puis nous le signaler ici.\n\nCordialement", agent)
    edited = _after(rng, reopened, 0.2, 5, office=False)
    if edited > now:
        return
    schools = life.form.keys["ecoles"].stable_id
    for champ in d.champs:
        if champ.stable_id == schools:
            champ.updated_at = edited
    d.champs_updated_at = edited
    life.events.append(edited)
    accepted_again = _after(rng, edited, 1, 6)
    if accepted_again > now:
        return
    life.transition(accepted_again, "passe_en_instruction", agent)
    life.transition(accepted_again + timedelta(minutes=rng.uniform(1, 5)), "accepte", agent)


def _poitiers_life(life: _Life) -> None:
    d, rng, now = life.d, life.rng, life.now
    accepted = d.depose_at + timedelta(seconds=rng.uniform(20, 80))  # type: ignore[operator]
    life.transition(accepted, "accepte_automatiquement")
    if rng.random() < 0.08:
        asked = _after(rng, accepted, 0.5, 30, office=False)
        if asked <= now:
            life.usager_message(asked, "text")
            answer = _after(rng, asked, 0.1, 4)
            if answer <= now:
                life.instructeur_message(answer, "Bonjour,\n\nLa convention est disponible depuis votre dossier, "
                                         "bouton « Télécharger l'attestation ».\n\nCordialement")
    if rng.random() < 0.02:
        closing = _after(rng, accepted, 2, 20)
        if closing <= now:
            life.close_sans_suite(closing, "Doublon : la collectivité a déposé un autre dossier.")
            life.label("Doublon")
            return
    sent = _after(rng, accepted, 1, 25)
    if sent <= now and rng.random() < 0.6:
        email = rng.choice(life.humans)
        life.annotate(sent, "aaf_transmis", True, email)
        life.annotate(sent + timedelta(seconds=rng.uniform(5, 60)), "aaf_date", _paris_day(sent), email)
        life.label("Transmis AAF")


def _creteil_life(life: _Life, target: str | None, processed: datetime | None) -> None:
    d, rng, now = life.d, life.rng, life.now
    age = (now - d.depose_at).days  # type: ignore[operator]
    if target is None:
        r = rng.random()
        if MISSING_UPLOAD in life.anomalies:
            target = "en_construction" if r < 0.6 else "en_instruction"
        elif age > 30:
            target = "terminated" if r < 0.75 else "en_instruction" if r < 0.9 else "en_construction"
        elif age > 5:
            target = "terminated" if r < 0.3 else "en_instruction" if r < 0.7 else "en_construction"
        else:
            target = "en_construction" if r < 0.8 else "en_instruction"
    agent = rng.choice(life.humans)
    if MISSING_UPLOAD in life.anomalies:
        asked = _after(rng, d.depose_at, 0.5, 5)  # type: ignore[arg-type]
        if asked <= now:
            life.instructeur_message(asked, "Bonjour,\n\nUne pièce obligatoire manque à votre dossier (certificat "
                                     "d'adhésion ou bon de commande). Merci de nous la transmettre.\n\nCordialement",
                                     agent)
            life.label("Pièces manquantes")
    if target == "en_construction":
        return
    if processed is not None:
        instruction = _between(rng, d.depose_at, processed - timedelta(hours=2))  # type: ignore[arg-type]
    else:
        instruction = min(_after(rng, d.depose_at, 0.5, min(20, max(age, 1))), now - timedelta(minutes=20))  # type: ignore[arg-type]
    life.transition(instruction, "passe_en_instruction", agent)
    if target == "en_instruction":
        return
    if processed is None:
        processed = min(_after(rng, instruction, 0.05, 15), now - timedelta(minutes=5))
    r = rng.random()
    if r < 0.8:
        life.transition(processed, "accepte", agent)
        delivered = _after(rng, processed, 1, 10)
        if delivered <= now and rng.random() < 0.7:
            life.annotate(delivered, "aaf_livre", True, agent)
            life.annotate(delivered + timedelta(seconds=rng.uniform(5, 60)), "aaf_date", _paris_day(delivered), agent)
            life.label("AAF livré")
    elif r < 0.87:
        life.transition(processed, "refuse", agent, "Le bon de commande ne correspond pas aux écoles déclarées.")
    else:
        life.transition(processed, "classe_sans_suite", agent, "Dossier déposé en double.")
    archived = _after(rng, processed, 20, 60)
    if archived <= now and rng.random() < 0.4:
        life.archive(archived)


def _hide(life: _Life, fate: str) -> None:
    d, rng, now = life.d, life.rng, life.now
    if fate == HIDDEN_BY_EXPIRY:
        d.hidden_by_expired_at = min(_add_months(d.processed_at, 12) + timedelta(hours=rng.uniform(1, 6)), now)  # type: ignore[arg-type]
        at = d.hidden_by_expired_at
    elif fate == HIDDEN_BY_USER_EN_CONSTRUCTION:
        d.hidden_by_user_at = at = _between(rng, max(d.en_construction_at, now - 13 * _DAY), now)  # type: ignore[type-var]
    elif fate == HIDDEN_BY_USER_TERMINATED:
        d.hidden_by_user_at = at = _between(rng, d.processed_at, now)  # type: ignore[arg-type]
    else:
        d.hidden_by_administration_at = at = _between(rng, max(d.processed_at, now - 13 * _DAY), now)  # type: ignore[type-var]
    life.anomalies.append(fate)
    life.events.append(at)


def _build(world: World, plan: _Plan, number: int, rng: random.Random, communes: dict, forms_by_dem: dict,
           shared: dict) -> None:
    dem, form, now = world.demarches[plan.demarche], forms_by_dem[plan.demarche], world.clock.start
    commune = communes[plan.demarche].next()
    if plan.depose_at is None:  # brouillon
        last = min(_between(rng, plan.created_at, plan.created_at + 20 * _DAY), now - timedelta(minutes=5))
        life = _new_dossier(world, dem, form, rng, number, commune, plan.created_at, max(last, plan.created_at),
                            False, False, shared)
        keep = rng.randint(len(life.d.champs) // 3, len(life.d.champs))
        for champ in life.d.champs[keep:]:
            if champ.type in SELF_FILLED:
                continue
            champ.value, champ.string_value = None, None
            if champ.files:
                champ.files = []
            if champ.rows:
                champ.rows = []
        life.anomalies.append(BROUILLON)
        _finish(life)
        return
    old = plan.processed_at is not None
    fill_end = plan.depose_at - timedelta(seconds=rng.uniform(5, 120))
    life = _new_dossier(world, dem, form, rng, number, commune, plan.created_at, max(fill_end, plan.created_at),
                        True, old, shared)
    life.transition(plan.depose_at, "depose")
    terminated = plan.fate in (HIDDEN_BY_ADMINISTRATION, HIDDEN_BY_USER_TERMINATED, HIDDEN_BY_EXPIRY)
    if dem.kind == "occitanie":
        _occitanie_life(life, reopen_allowed=not terminated)
    elif dem.kind == "poitiers":
        _poitiers_life(life)
    else:
        target = ("terminated" if terminated else "en_construction"
                  if plan.fate == HIDDEN_BY_USER_EN_CONSTRUCTION else None)
        _creteil_life(life, target, plan.processed_at)
    if plan.fate != _NORMAL:
        _hide(life, plan.fate)
    elif life.d.state in TERMINATED and rng.random() < 0.007:
        life.d.connection_usager = "deleted"
        life.anomalies.append(USAGER_DELETED)
    _finish(life)


def _purged(world: World, plan: _Plan, number: int, rng: random.Random) -> DeletedDossier:
    now, depose = world.clock.start, plan.depose_at
    assert depose is not None
    if plan.purge == "expired":
        state, at = "accepte", _add_months(plan.processed_at, 12) + 14 * _DAY + timedelta(hours=rng.uniform(1, 20))  # type: ignore[arg-type]
    elif plan.purge == "user_request":  # backdated to the day the usager deleted it
        state, at = "en_construction", _between(rng, depose + timedelta(hours=1), now - 15 * _DAY)
    elif plan.purge == "user_removed":
        state, at = "en_construction", _between(rng, depose + timedelta(hours=1), now)
    else:
        processed = depose + (timedelta(seconds=50) if plan.demarche != CRETEIL else rng.uniform(2, 20) * _DAY)
        state = "accepte" if plan.demarche != CRETEIL else rng.choice(("accepte", "refuse", "sans_suite"))
        at = min(processed + rng.uniform(15, 30) * _DAY, now - timedelta(hours=1))
    return DeletedDossier(0, number, plan.demarche, state, plan.purge, min(at, now))  # type: ignore[arg-type]


def _renumber(world: World, bases: dict[str, int]) -> None:
    """Give messages and traitements ids in global chronological order, as DS's sequences would."""
    messages = sorted((m for d in world.dossiers.values() for m in d.messages), key=lambda m: m.created_at)
    for i, m in enumerate(messages, start=bases["Commentaire"] + 1):
        m.id = i
    traitements = sorted((t for d in world.dossiers.values() for t in d.traitements), key=lambda t: t.processed_at)
    for i, t in enumerate(traitements, start=bases["Traitement"] + 1):
        t.id = i
    world.deleted.sort(key=lambda x: x.deleted_at)
    for i, x in enumerate(world.deleted, start=bases["DeletedDossier"] + 1):
        x.id = i
    world.next_ids.update({"Commentaire": bases["Commentaire"] + len(messages),
                           "Traitement": bases["Traitement"] + len(traitements),
                           "DeletedDossier": bases["DeletedDossier"] + len(world.deleted)})


def _token(rng: random.Random) -> str:
    """DS's v3 token format: urlsafe base64 of "<uuid>;<secret>"."""
    hexa = f"{rng.getrandbits(128):032x}"
    uuid = f"{hexa[:8]}-{hexa[8:12]}-4{hexa[13:16]}-a{hexa[17:20]}-{hexa[20:]}"
    return base64.urlsafe_b64encode(f"{uuid};{rng.getrandbits(192):048x}".encode()).decode()


# --- Public API -------------------------------------------------------------------------------------

def seed_world(seed: int = 2026, dossiers: int = 300, token: str | None = None,
               start: datetime | None = None) -> World:
    """A deterministic world: the three démarches, ``dossiers`` dossiers (brouillons and hidden ones
    included) plus about 3 % purged ones in ``world.deleted``, and one read-write token for all three."""
    if dossiers < 0:
        raise ValueError(f"dossiers must be >= 0, not {dossiers}")
    collecting = gc.isenabled()
    gc.disable()  # millions of acyclic objects: the cyclic collector would only re-scan them
    try:
        return _seed(seed, dossiers, token, (start or DEFAULT_START).astimezone(UTC))
    finally:
        if collecting:
            gc.enable()


def _seed(seed: int, dossiers: int, token: str | None, start: datetime) -> World:
    rng = random.Random(seed)
    world = World(clock=Clock(start), seed=seed)
    derived = _token(rng)  # drawn even when ``token`` is given, so the data does not depend on it
    world.tokens[token or derived] = Token(demarches=frozenset(DEMARCHES))
    forms_by_dem = {}
    for number, spec in SPECS.items():
        forms_by_dem[number] = _form(spec.kind)
        world.demarches[number] = _build_demarche(world, spec, forms_by_dem[number], start)
    bases = {"Commentaire": 51_204_000, "Traitement": 33_870_000, "DeletedDossier": 3_120_000}
    world.next_ids.update(bases)
    communes = {n: _Communes(rng, s.departements) for n, s in SPECS.items()}
    shared: dict = {}
    number, previous = FIRST_DOSSIER_NUMBER - 1, None
    for plan in _plans(rng, dossiers, start):
        # DS numbers every dossier of the platform: about 0.17 a second between two of ours.
        gap = 1 if previous is None else 1 + int((plan.created_at - previous).total_seconds() * rng.uniform(0.08, 0.26))
        number, previous = number + gap, plan.created_at
        if plan.purge:
            world.deleted.append(_purged(world, plan, number, rng))
        else:
            _build(world, plan, number, rng, communes, forms_by_dem, shared)
    world.next_ids["Dossier"] = number
    _renumber(world, bases)
    return world


_MOTIVATIONS = {"refuse": "Pièces justificatives non conformes.", "sans_suite": "Dossier déposé en double."}


def make_dossier(world: World, demarche_number: int, rng: random.Random, when: datetime,
                 state: str = "en_construction") -> Dossier:
    """A new, anomaly-free dossier with a fresh number whose latest event (dépôt, decision...) is ``when``;
    added to ``world.dossiers``. ``state`` may be any DS state, ``brouillon`` included."""
    if demarche_number not in world.demarches or demarche_number not in SPECS:
        raise ValueError(f"unknown démarche {demarche_number}")
    if state not in ("brouillon", "en_construction", "en_instruction", *TERMINATED):
        raise ValueError(f"unknown dossier state {state!r}")
    dem, when = world.demarches[demarche_number], when.astimezone(UTC)
    form = _form_of(dem)
    commune = rng.choice([c for d in SPECS[demarche_number].departements for c in ref.communes(d)
                          if all(ident.uai_is_valid(s.uai) for s in c.schools)])
    auto = dem.declarative == "accepte" and state == "accepte"
    if state == "brouillon":
        depose, fill_end = None, when
    else:
        steps = {"en_construction": 0, "en_instruction": 1}.get(state, 0 if auto else 2)
        depose = when - (timedelta(minutes=1) if auto else _DAY * steps)
        fill_end = depose - timedelta(seconds=30)
    created = fill_end - timedelta(minutes=rng.uniform(5, 30))
    life = _new_dossier(world, dem, form, rng, world.new_id("Dossier"), commune, created, fill_end, False, False, {})
    if depose is not None:
        life.transition(depose, "depose")
    if auto:
        life.transition(when, "accepte_automatiquement")
    elif state != "brouillon" and state != "en_construction":
        agent = life.humans[0]
        life.transition(when if state == "en_instruction" else when - _DAY, "passe_en_instruction", agent)
        if state in TERMINATED:
            event = {"accepte": "accepte", "refuse": "refuse", "sans_suite": "classe_sans_suite"}[state]
            life.transition(when, event, agent, _MOTIVATIONS.get(state))
    life.events.append(when)
    return _finish(life)
