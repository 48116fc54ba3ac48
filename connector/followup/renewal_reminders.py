"""The renewal reminders: before the cut-off, a message on the previous-year dossier of each commune that
has not filed the new campaign's form (the only channel DS gives to reach it), exactly once.

``plan_pair`` refreshes ``renouvellements`` with DS's clock and, when ``[demarches.renewal] reminders``
is on and the cut-off is ``reminder_days`` away or less, decides one ``renewal_reminder`` per commune
to remind (:func:`connector.followup.renewal.decide`), deduplicated by ``renewal_reminder:<new
campaign>:<previous dossier>`` — once per commune and campaign, whatever happens after. A dossier DS
will not take a message on (archived, in the trash, deleted by its usager, usager account deleted) is
not planned: it is reported (``actions plan``: "rien envoyé : dossier archivé …"), never retried; one
DS refuses anyway ends ``failed`` (``actions list``), not retried either.

``run`` goes through the actions journal like the deadline follow-up (``connector.followup.actions``):
the intents are recorded ``planned``; ``sending``/``unknown`` ones are read back from DS first; each
dossier is re-read from DS before its message is claimed (``sending``, on disk before the request
leaves) and sent once. The crash tests' hook points (``planned``, ``sending``, ``answered``) are the
same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlite_utils

from connector import templates
from connector.config import Config
from connector.followup import conventions, deadlines, journal
from connector.followup.actions import Decision, RunReport, Runner, record_intents
from connector.followup.renewal import days_to_cutoff, fr_date, reminder_due
from connector.followup.renewal_refresh import Pair, pairs, refresh
from connector.logs import get_logger
from connector.store import followup as store

log = get_logger(__name__)

KIND = "renewal_reminder"
OPERATION = "envoyer_message"


@dataclass
class RenewalPlan:
    demarche: int
    previous: int
    today: date
    days_to_cutoff: int
    schools: dict[str, int] = field(default_factory=dict)
    communes: dict[str, int] = field(default_factory=dict)
    intents: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    problem: str | None = None


def plan_pair(db: sqlite_utils.Database, config: Config, pair: Pair, now: datetime) -> RenewalPlan:
    """Refresh the pair at DS's clock ``now`` and decide the reminders due (not recorded)."""
    today = deadlines.paris_day(now)
    with db.atomic():
        outcome = refresh(db, config, pair, today)
    plan = RenewalPlan(pair.number, pair.previous, today, days_to_cutoff(pair.calendar, today), outcome.counts())
    plan.communes = {
        "renewed": sum(c.renewed for c in outcome.communes),
        "pending": sum(1 for c in outcome.communes if not c.renewed and plan.days_to_cutoff >= 0),
        "not_renewed": sum(1 for c in outcome.communes if not c.renewed and plan.days_to_cutoff < 0),
    }
    settings = pair.config.renewal
    if settings is None or not settings.reminders:
        return plan
    email = config.ds.instructeur_email
    instructeur_id = store.instructeur_by_email(db, email) if email else None
    if instructeur_id is None:
        plan.problem = (f"[ds] instructeur_email {email!r} is not an instructeur of démarche {pair.previous}"
                        if email else "[ds] instructeur_email is not set: the connector cannot act on DS")
    if not reminder_due(pair.calendar, settings.reminder_days, today):
        return plan
    targets = [c for c in outcome.communes if c.remind]
    numbers = [c.dossier_precedent for c in targets]
    facts = store.dossier_facts(db, numbers)
    known = store.journal_keys(db, numbers)
    window = deadlines.next_window(now, settings.weekdays, settings.hours).isoformat(timespec="seconds")
    limit = fr_date(pair.calendar.cutoff)
    rule = f"renouvellement : aucune demande déposée pour {pair.number}, date limite le {limit}"
    for c in targets:
        n = c.dossier_precedent
        key = f"{KIND}:{pair.number}:{n}"
        state = known.get(n, {}).get(key)
        if state is not None:
            if state in ("failed", "cancelled"):
                plan.decisions.append(Decision(n, f"rien envoyé : relance déjà tentée ({state}), voir actions list"))
            continue
        f = facts.get(n)
        if f is None:
            plan.decisions.append(Decision(n, "rien envoyé : dossier de l'an dernier absent du miroir"))
            continue
        if (why := conventions.blocked(f)) is not None:
            plan.decisions.append(Decision(n, f"rien envoyé : {why}"))
            continue
        body = templates.render(settings.reminder_template or templates.RENEWAL_REMINDER,
                                collectivite=f.get("demandeur_name") or c.collectivite or "votre collectivité",
                                dossier=n, date_limite=limit, jours=plan.days_to_cutoff,
                                nombre_ecoles=c.pending_schools)
        plan.intents.append({
            "demarche_number": pair.previous, "dossier_number": n, "kind": KIND, "step": 0, "dedup_key": key,
            "rule": rule, "deadline": pair.calendar.cutoff.isoformat(), "operation": OPERATION,
            "payload": {"dossierId": f["id"], "instructeurId": instructeur_id, "body": body},
            "instructeur_id": instructeur_id, "instructeur_email": email, "not_before": window})
        plan.decisions.append(Decision(n, rule, KIND, key, window))
    return plan


