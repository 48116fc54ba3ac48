"""From one school year to the next: which of last year's schools are renewed, pending, not renewed or
closed, and when this year's schools open. Pure: facts in, rows out; no database, no clock.

The calendar (seed 002, "Toutes les communes doivent re-conventionner ou conventionner"):

- a school open at the end of the previous campaign (accepted, signed convention in where the process
  needs one, not closed since) keeps its ENT access from la rentrée, whatever its commune does, until
  the **cut-off**; it is ``renouvelee`` once a live dossier (en construction, en instruction, accepté) of
  the new campaign lists it, whoever files it (a commune nouvelle, an EPCI: a *change of holder* when
  the SIRET differs); ``fermee`` when the only new dossiers listing it were refused or classés sans
  suite; otherwise ``en_attente`` up to the cut-off day included, ``non_renouvelee`` after it;
- a renewed school opens at la rentrée when its dossier was filed by the cut-off (its access never
  stopped), on its filing day otherwise (it was closed at the cut-off);
- a school of the new campaign that was not open the year before is ``nouvelle``: it opens at la
  rentrée when filed before the **new-schools date**, on its filing day otherwise.

A commune (SIRET) of the previous campaign is renewed when it has a live dossier in the new one. It is
reminded (once, before the cut-off) when it has filed nothing at all in the new campaign and one of its
schools is still pending: a commune whose schools were all taken over by another holder is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from connector.store.shape import RENEWAL_STATUSES

LIVE = ("en_construction", "en_instruction", "accepte")
CLOSED = ("refuse", "sans_suite")
FR_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre")


def fr_date(day: date) -> str:
    """``date(2026, 10, 29)`` → ``"29 octobre 2026"`` (``1er`` for the first)."""
    return f"{'1er' if day.day == 1 else day.day} {FR_MONTHS[day.month - 1]} {day.year}"


@dataclass(frozen=True)
class Calendar:
    rentree: date
    new_schools: date
    cutoff: date


@dataclass(frozen=True)
class OpenSchool:
    """A school open at the end of the previous campaign, with the dossier that opened it."""

    uai: str  # normalised
    dossier: int
    siret: str | None
    collectivite: str | None = None
    ecole: str | None = None
    commune: str | None = None


@dataclass(frozen=True)
class NewDossier:
    """A dossier of the new campaign (not in DS's trash) and the normalised UAIs it lists."""

    number: int
    state: str
    siret: str | None
    filed_on: date | None  # the Paris day of its dépôt
    uais: tuple[str, ...]
    collectivite: str | None = None
    convention: str | None = None  # its convention status (conventions table), when the process has one
    names: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # uai -> (école, commune)


@dataclass(frozen=True)
class School:
    """One row of ``renouvellements``."""

    uai: str
    status: str
    ecole: str | None = None
    commune: str | None = None
    dossier_precedent: int | None = None
    siret_precedent: str | None = None
    collectivite_precedente: str | None = None
    dossier: int | None = None
    siret: str | None = None
    collectivite: str | None = None
    changement_titulaire: bool = False
    convention: str | None = None
    type: str | None = None  # renouvelee | nouvelle: the school opens (or stays open) this year
    ouverture: date | None = None
    motif: str | None = None  # why it closes (fermee, non_renouvelee)


@dataclass(frozen=True)
class Commune:
    """A SIRET of the previous campaign: renewed or not, and the previous-year dossier to remind."""

    siret: str | None
    dossier_precedent: int
    collectivite: str | None
    renewed: bool
    filed: bool  # any dossier in the new campaign, even refused
    pending_schools: int  # its schools en_attente / non_renouvelee
    remind: bool


@dataclass(frozen=True)
class Outcome:
    schools: list[School]
    communes: list[Commune]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in RENEWAL_STATUSES}
        for row in self.schools:
            out[row.status] += 1
        return out


def _first(dossiers: list[NewDossier]) -> NewDossier:
    """The earliest filed (then lowest number) of several dossiers listing one school."""
    return min(dossiers, key=lambda d: (d.filed_on or date.max, d.number))


