"""Facts across dossiers, planted after the seeding with an RNG of their own (the rest of the world is
unchanged by them): a collectivité filing twice, a school claimed by two collectivités.

- ``plant(world)``: about :data:`SIRET_TWICE_RATE` of the live dossiers of each démarche get the demandeur
  (SIRET) of another live dossier (the collectivité filed a second form), and about
  :data:`SCHOOL_TWICE_RATE` add a school that another collectivité's live dossier lists (the Occitanie count
  and cost go up by one school with it, so that they stay as right or as wrong as they were).
- ``mark(world)``: names the facts on every dossier concerned, planted or born of chance (a large world's
  communes file again once every commune has filed), as the rules of issue 8 state them:
  :data:`SIRET_TWICE` on every live dossier whose SIRET has another live dossier in the démarche;
  :data:`SCHOOL_TWICE` on every live dossier listing a valid UAI that a live dossier with another SIRET lists.
  Live: listed by the API (``visible_by_administration``) and ``en_construction``, ``en_instruction`` or
  ``accepte``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import replace

from connector.simulator import forms, ident
from connector.simulator.anomalies import (
    BAD_SIRET, BAD_UAI, DEMANDEUR_INCOMPLETE, SCHOOL_TWICE, SCHOOL_TWICE_RATE, SIRET_TWICE, SIRET_TWICE_RATE,
)
from connector.simulator.state import Champ, Dossier, Row, World

LIVE = ("en_construction", "en_instruction", "accepte")
_UAI_IN_LABEL = re.compile(r"\(([0-9A-Za-z]{8})\)\s*$")


def listed(d: Dossier) -> bool:
    if d.state == "brouillon" or d.hidden_by_administration_at or d.hidden_by_expired_at:
        return False
    return not (d.state == "en_construction" and d.hidden_by_user_at)


def live(d: Dossier) -> bool:
    return listed(d) and d.state in LIVE


def school_uais(d: Dossier) -> list[str]:
    """The UAIs a dossier lists, normalised (Occitanie multi-select, Poitiers and Créteil rows)."""
    out = []
    for c in d.champs:
        if c.type == "MultipleDropDownListChamp" and c.value:
            out += [m[1].upper() for v in c.value if (m := _UAI_IN_LABEL.search(v))]
        for row in c.rows:
            for cell in row.champs:
                if cell.type == "DropDownListChamp" and cell.value and (m := _UAI_IN_LABEL.search(cell.value)):
                    out.append(m[1].upper())
                elif cell.type == "TextChamp" and cell.value:
                    out.append("".join(cell.value.split()).upper())
    return out


def _schools_champ(d: Dossier) -> Champ | None:
    return next((c for c in d.champs if c.stable_id in (4210009, 3870107, 2954315)), None)


def _add_school(d: Dossier, donor: Dossier, uai: str, rng: random.Random) -> bool:
    """Add the donor's school ``uai`` to ``d``'s schools, in d's form's shape."""
    mine, theirs = _schools_champ(d), _schools_champ(donor)
    if mine is None or theirs is None:
        return False
    if mine.type == "MultipleDropDownListChamp":
        label = next(v for v in theirs.value if v.endswith(f"({uai})"))
        mine.value = [*mine.value, label]
        mine.string_value = ", ".join(mine.value)
        by_id = {c.stable_id: c for c in d.champs}
        count, cost = by_id.get(4210012), by_id.get(4210013)
        if count is not None and cost is not None:
            count.value = count.string_value = str(int(count.value) + 1)
            amount = int(cost.value.removesuffix(" €").replace(" ", "")) + forms.OCCITANIE_FEE_EUROS
            cost.value = cost.string_value = forms.euros(amount)
        return True
    row = next(r for r in theirs.rows if any(uai in (cell.string_value or "").upper().replace(" ", "")
                                             for cell in r.champs))
    suffix = f"{rng.getrandbits(80):020x}"[:16].upper()
    at = mine.updated_at or d.updated_at
    mine.rows = [*mine.rows, Row(row.id[:10] + suffix, [replace(cell, updated_at=at) for cell in row.champs])]
    return True


def plant(world: World) -> None:
    rng = random.Random(f"{world.seed}-crossings")
    for number in sorted(world.demarches):
        dossiers = sorted((d for d in world.dossiers.values() if d.demarche_number == number and live(d)),
                          key=lambda d: d.number)
        clean = [d for d in dossiers if not {BAD_SIRET, DEMANDEUR_INCOMPLETE} & set(d.anomalies)]
        if len(clean) < 4:
            continue
        for d in clean:
            if rng.random() < SIRET_TWICE_RATE:
                other = rng.choice([o for o in clean if o is not d])
                d.demandeur = other.demandeur
        for d in dossiers:
            if rng.random() >= SCHOOL_TWICE_RATE:
                continue
            siret = d.demandeur["siret"]
            mine = set(school_uais(d))
            donors = [o for o in dossiers if o.demandeur["siret"] != siret and BAD_UAI not in o.anomalies]
            donor = rng.choice(donors) if donors else None
            choices = [u for u in school_uais(donor) if u not in mine and ident.uai_is_valid(u)] if donor else []
            if choices:
                _add_school(d, donor, rng.choice(choices), rng)


def mark(world: World) -> None:
    for number in sorted(world.demarches):
        dossiers = [d for d in world.dossiers.values() if d.demarche_number == number and live(d)]
        by_siret: dict[str, list[Dossier]] = defaultdict(list)
        by_uai: dict[str, set[str]] = defaultdict(set)
        for d in dossiers:
            by_siret[d.demandeur["siret"]].append(d)
            for uai in school_uais(d):
                if ident.uai_is_valid(uai):
                    by_uai[uai].add(d.demandeur["siret"])
        for d in dossiers:
            facts = []
            if len(by_siret[d.demandeur["siret"]]) > 1:
                facts.append(SIRET_TWICE)
            if any(len(by_uai[u]) > 1 for u in school_uais(d) if ident.uai_is_valid(u)):
                facts.append(SCHOOL_TWICE)
            if facts:
                d.anomalies = tuple(a for a in d.anomalies if a not in (SIRET_TWICE, SCHOOL_TWICE)) + tuple(facts)