async def run_pair(runner: Runner, pair: Pair, plans: list[RenewalPlan], act: bool) -> None:
    """Plan the pair at DS's clock; when ``act``: record the reminders and send the planned ones."""
    now = await runner.clock(pair.previous)
    runner.report.ds_now = now
    if act:
        previous = next(d for d in runner.config.demarches if d.number == pair.previous)
        await runner.reconcile(previous, None)  # type: ignore[arg-type]  # the profile is not read
    plan = plan_pair(runner.db, runner.config, pair, now)
    plans.append(plan)
    if not act or pair.config.renewal is None or not pair.config.renewal.reminders:
        return
    if plan.problem:
        log.warning("renewal.cannot_act", demarche=pair.number, problem=plan.problem)
    runner.report.planned += record_intents(runner.db, plan, "renewal.decision", previous=plan.previous)
    for a in store.actions(runner.db, states=("planned",), demarche=pair.previous):
        if a.kind == KIND:
            await _send(runner, pair, a)


async def _send(runner: Runner, pair: Pair, a: store.Action) -> None:
    db, now = runner.db, runner.now()
    if a.not_before and a.not_before > now.isoformat(timespec="seconds"):
        runner.report.waiting += 1
        return
    node = await runner.reread(pair.previous, a.dossier_number)
    if node is None:
        journal.cancel(db, a.id, "the dossier is no longer on DS")
        runner.report.cancelled += 1
        return
    facts = store.dossier_facts(db, [a.dossier_number]).get(a.dossier_number, {})
    why = conventions.blocked(facts)
    if why is None:
        with db.atomic():
            outcome = refresh(db, runner.config, pair, deadlines.paris_day(runner.now()))
        if not any(c.remind and c.dossier_precedent == a.dossier_number for c in outcome.communes):
            why = "la commune a déposé sa demande (ou ses écoles sont reprises) : plus de relance"
    if why is not None:
        journal.cancel(db, a.id, f"rien envoyé : {why}")
        runner.report.cancelled += 1
        log.info("renewal.cancelled", dossier=a.dossier_number, action=a.id, rule=why)
        return
    if not a.instructeur_id:
        journal.failed(db, a.id, "[ds] instructeur_email is not an instructeur of the démarche")
        runner.report.failed += 1
        return
    if not store.instructeur_in_groupe(db, a.instructeur_id, facts.get("groupe_instructeur_number")):
        journal.failed(db, a.id, f"the instructeur {a.instructeur_email} is not in the groupe instructeur "
                       f"{facts.get('groupe_instructeur_number')} of dossier {a.dossier_number}: nothing sent")
        runner.report.failed += 1
        return
    if await runner.send(a):
        await runner.reread(pair.previous, a.dossier_number)


async def run(config: Config, runner: Runner, *, act: bool, demarches: list[int] | None = None) -> list[RenewalPlan]:
    """Every configured pair (``demarches``: only pairs naming one of them): the table refreshed with DS's
    clock, and, when ``act``, the reminders recorded and sent."""
    plans: list[RenewalPlan] = []
    for pair in pairs(config):
        if demarches and not {pair.number, pair.previous} & set(demarches):
            continue
        await run_pair(runner, pair, plans, act)
    return plans


def reminders_on(config: Config) -> bool:
    return any(p.config.renewal is not None and p.config.renewal.reminders for p in pairs(config))


__all__ = ["KIND", "RenewalPlan", "RunReport", "plan_pair", "reminders_on", "run"]
