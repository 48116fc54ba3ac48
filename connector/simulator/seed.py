"""Seeded simulator worlds: the three ENT-École démarches, their people, and realistic dossiers.

``seed_world(seed)`` is deterministic: one ``random.Random(seed)`` drives everything (never the global
random, ``hash()`` or the wall clock), the clock starts at :data:`DEFAULT_START` (2026-10-15 09:00
Paris) unless ``start`` is given, and every campaign window is counted back from that start.

- :data:`OCCITANIE` adhesion 2026-27 (seeds 000/002/004): declarative ``accepte``; the attestation
  is the pre-filled convention; an instructeur asks for the signed PDF, which comes back through the
  messagerie on time, late, never, or as the wrong kind of file.
- :data:`POITIERS` convention (seed 001): declarative ``accepte``, signature by ticking a box.
- :data:`CRETEIL` order finalisation (seed 003): instructed by hand; three mandatory uploads.

Forms are in ``forms.py``, démarches (and their numbers) in ``demarches.py``, the planted facts, their
names and rates in ``anomalies.py``, the filling in ``filling.py`` and what happens after dépôt in
``histories.py``.
"""

from __future__ import annotations

import base64
import gc
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.simulator import crossings, ident, referentiel as ref, renewal as renewal_campaigns
from connector.simulator.anomalies import (
    BROUILLON, CONVENTION_LATE, CONVENTION_MISSING, CONVENTION_ON_TIME, FATES, FRESH_PDF_REPLIES,
    HIDDEN_BY_ADMINISTRATION, HIDDEN_BY_EXPIRY, HIDDEN_BY_USER_EN_CONSTRUCTION, HIDDEN_BY_USER_TERMINATED,
    PDF_SCAN_PENDING, PURGE_REASONS, PURGED_RATE, USAGER_DELETED,
)
from connector.simulator.dates import DAY, add_months, between, not_after, office_hours, on_time
from connector.simulator.demarches import (
    CRETEIL, DEMARCHES, OCCITANIE, POITIERS, SPECS, TECH_ACCOUNTS, Spec, build_demarche, form_for, form_of,
)
from connector.simulator.filling import build_champs, empty_annotations, fill, usager_email
from connector.simulator.forms import SELF_FILLED, Form
from connector.simulator.histories import (
    USAGER_MESSAGE_KINDS, Life, creteil_life, hide, occitanie_life, poitiers_life, write_usager_message,
)
from connector.simulator.state import (
    PARIS, TERMINATED, UTC, Clock, DeletedDossier, Demarche, Dossier, Message, Token, World,
)

__all__ = [
    "CRETEIL", "DEFAULT_START", "DEMARCHES", "FIRST_DOSSIER_NUMBER", "OCCITANIE", "POITIERS", "TECH_ACCOUNTS",
    "USAGER_MESSAGE_KINDS", "make_dossier", "make_usager_message", "seed_world",
]

DEFAULT_START = datetime(2026, 10, 15, 9, 0, tzinfo=PARIS)
FIRST_DOSSIER_NUMBER = 20_000_000
_NORMAL = "normal"
_SHARE = {OCCITANIE: 0.5, POITIERS: 0.25, CRETEIL: 0.25}


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
        self.campaign = (now - 167 * DAY, now - timedelta(minutes=30))  # 1 May -> 15 Oct 2026
        self.creteil = (now - 228 * DAY, now - timedelta(minutes=30))  # from 1 March 2026

    def depose(self, rng: random.Random, demarche: int, latest: datetime | None = None) -> datetime:
        lo, hi = self.creteil if demarche == CRETEIL else self.campaign
        hi = min(hi, latest or hi)
        r = rng.random()
        if r < 0.25:  # the opening rush
            hi = min(hi, lo + 40 * DAY)
        elif r < 0.5:  # before the late-October close
            lo = max(lo, hi - 40 * DAY)
        t = between(rng, lo, hi)
        office = office_hours(rng, t)
        return office if office < hi and rng.random() < 0.85 else t


