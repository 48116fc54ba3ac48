"""Two successive Occitanie campaigns, planted for the renewal from one school year to the next (opt-in:
``seed_world(..., renewal=True)``, ``ds-connector simulate --with renewal``).

:data:`PREVIOUS` (2025-2026, closed) holds the dossiers of last year, accepted with their signed
convention returned (one classé sans suite for want of it, one archived since); :data:`NEXT` (2026-2027)
holds this year's dossiers, each a planted case: a commune renewing the same schools, one dropping a
school and adding another, a commune nouvelle (new SIRET) filing for the schools of two former communes,
a renewal classé sans suite, a renewal with its convention still owed, new communes filing before and
after the new-schools date, and a commune that files only after the cut-off (:func:`file_late`, through
the control surface once the clock has passed :data:`CUTOFF`).

:func:`truth` gives, for the world's clock, each school's expected status, holder change and opening
date, written from the plan below, never computed by the connector's rules. Calendar (seed 002, moved
to 2026): la rentrée :data:`RENTREE`, new-schools date :data:`NEW_SCHOOLS`, cut-off :data:`CUTOFF`.

The rules the truth is written by: a school open at the end of the previous campaign is ``renouvelee``
when a live dossier of the new campaign lists it (its opening date: la rentrée when filed by the
cut-off day, the filing day otherwise), ``fermee`` when its only new dossier is refused or classé sans
suite, else ``en_attente`` before the cut-off and ``non_renouvelee`` after it. A school not open the
year before is ``nouvelle``: it opens at la rentrée when filed before the new-schools date, on the
filing day otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from connector.simulator import ident, referentiel as ref
from connector.simulator.dates import DAY
from connector.simulator.demarches import OCCITANIE, SPECS, build_demarche, form_for, form_of
from connector.simulator.filling import _demandeur, _fill_occitanie, _values_by_id, build_champs, empty_annotations
from connector.simulator.forms import OCCITANIE_FEE_EUROS, euros
from connector.simulator.histories import Life, write_usager_message
from connector.simulator.state import PARIS, UTC, Dossier, World, make_file

PREVIOUS = 124510
NEXT = 133207
RENTREE = date(2026, 9, 1)
NEW_SCHOOLS = date(2026, 8, 29)
CUTOFF = date(2026, 10, 29)

_PREVIOUS_SPEC = replace(
    SPECS[OCCITANIE], number=PREVIOUS, title="ENT-École : demande d'adhésion par conventionnement 2025-2026",
    revision_id=577301, created_days_before=560,
    groupes=((71412, "Académie de Montpellier", ("11", "30", "34", "48", "66"), False),
             (71413, "Académie de Toulouse", ("09", "12", "31", "32", "46", "65", "81", "82"), False)),
    instructeurs=((90101, 71412, "sophie.castel@ac-montpellier.fr"), (90103, 71413, "nathalie.barthe@ac-toulouse.fr")),
    labels=(),
)
_NEXT_SPEC = replace(
    SPECS[OCCITANIE], number=NEXT,
    title="ENT-École : renouvellement et demande d'adhésion par conventionnement 2026-2027",
    revision_id=633118, created_days_before=200,
    groupes=((72412, "Académie de Montpellier", ("11", "30", "34", "48", "66"), False),
             (72413, "Académie de Toulouse", ("09", "12", "31", "32", "46", "65", "81", "82"), False)),
    instructeurs=((90102, 72412, "julien.pujol@ac-montpellier.fr"), (90104, 72413, "eric.rouquette@ac-toulouse.fr")),
    labels=(),
)
SPECS_BY_NUMBER = {PREVIOUS: _PREVIOUS_SPEC, NEXT: _NEXT_SPEC}


@dataclass(frozen=True)
class _Filing:
    """One planted dossier: who files (a commune key or a commune nouvelle), which schools (commune key,
    index in its catalogue), when (Paris day), and how it ends."""

    holder: str
    schools: tuple[tuple[str, int], ...]
    day: date
    fate: str = "convention"  # convention | no_convention | sans_suite | archived


# The communes of the plan: keys -> (département, rank among the catalogue's communes with >= 3 valid schools).
_COMMUNES = {"A": ("34", 0), "B": ("31", 0), "C": ("11", 0), "D": ("30", 0), "E": ("81", 0), "F": ("81", 1),
             "H": ("66", 0), "I": ("12", 0), "J": ("09", 0), "K": ("32", 0), "L": ("46", 0), "M": ("65", 0)}
COMMUNE_NOUVELLE = "G"

PREVIOUS_FILINGS = (
    _Filing("A", (("A", 0), ("A", 1), ("A", 2)), date(2025, 6, 12)),
    _Filing("B", (("B", 0), ("B", 1), ("B", 2)), date(2025, 6, 20)),
    _Filing("C", (("C", 0), ("C", 1)), date(2025, 7, 3)),
    _Filing("D", (("D", 0),), date(2025, 9, 15), "archived"),
    _Filing("E", (("E", 0), ("E", 1)), date(2025, 6, 2)),
    _Filing("F", (("F", 0),), date(2025, 6, 4)),
    _Filing("H", (("H", 0), ("H", 1)), date(2025, 8, 25)),
    _Filing("I", (("I", 0),), date(2025, 9, 2), "sans_suite"),
    _Filing("J", (("J", 0), ("J", 1)), date(2025, 9, 30)),
    _Filing("K", (("K", 0),), date(2025, 10, 1)),
)
NEXT_FILINGS = (
    _Filing("A", (("A", 0), ("A", 1), ("A", 2)), date(2026, 6, 10)),  # same schools, before the new-schools date
    _Filing("B", (("B", 0), ("B", 1), ("B", 3)), date(2026, 9, 10)),  # B2 dropped, B3 new, between the dates
    _Filing(COMMUNE_NOUVELLE, (("E", 0), ("E", 1), ("F", 0)), date(2026, 7, 1)),  # commune nouvelle
    _Filing("H", (("H", 0), ("H", 1)), date(2026, 9, 20), "sans_suite"),  # its renewal classé sans suite
    _Filing("K", (("K", 0),), date(2026, 10, 2), "no_convention"),  # renewed, convention still owed
    _Filing("L", (("L", 0), ("L", 1)), date(2026, 8, 20)),  # a new commune before the new-schools date
    _Filing("M", (("M", 0),), date(2026, 10, 5), "no_convention"),  # a new commune between the dates
)
LATE_FILING = _Filing("J", (("J", 0), ("J", 1)), CUTOFF + timedelta(days=3), "no_convention")  # after the cut-off
NOT_FILING = ("C", "D", "J")  # the previous campaign's communes with no new dossier at the clock start


def _communes() -> dict[str, ref.Commune]:
    out = {}
    for key, (dept, rank) in _COMMUNES.items():
        fit = [c for c in ref.communes(dept) if sum(ident.uai_is_valid(s.uai) for s in c.schools) >= 4]
        c = fit[rank]
        out[key] = c._replace(schools=tuple(s for s in c.schools if ident.uai_is_valid(s.uai)))
    e, f = out["E"], out["F"]
    siren = ident.commune_siren(e.insee[:2] + "999")  # a new INSEE code for the commune nouvelle
    siret = ident.siret_from(siren, 17)
    out[COMMUNE_NOUVELLE] = e._replace(name=f"{e.name}-{f.name}", siren=siren, siret=siret,
                                       schools=e.schools[:2] + f.schools[:1])
    return out



def _school(communes: dict[str, ref.Commune], ref_: tuple[str, int]) -> ref.School:
    key, index = ref_
    return communes[key].schools[index]


def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour, 17), PARIS).astimezone(UTC)


def _dossier(world: World, number: int, filing: _Filing, communes: dict[str, ref.Commune], depose: datetime,
             rng: random.Random, shared: dict) -> Dossier:
    dem = world.demarches[number]
    spec = SPECS_BY_NUMBER[number]
    form = _forms(world)[number]
    commune = communes[filing.holder]
    schools = [_school(communes, s) for s in filing.schools]
    values = _fill_occitanie(rng, commune, False, [])
    values.update(ecoles=[s.label for s in schools], nombre_ecoles=str(len(schools)),
                  cout=euros(len(schools) * OCCITANIE_FEE_EUROS))
    created = depose - timedelta(minutes=25)
    groupe = next(gid for gid, _, depts, _ in spec.groupes if commune.departement in depts)
    d = Dossier(number=world.new_id("Dossier"), demarche_number=dem.number, state="brouillon", created_at=created,
                updated_at=created, revision_id=dem.active_revision_id, groupe_instructeur_number=groupe,
                usager_email=f"mairie@{ref.slug(commune.name)}.fr",
                demandeur=_demandeur(commune, commune.siret, False), connection_usager="password")
    d.champs = build_champs(form.champs, _values_by_id(form, values), created, depose - timedelta(seconds=30), rng,
                            shared)
    d.annotations = empty_annotations(form.annotations, created)
    d.champs_updated_at = d.annotations_updated_at = created
    world.dossiers[d.number] = d
    humans = [e for _, g, e in spec.instructeurs if g == groupe]
    life = Life(world, dem, form, d, rng, world.clock.start, spec, humans,
                {i.email: i.id for i in world.instructeurs.values()}, [created])
    life.transition(depose, "depose")
    life.transition(depose + timedelta(seconds=50), "accepte_automatiquement")
    if filing.fate in ("convention", "archived"):
        m = write_usager_message(world, d, "signed_pdf", depose + 9 * DAY, rng)
        if any(f.content_type != "application/pdf" for f in m.attachments):  # a PDF known only by its name
            m.attachments = [make_file(world, f.filename, "application/pdf", f.size, f.created_at)
                             for f in m.attachments]
        life.events.append(m.created_at)
    elif filing.fate == "sans_suite":  # last year: no convention in two months; this year: a request in double
        at = depose + (70 * DAY if number == PREVIOUS else 12 * DAY)
        life.transition(at, "repasse_en_instruction", humans[0])
        life.transition(at + timedelta(minutes=2), "classe_sans_suite", humans[0],
                        "Convention signée non reçue dans le délai de deux mois." if number == PREVIOUS
                        else "Demande déposée en double par erreur.")
    if filing.fate == "archived":
        d.archived = True
        life.events.append(depose + 300 * DAY)
    d.messages.sort(key=lambda m: m.created_at)
    d.updated_at = max(life.events)
    d.anomalies = (f"renewal:{filing.holder}",)
    return d


def _forms(world: World) -> dict[int, Any]:
    return {n: form_of(world.demarches[n]) for n in (PREVIOUS, NEXT)}


def plant(world: World) -> None:
    """Add the two campaigns and their planted dossiers to a seeded world (an RNG of its own: the rest of
    the world does not change). The previous campaign is closed."""
    rng = random.Random(f"{world.seed}-renewal")
    start = world.clock.start
    form = form_for("occitanie")
    for spec in (_PREVIOUS_SPEC, _NEXT_SPEC):
        world.demarches[spec.number] = build_demarche(world, spec, form, start)
    world.demarches[PREVIOUS].state = "close"
    for token in world.tokens.values():
        if token.demarches is not None:
            token.demarches = frozenset(token.demarches | {PREVIOUS, NEXT})
    communes, shared = _communes(), {}
    for filing in PREVIOUS_FILINGS:
        _dossier(world, PREVIOUS, filing, communes, _at(filing.day), rng, shared)
    for filing in NEXT_FILINGS:
        _dossier(world, NEXT, filing, communes, _at(filing.day), rng, shared)


def file_late(world: World) -> int:
    """The commune that files only after the cut-off files now (the clock must have passed the cut-off):
    the new dossier's number."""
    now = world.clock.now()
    if now.astimezone(PARIS).date() <= CUTOFF:
        raise ValueError(f"the late commune files after the cut-off ({CUTOFF}); move the clock first")
    if any(d.demarche_number == NEXT and d.anomalies == (f"renewal:{LATE_FILING.holder}",)
           for d in world.dossiers.values()):
        raise ValueError("the late commune has already filed")
    rng = random.Random(f"{world.seed}-renewal-late")
    d = _dossier(world, NEXT, LATE_FILING, _communes(), now - timedelta(hours=1), rng, {})
    return d.number


