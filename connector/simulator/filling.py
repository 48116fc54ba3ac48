"""Dossiers' champs: the three forms filled like real collectivités fill them, and their demandeurs.

The ``_fill_*`` functions draw the values (and plant the form anomalies when ``planted``);
:func:`build_champs` turns values into ``Champ`` records in descriptor order.
"""

from __future__ import annotations

import random
from datetime import datetime

from connector.simulator import forms, ident, referentiel as ref
from connector.simulator.anomalies import (
    BAD_SIRET, BAD_UAI, COST_MISMATCH, COUNT_MISMATCH, DEMANDEUR_INCOMPLETE, DUPLICATE_SCHOOL, MISSING_UPLOAD, RATES,
    SIGNATORY_FORMAT, SIGNATURE_UNCHECKED,
)
from connector.simulator.dates import DAY, fr_date, paris_day
from connector.simulator.forms import CHAMP_TYPE, SELF_FILLED, Form
from connector.simulator.state import Champ, ChampDescriptor, Row, World, make_file


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> 2 characters


def _ulid_time(at: datetime) -> str:
    """The 10-character time part of a ULID (48-bit milliseconds since the epoch, Crockford base 32)."""
    ms = int(at.timestamp() * 1000)
    return _PAIRS[ms >> 40 & 1023] + _PAIRS[ms >> 30 & 1023] + _PAIRS[ms >> 20 & 1023] + _PAIRS[
        ms >> 10 & 1023] + _PAIRS[ms & 1023]


def _ulid(rng: random.Random, time_part: str) -> str:
    """A ULID-like row id: the time part and 80 random bits (16 characters)."""
    n = rng.getrandbits(80)
    return time_part + "".join([_PAIRS[n >> shift & 1023] for shift in (70, 60, 50, 40, 30, 20, 10, 0)])


def file_size(rng: random.Random, lo: int = 2_000, hi: int = 60_000) -> int:
    """Mostly small files (mean about lo + 1/7 of the range): their bytes are generated to be checksummed."""
    return lo + int((hi - lo) * rng.random() ** 6)


def _person(rng: random.Random) -> tuple[str, str, str]:
    first, civilite = rng.choice(ref.FIRST_NAMES)
    return first, rng.choice(ref.LAST_NAMES), civilite


def _person_email(first: str, last: str, domain: str) -> str:
    return f"{ref.slug(first)}.{ref.slug(last)}@{domain}"


def _phone(rng: random.Random, departement: str) -> str:
    digits = f"{ref.PHONE_PREFIX[departement]}{rng.randrange(10 ** 8):08d}"
    style = rng.random()
    if style < 0.55:
        return " ".join(digits[i:i + 2] for i in range(0, 10, 2))
    if style < 0.9:
        return digits
    return "+33 " + " ".join([digits[1]] + [digits[i:i + 2] for i in range(2, 10, 2)])


def usager_email(rng: random.Random, commune: ref.Commune) -> str:
    s = ref.slug(commune.name)
    return rng.choice((f"mairie@{s}.fr", f"mairie.{s}@wanadoo.fr", f"secretariat@mairie-{s}.fr",
                       f"{s}.mairie@orange.fr", f"accueil@ville-{s}.fr", f"dgs@{s}.fr"))


_STREETS = ("Place de la Mairie", "Rue de la Mairie", "Place de l'Hôtel de Ville", "Grand Rue",
            "Place de la République", "Avenue de la Libération")


def _demandeur(commune: ref.Commune, siret: str, incomplete: bool) -> dict:
    """The mairie as DS's API Entreprise data shows it (GraphQL-shaped), or degraded to its SIRET."""
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


def string_value(kind: str, value: object) -> str | None:
    """DS's ``stringValue`` of a champ of that type and value (dates as "15 octobre 2026")."""
    if value is None or kind in SELF_FILLED:
        return None
    if kind in ("CheckboxChamp", "YesNoChamp"):
        return "Oui" if value else "Non"
    if kind == "DateChamp":
        return fr_date(value)
    if kind == "MultipleDropDownListChamp":
        return ", ".join(value)
    if kind == "CommuneChamp":
        c = value["commune"]
        return f"{c['name']} ({c['postalCode']})"
    if kind == "DepartementChamp":
        return f"{value['code']} – {value['name']}"
    return str(value)


# ``files``/``rows`` of champs that can hold neither: one shared immutable empty sequence, not two
# lists per champ (a 50 000-dossier world has over a million champs).
NOTHING: list = ()