def _plans(rng: random.Random, n: int, now: datetime, share: dict[int, float]) -> list[_Plan]:
    w = _Windows(now)
    fates = [f for f, share in FATES.items() for _ in range(round(n * share))][:n]
    fates += [_NORMAL] * (n - len(fates))
    purged = round(n * PURGED_RATE)
    reasons = rng.choices(tuple(PURGE_REASONS), tuple(PURGE_REASONS.values()), k=purged)
    entries = [(f, None) for f in fates] + [("purged", r) for r in reasons]
    rng.shuffle(entries)
    demarches, cumulated = tuple(share), tuple(itertools.accumulate(share.values()))
    plans = []
    for fate, reason in entries:
        dem = rng.choices(demarches, cum_weights=cumulated)[0]
        processed = None
        if fate == HIDDEN_BY_USER_EN_CONSTRUCTION or reason in ("user_request", "user_removed"):
            dem = CRETEIL
        if fate == HIDDEN_BY_EXPIRY or reason == "expired":
            dem = CRETEIL
            back = rng.uniform(0.2, 13) if fate == HIDDEN_BY_EXPIRY else rng.uniform(15, 70)
            processed = add_months(now - back * DAY, -12)
            depose = processed - rng.uniform(1, 25) * DAY
        elif fate in (HIDDEN_BY_ADMINISTRATION, HIDDEN_BY_USER_TERMINATED) or reason in (
                "instructeur_request", "manager_request", "user_request"):
            depose = w.depose(rng, dem, latest=now - 45 * DAY)
        else:
            depose = w.depose(rng, dem)
        created = depose - (timedelta(minutes=rng.uniform(3, 40)) if rng.random() < 0.75
                            else rng.uniform(1, 12) * DAY)
        if fate == BROUILLON:
            created, depose = depose - rng.uniform(0, 20) * DAY, None
        plans.append(_Plan(dem, fate if reason is None else "purged", created, depose, processed, reason))
    plans.sort(key=lambda p: p.created_at)
    return plans


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


def _groupe_for(spec: Spec, departement: str, old: bool) -> int:
    for gid, _, depts, closed in spec.groupes:
        if (closed and old) or (not old and departement in depts):
            return gid
    return spec.groupes[0][0]