def _previous_open() -> list[tuple[str, tuple[str, int]]]:
    """(previous holder, school) open at the end of the previous campaign (accepted with its convention)."""
    return [(f.holder, s) for f in PREVIOUS_FILINGS if f.fate in ("convention", "archived") for s in f.schools]


def truth(world: World) -> dict[str, Any]:
    """Each school's expected renewal status at the world's clock: ``schools`` by normalised UAI
    (status, previous and new SIRET, change of holder, type and opening date), the communes (SIRET) that
    have not renewed (no live dossier), those a reminder is for (no dossier at all, a school still not
    renewed), and the archived previous-year dossier."""
    communes = _communes()
    today = world.clock.now().astimezone(PARIS).date()
    late = [d for d in world.dossiers.values() if d.demarche_number == NEXT
            and d.anomalies == (f"renewal:{LATE_FILING.holder}",)]
    filings = list(NEXT_FILINGS)
    filed_on = {f: f.day for f in filings}
    if late:
        filings.append(LATE_FILING)
        filed_on[LATE_FILING] = late[0].depose_at.astimezone(PARIS).date()
    previous = _previous_open()
    previous_uais = {_school(communes, s).uai for _, s in previous}
    schools: dict[str, dict[str, Any]] = {}
    for holder, s in previous:
        uai = _school(communes, s).uai
        row = {"status": "en_attente" if today <= CUTOFF else "non_renouvelee",
               "siret_precedent": communes[holder].siret, "siret": None, "changement_titulaire": False,
               "type": None, "ouverture": None}
        for f in filings:
            if s not in f.schools:
                continue
            row["siret"] = communes[f.holder].siret
            row["changement_titulaire"] = f.holder != holder
            if f.fate == "sans_suite":
                row["status"] = "fermee"
            else:
                row.update(status="renouvelee", type="renouvelee",
                           ouverture=(RENTREE if filed_on[f] <= CUTOFF else filed_on[f]).isoformat())
        schools[uai] = row
    for f in filings:
        for s in f.schools:
            uai = _school(communes, s).uai
            if uai in previous_uais or f.fate == "sans_suite":
                continue
            schools[uai] = {"status": "nouvelle", "siret_precedent": None, "siret": communes[f.holder].siret,
                            "changement_titulaire": False, "type": "nouvelle",
                            "ouverture": (RENTREE if filed_on[f] < NEW_SCHOOLS else filed_on[f]).isoformat()}
    filers = {communes[f.holder].siret for f in filings if f.fate != "sans_suite"}
    previous_holders = sorted({communes[h].siret for h, _ in previous})
    pending = {h for h, s in previous if schools[_school(communes, s).uai]["status"] in ("en_attente", "non_renouvelee")}
    filed = {communes[f.holder].siret for f in filings}
    reminded = sorted(communes[h].siret for h in pending if communes[h].siret not in filed)
    archived = [d.number for d in world.dossiers.values() if d.demarche_number == PREVIOUS and d.archived]
    return {"previous": PREVIOUS, "next": NEXT, "cutoff": CUTOFF.isoformat(), "new_schools": NEW_SCHOOLS.isoformat(),
            "rentree": RENTREE.isoformat(), "today": today.isoformat(), "schools": schools,
            "not_renewed_communes": [s for s in previous_holders if s not in filers],
            "to_remind": reminded,
            "archived_previous_dossiers": archived}