def _champ(desc: ChampDescriptor, value: object, at: datetime, rng: random.Random) -> Champ:
    kind = CHAMP_TYPE.get(desc.type, desc.type)
    if kind == "PieceJustificativeChamp":
        return Champ(desc.stable_id, kind, desc.label, None, None, list(value or ()), NOTHING, at)
    if kind == "RepetitionChamp":
        rows, time_part = [], _ulid_time(at)
        for row_values in value or ():
            cells = [_champ(c, row_values[c.stable_id], at, rng) for c in desc.children if c.stable_id in row_values]
            rows.append(Row(_ulid(rng, time_part), cells))
        return Champ(desc.stable_id, kind, desc.label, None, None, NOTHING, rows, at)
    return Champ(desc.stable_id, kind, desc.label, string_value(kind, value), value, NOTHING, NOTHING, at)


def build_champs(descs: list[ChampDescriptor], values: dict[int, object], first: datetime, last: datetime,
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
                shared[key] = _champ(desc, None, None, rng)
            out.append(shared[key])
        elif desc.stable_id in values:
            out.append(_champ(desc, values[desc.stable_id], at, rng))
    return out


def empty_annotations(descs: list[ChampDescriptor], at: datetime) -> list[Champ]:
    return [
        Champ(d.stable_id, CHAMP_TYPE.get(d.type, d.type), d.label,
              *(("Non", False) if d.type == "CheckboxChamp" else (None, None)), NOTHING, NOTHING, at)
        for d in descs
    ]


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


def _signatory_fact(values: dict[str, object], anomalies: list[str], planted: bool) -> None:
    """Name the signatory written otherwise than "Prénom NOM" (its last name not in capitals); a dossier
    without planted anomalies gets the capitals (no draw: the rest of the dossier is unchanged)."""
    first, _, last = str(values["signataire"]).rpartition(" ")
    if last != last.upper():
        if planted:
            anomalies.append(SIGNATORY_FORMAT)
        else:
            values["signataire"] = f"{first} {last.upper()}"


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
    values["referent_nom"], values["referent_email"] = f"{first} {last}", _person_email(first, last, domain)
    if second:
        values["referent2"] = rng.random() < 0.3
        if values["referent2"]:
            first, last, _ = _person(rng)
            values["referent2_nom"], values["referent2_email"] = f"{first} {last}", _person_email(first, last, domain)


def _fill_occitanie(rng: random.Random, commune: ref.Commune, planted: bool, anomalies: list[str],
                    fee: int = forms.OCCITANIE_FEE_EUROS) -> dict:
    schools = _pick_schools(rng, commune, planted)
    listed = len(schools)
    count = max(listed, 1)
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
        "cout": forms.euros(cost_count * fee),
        "engagement_convention": True, "engagement_paiement": True,
    }
    _qualite(rng, values)
    _referent(rng, commune, values, second=True)
    _signatory_fact(values, anomalies, planted)
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
    _signatory_fact(values, anomalies, planted)
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
        uploads[key] = [make_file(world, name, content_type, file_size(rng), at, scan)]
    first, last, civilite = _person(rng)
    dept = commune.departement
    values: dict[str, object] = {
        "departement": forms.CRETEIL_DEPARTEMENTS[dept], "commune": _commune_value(commune, shared),
        "civilite": civilite,
        "nom": last if rng.random() < 0.6 else last.capitalize(), "prenom": first,
        "fonction": rng.choice(_FONCTIONS), "email": _person_email(first, last, f"ville-{slug}.fr"),
        "telephone": _phone(rng, dept), "ecoles": typed,
        "commentaires": (f"Commande passée via Chorus Pro le {fr_date(paris_day(at - 9 * DAY))}."
                         if rng.random() < 0.3 else None),
        **uploads,
    }
    return values


def _values_by_id(form: Form, values: dict[str, object]) -> dict[int, object]:
    """Values by stable id; a repetition given as plain values gets one single-champ row per value."""
    out: dict[int, object] = {}
    for key, value in values.items():
        desc = form.keys.get(key)
        if desc is None:
            continue
        if desc.type == "RepetitionChamp" and desc.children and value and not isinstance(value[0], dict):
            child = desc.children[0].stable_id
            value = [{child: v} for v in value]
        out[desc.stable_id] = value
    return out


def fill(world: World, kind: str, form: Form, rng: random.Random, commune: ref.Commune, planted: bool,
         anomalies: list[str], at: datetime, shared: dict, fee: int | None = None) -> tuple[dict, dict[int, object]]:
    """A new dossier's demandeur and champ values (by stable id), filled by ``at``; the anomalies planted
    (only when ``planted``) are appended to ``anomalies``. ``shared`` holds the world's read-only values;
    ``fee``: the démarche's fee per school in euros (Occitanie's form; default its 2026-27 fee)."""
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
    if kind == "occitanie":
        values = _fill_occitanie(rng, commune, planted, anomalies, fee or forms.OCCITANIE_FEE_EUROS)
    elif kind == "poitiers":
        values = _fill_poitiers(rng, commune, planted, anomalies, form, shared)
    else:
        values = _fill_creteil(world, rng, commune, planted, anomalies, at, shared)
    return shared[key], _values_by_id(form, values)