def _new_dossier(world: World, dem: Demarche, form: Form, rng: random.Random, number: int, commune: ref.Commune,
                 created: datetime, last_edit: datetime, planted: bool, old: bool, shared: dict,
                 spec: Spec | None = None) -> Life:
    """A dossier filled from ``created`` to ``last_edit``, with its anomalies drawn when ``planted``
    (``spec``: the démarche's, default the built-in one of its number)."""
    spec = spec or SPECS[dem.number]
    anomalies: list[str] = []
    person, values = fill(world, dem.kind, form, rng, commune, planted, anomalies, last_edit, shared,
                          fee=dem.fee_cents // 100 if dem.fee_cents else None)
    d = Dossier(
        number=number, demarche_number=dem.number, state="brouillon", created_at=created, updated_at=created,
        revision_id=dem.active_revision_id, groupe_instructeur_number=_groupe_for(spec, commune.departement, old),
        usager_email=usager_email(rng, commune), demandeur=person,
        connection_usager="france_connect" if rng.random() < 0.12 else "password",
    )
    d.champs = build_champs(form.champs, values, created, last_edit, rng, shared)
    d.annotations = empty_annotations(form.annotations, created)
    d.champs_updated_at, d.annotations_updated_at = last_edit, created
    world.dossiers[number] = d
    if ("ids",) not in shared:
        shared[("ids",)] = {i.email: i.id for i in world.instructeurs.values()}
    key = ("humans", d.groupe_instructeur_number)
    if key not in shared:
        groupe = next(g for g in dem.groupes if g.number == d.groupe_instructeur_number)
        humans = [world.instructeurs[i].email for i in groupe.instructeur_ids if i != spec.tech[0]]
        shared[key] = humans or [spec.tech[1]]
    return Life(world, dem, form, d, rng, world.clock.start, spec, shared[key], shared[("ids",)],
                 [created, last_edit], anomalies)


def _finish(life: Life) -> Dossier:
    """Messages in order, ``updated_at`` = the latest event, the planted names recorded."""
    d = life.d
    d.messages.sort(key=lambda m: m.created_at)
    d.updated_at = max(life.events)
    d.anomalies = tuple(life.anomalies)
    return d


def _build(world: World, plan: _Plan, number: int, rng: random.Random, communes: dict, forms_by_dem: dict,
           shared: dict) -> None:
    """One planned dossier: filled, deposited, lived through up to the clock start, hidden if its fate says so."""
    dem, form, now = world.demarches[plan.demarche], forms_by_dem[plan.demarche], world.clock.start
    commune = communes[plan.demarche].next()
    if plan.depose_at is None:  # brouillon
        last = not_after(rng, between(rng, plan.created_at, plan.created_at + 20 * DAY), plan.created_at, now)
        life = _new_dossier(world, dem, form, rng, number, commune, plan.created_at, last, False, False, shared)
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
        occitanie_life(life, reopen_allowed=not terminated)
    elif dem.kind == "poitiers":
        poitiers_life(life)
    else:
        target = ("terminated" if terminated else "en_construction"
                  if plan.fate == HIDDEN_BY_USER_EN_CONSTRUCTION else None)
        creteil_life(life, target, plan.processed_at)
    if plan.fate != _NORMAL:
        hide(life, plan.fate)
    elif life.d.state in TERMINATED and rng.random() < 0.007:
        life.d.connection_usager = "deleted"
        life.anomalies.append(USAGER_DELETED)
    _finish(life)


def _purged(world: World, plan: _Plan, number: int, rng: random.Random) -> DeletedDossier:
    """The tombstone of a planned dossier DS has purged (its id is given by :func:`_renumber`)."""
    now, depose = world.clock.start, plan.depose_at
    assert depose is not None
    if plan.purge == "expired":
        state, at = "accepte", add_months(plan.processed_at, 12) + 14 * DAY + timedelta(hours=rng.uniform(1, 20))
    elif plan.purge == "user_request":  # backdated to the day the usager deleted it
        state, at = "en_construction", between(rng, depose + timedelta(hours=1), now - 15 * DAY)
    elif plan.purge == "user_removed":
        state, at = "en_construction", between(rng, depose, now)
    else:  # hidden by the administration once processed, purged two weeks later
        processed = depose + (timedelta(seconds=50) if plan.demarche != CRETEIL else rng.uniform(2, 20) * DAY)
        state = "accepte" if plan.demarche != CRETEIL else rng.choice(("accepte", "refuse", "sans_suite"))
        at = not_after(rng, processed + rng.uniform(15, 30) * DAY, processed + 14 * DAY, now)
    return DeletedDossier(0, number, plan.demarche, state, plan.purge, at)


def _fresh_replies(world: World, rng: random.Random) -> None:
    """:data:`FRESH_PDF_REPLIES` usagers still owing their convention send it in the last half hour: its
    virus scan is still running at the clock start (DS scans within minutes; older files are all done)."""
    now = world.clock.start
    waiting = [d for d in world.dossiers.values() if d.demarche_number == OCCITANIE and d.state == "accepte"
               and CONVENTION_MISSING in d.anomalies and not d.archived and d.connection_usager != "deleted"
               and d.hidden_by_user_at is d.hidden_by_administration_at is None]
    for d in rng.sample(waiting, min(FRESH_PDF_REPLIES, len(waiting))):
        at = now - timedelta(minutes=rng.uniform(1, 29))
        write_usager_message(world, d, "signed_pdf", at, rng, "pending")
        d.messages.sort(key=lambda m: m.created_at)
        d.updated_at = max(d.updated_at, at)
        outcome = CONVENTION_ON_TIME if on_time(at, d.depose_at) else CONVENTION_LATE
        d.anomalies = tuple(outcome if a == CONVENTION_MISSING else a for a in d.anomalies) + (PDF_SCAN_PENDING,)


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


def seed_world(seed: int = 2026, dossiers: int = 300, token: str | None = None,
               start: datetime | None = None, renewal: bool = False,
               shares: tuple[float, float, float] | None = None) -> World:
    """A deterministic world: the three démarches, ``dossiers`` dossiers (brouillons and hidden ones
    included) plus about 3 % purged ones in ``world.deleted``, and one read-write token for all three.
    ``renewal``: add the two successive Occitanie campaigns of ``renewal.py`` (the rest is unchanged).
    ``shares``: the weights of Occitanie, Poitiers and Créteil when a dossier's démarche is drawn
    (default 2:1:1); the fates that only Créteil has (expiry, usager deletions) stay Créteil's."""
    if dossiers < 0:
        raise ValueError(f"dossiers must be >= 0, not {dossiers}")
    if shares is not None and (len(shares) != 3 or any(w < 0 for w in shares) or not sum(shares)):
        raise ValueError(f"shares must be three weights >= 0, not all 0: {shares}")
    collecting = gc.isenabled()
    gc.disable()  # millions of acyclic objects: the cyclic collector would only re-scan them
    try:
        world = _seed(seed, dossiers, token, (start or DEFAULT_START).astimezone(UTC),
                      dict(zip(_SHARE, shares)) if shares else _SHARE)
        if renewal:
            renewal_campaigns.plant(world)
        return world
    finally:
        if collecting:
            gc.enable()


def _seed(seed: int, dossiers: int, token: str | None, start: datetime, share: dict[int, float]) -> World:
    rng = random.Random(seed)
    world = World(clock=Clock(start), seed=seed)
    derived = _token(rng)  # drawn even when ``token`` is given, so the data does not depend on it
    world.tokens[token or derived] = Token(demarches=frozenset(DEMARCHES))
    forms_by_dem = {}
    for number, spec in SPECS.items():
        forms_by_dem[number] = form_for(spec.kind)
        world.demarches[number] = build_demarche(world, spec, forms_by_dem[number], start)
    bases = {"Commentaire": 51_204_000, "Traitement": 33_870_000, "DeletedDossier": 3_120_000}
    world.next_ids.update(bases)
    communes = {n: _Communes(rng, s.departements) for n, s in SPECS.items()}
    shared: dict = {}
    number, previous = FIRST_DOSSIER_NUMBER - 1, None
    for plan in _plans(rng, dossiers, start, share):
        # DS numbers every dossier of the platform: about 0.17 a second between two of ours.
        elapsed = 0.0 if previous is None else (plan.created_at - previous).total_seconds()
        number, previous = number + 1 + int(elapsed * rng.uniform(0.08, 0.26)), plan.created_at
        if plan.purge:
            world.deleted.append(_purged(world, plan, number, rng))
        else:
            _build(world, plan, number, rng, communes, forms_by_dem, shared)
    world.next_ids["Dossier"] = number
    _fresh_replies(world, rng)
    crossings.plant(world)  # an RNG of its own: the rest of the world does not change
    crossings.mark(world)
    _renumber(world, bases)
    return world


_MOTIVATIONS = {"refuse": "Pièces justificatives non conformes.", "sans_suite": "Dossier déposé en double."}


def make_dossier(world: World, demarche_number: int, rng: random.Random, when: datetime,
                 state: str = "en_construction", *, spec: Spec | None = None,
                 commune: ref.Commune | None = None) -> Dossier:
    """A new, anomaly-free dossier with a fresh number whose latest event (dépôt, decision...) is ``when``;
    added to ``world.dossiers``. ``state`` may be any DS state, ``brouillon`` included. ``spec``: the
    démarche's when it is not one of the three built-in ones (``connector.simulator.worlds``);
    ``commune``: the collectivité that files it (default: one drawn from the démarche's départements)."""
    spec = spec or SPECS.get(demarche_number)
    if demarche_number not in world.demarches or spec is None:
        raise ValueError(f"unknown démarche {demarche_number}")
    if state not in ("brouillon", "en_construction", "en_instruction", *TERMINATED):
        raise ValueError(f"unknown dossier state {state!r}")
    dem, when = world.demarches[demarche_number], when.astimezone(UTC)
    form = form_of(dem)
    commune = commune or rng.choice([c for d in spec.departements for c in ref.communes(d)
                                     if all(ident.uai_is_valid(s.uai) for s in c.schools)])
    auto = dem.declarative == "accepte" and state == "accepte"
    if state == "brouillon":
        depose, fill_end = None, when
    else:
        steps = {"en_construction": 0, "en_instruction": 1}.get(state, 0 if auto else 2)
        depose = when - (timedelta(minutes=1) if auto else DAY * steps)
        fill_end = depose - timedelta(seconds=30)
    created = fill_end - timedelta(minutes=rng.uniform(5, 30))
    life = _new_dossier(world, dem, form, rng, world.new_id("Dossier"), commune, created, fill_end, False, False, {},
                        spec)
    if depose is not None:
        life.transition(depose, "depose")
    if auto:
        life.transition(when, "accepte_automatiquement")
    elif state != "brouillon" and state != "en_construction":
        agent = life.humans[0]
        life.transition(when if state == "en_instruction" else when - DAY, "passe_en_instruction", agent)
        if state in TERMINATED:
            event = {"accepte": "accepte", "refuse": "refuse", "sans_suite": "classe_sans_suite"}[state]
            life.transition(when, event, agent, _MOTIVATIONS.get(state))
    life.events.append(when)
    return _finish(life)


def make_usager_message(world: World, dossier: Dossier, kind: str, when: datetime, *,
                        virus_scan: str = "safe") -> Message:
    """Append a message from the usager: ``signed_pdf``, ``non_pdf`` (.docx/.odt), ``image`` (jpeg/png scan)
    or ``text``. Does not touch ``updated_at`` (the app's control layer does)."""
    rng = random.Random(f"{world.seed}-usager-{dossier.number}-{len(dossier.messages)}-{kind}")
    return write_usager_message(world, dossier, kind, when.astimezone(UTC), rng, virus_scan)
