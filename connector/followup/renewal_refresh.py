"""Keeping ``renouvellements`` current: the facts of a campaign pair read from the mirror, decided by
:func:`connector.followup.renewal.decide`, saved in the caller's transaction.

It runs in each sync page's transaction when a dossier of either campaign changes (after the forms and
the conventions of that page: they feed it), with the newest DS timestamp of the mirror or the day the
table was last computed at, whichever is later, standing in for DS's clock (a lower bound), and after
each sync with DS's real clock (the run service's follow-up, ``connector.service``:
the daemon's way of seeing the cut-off pass when no dossier changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlite_utils

from connector.config import Config, DemarcheConfig
from connector.followup import deadlines
from connector.followup.renewal import Calendar, NewDossier, OpenSchool, Outcome, decide
from connector.forms import exports
from connector.store import followup as followup_store
from connector.store import renewal as store


@dataclass(frozen=True)
class Pair:
    """A campaign (``number``) and the previous one it renews, with its calendar."""

    number: int
    previous: int
    calendar: Calendar
    config: DemarcheConfig


def pairs(config: Config) -> list[Pair]:
    out = []
    for d in config.demarches:
        if d.previous is not None and d.renewal is not None and d.previous != d.number:
            r = d.renewal
            out.append(Pair(d.number, d.previous, Calendar(r.rentree, r.new_schools, r.cutoff), d))
    return out


def facts(db: sqlite_utils.Database, config: Config, pair: Pair) -> tuple[list[OpenSchool], list[NewDossier]]:
    """The previous campaign's open schools (its ``ouvertures``) and the new campaign's dossiers."""
    previous = [OpenSchool(r["uai"], r["dossier"], r["siret"], r["collectivite"], r["ecole"], r["commune"])
                for r in exports.openings(db, config, [pair.previous])]
    rows = store.new_dossiers(db, pair.number)
    schools = store.valid_schools(db, [r["number"] for r in rows])
    new = []
    for r in rows:
        filed = deadlines.parse_ds(r["date_depot"])
        listed = schools[r["number"]]
        new.append(NewDossier(r["number"], r["state"], r["siret"], deadlines.paris_day(filed) if filed else None,
                              tuple(s["uai"] for s in listed), r["collectivite"], r["convention"],
                              {s["uai"]: (s["nom"], s["commune"]) for s in listed}))
    return previous, new


def refresh(db: sqlite_utils.Database, config: Config, pair: Pair, today: date) -> Outcome:
    """Decide the pair at the Paris day ``today`` and save its rows (inside the caller's transaction)."""
    outcome = decide(*facts(db, config, pair), pair.calendar, today)
    store.save(db, pair.number, [{
        "demarche_number": pair.number, "uai": s.uai, "previous_demarche_number": pair.previous, "statut": s.status,
        "ecole": s.ecole, "commune": s.commune, "dossier_precedent": s.dossier_precedent,
        "siret_precedent": s.siret_precedent, "collectivite_precedente": s.collectivite_precedente,
        "dossier": s.dossier, "siret": s.siret, "collectivite": s.collectivite,
        "changement_titulaire": int(s.changement_titulaire), "convention": s.convention, "type": s.type,
        "ouverture": s.ouverture.isoformat() if s.ouverture else None, "motif": s.motif,
        "calcule_au": today.isoformat(),
    } for s in outcome.schools])
    return outcome


def refresh_all(db: sqlite_utils.Database, config: Config, now: datetime) -> dict[int, Outcome]:
    """Every pair at DS's clock ``now``, one transaction each."""
    out = {}
    for pair in pairs(config):
        with db.atomic():
            out[pair.number] = refresh(db, config, pair, deadlines.paris_day(now))
    return out


class RenewalHooks:
    """Duck-typed ``connector.sync.SyncHooks`` (composed after the forms' and the follow-up's)."""

    def __init__(self, config: Config):
        self.config = config
        self.pairs = pairs(config)

    def descriptor_saved(self, db: sqlite_utils.Database, demarche: int) -> None:
        """Nothing: the forms hook resolves the roles."""

    def demarche_done(self, db: sqlite_utils.Database, demarche: int, report: object) -> None:
        """Nothing: each page keeps the table current."""

    def dossiers_changed(self, db: sqlite_utils.Database, demarche: int, numbers: list[int]) -> None:
        touched = [p for p in self.pairs if demarche in (p.number, p.previous)]
        if not touched or not numbers:
            return
        newest = deadlines.parse_ds(followup_store.newest_ds_time(db))
        if newest is None:
            return
        for pair in touched:
            # DS's clock is not known here: the newest DS timestamp of the mirror is a lower bound, and
            # the day the statuses were last computed at (with DS's clock, after a sync) another: time
            # never goes back (a school not renewed at the cut-off does not turn pending again).
            known = store.computed_on(db, pair.number)
            today = max(deadlines.paris_day(newest), date.fromisoformat(known) if known else date.min)
            refresh(db, self.config, pair, today)