def decide(previous: list[OpenSchool], new: list[NewDossier], calendar: Calendar, today: date) -> Outcome:
    """Every school of ``previous`` (one row per UAI: the lowest dossier number holds it when two did)
    and every school of ``new``'s live dossiers that was not open the year before, at the Paris day
    ``today``; and each previous SIRET's renewal."""
    held: dict[str, OpenSchool] = {}
    for s in sorted(previous, key=lambda s: s.dossier):
        held.setdefault(s.uai, s)
    live: dict[str, list[NewDossier]] = {}
    closed: dict[str, list[NewDossier]] = {}
    for d in new:
        target = live if d.state in LIVE else closed if d.state in CLOSED else None
        if target is None:
            continue
        for uai in dict.fromkeys(d.uais):
            target.setdefault(uai, []).append(d)
    passed = today > calendar.cutoff
    schools: list[School] = []
    for uai, s in held.items():
        base = dict(uai=uai, ecole=s.ecole, commune=s.commune, dossier_precedent=s.dossier, siret_precedent=s.siret,
                    collectivite_precedente=s.collectivite)
        if uai in live:
            d = _first(live[uai])
            filed = d.filed_on
            opening = calendar.rentree if filed is None or filed <= calendar.cutoff else filed
            schools.append(School(**base, status="renouvelee", dossier=d.number, siret=d.siret,
                                  collectivite=d.collectivite, changement_titulaire=(d.siret or "") != (s.siret or ""),
                                  convention=d.convention, type="renouvelee", ouverture=opening))
        elif uai in closed:
            d = _first(closed[uai])
            word = "refusée" if d.state == "refuse" else "classée sans suite"
            schools.append(School(**base, status="fermee", dossier=d.number, siret=d.siret,
                                  collectivite=d.collectivite, changement_titulaire=(d.siret or "") != (s.siret or ""),
                                  convention=d.convention, motif=f"demande {word} (dossier nº {d.number})"))
        elif passed:
            schools.append(School(**base, status="non_renouvelee",
                                  motif=f"non renouvelée au {fr_date(calendar.cutoff)}"))
        else:
            schools.append(School(**base, status="en_attente"))
    for uai, dossiers in live.items():
        if uai in held:
            continue
        d = _first(dossiers)
        filed = d.filed_on
        opening = calendar.rentree if filed is None or filed < calendar.new_schools else filed
        ecole, commune = d.names.get(uai, (None, None))
        schools.append(School(uai=uai, status="nouvelle", ecole=ecole, commune=commune, dossier=d.number,
                              siret=d.siret, collectivite=d.collectivite, convention=d.convention, type="nouvelle",
                              ouverture=opening))
    schools.sort(key=lambda r: (r.status == "nouvelle", r.uai))
    return Outcome(schools, _communes(held, new, schools))


def _communes(held: dict[str, OpenSchool], new: list[NewDossier], schools: list[School]) -> list[Commune]:
    renewed = {d.siret for d in new if d.state in LIVE and d.siret}
    filed = {d.siret for d in new if d.siret and d.state in LIVE + CLOSED}
    pending: dict[str | None, int] = {}
    for row in schools:
        if row.status in ("en_attente", "non_renouvelee"):
            pending[row.siret_precedent] = pending.get(row.siret_precedent, 0) + 1
    latest: dict[str | None, OpenSchool] = {}
    for s in held.values():
        key = s.siret or f"dossier {s.dossier}"
        if key not in latest or s.dossier > latest[key].dossier:
            latest[key] = s
    out = []
    for s in sorted(latest.values(), key=lambda s: s.dossier):
        waiting = pending.get(s.siret, 0) if s.siret else sum(
            1 for r in schools if r.dossier_precedent == s.dossier and r.status in ("en_attente", "non_renouvelee"))
        is_renewed = s.siret in renewed
        has_filed = s.siret in filed
        out.append(Commune(s.siret, s.dossier, s.collectivite, is_renewed, has_filed, waiting,
                           remind=not has_filed and waiting > 0))
    return out


def reminder_due(calendar: Calendar, days_before: int, today: date) -> bool:
    """The reminders go from ``days_before`` days before the cut-off up to the cut-off day itself."""
    return 0 <= (calendar.cutoff - today).days <= days_before


def days_to_cutoff(calendar: Calendar, today: date) -> int:
    return (calendar.cutoff - today).days
