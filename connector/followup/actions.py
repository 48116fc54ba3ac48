"""Planning and running the actions of the convention follow-up (issue 9 §2-3), one démarche at a time.

``plan`` decides from the mirror and DS's clock what is due (reminders, the closure of an overdue
dossier), each decision logged with its dossier and rule (``followup.decision``). ``run`` records the
intents in the journal (``planned``, deduplicated by key), reads back every ``sending``/``unknown``
action first (``reconcile``), then, dossier by dossier and step by step: re-reads the dossier from DS
(a PDF may have come since the last sync: then nothing is sent, the closure is cancelled), checks the
instructeur belongs to the dossier's groupe, claims the action (``sending``, committed with
synchronous=FULL), sends it once, and records DS's answer.

The closure of an overdue dossier is four journal rows run in order, each only once the one before is
``sent``: (1) the message to the usager, (2) the profile's annotations (statut), (3) passer or
repasser en instruction when the dossier is ``en_construction`` or ``accepte`` (DS classes sans suite
only from ``en_instruction``), (4) ``dossierClasserSansSuite`` with its motivation.

Nothing is written to DS unless ``[demarches.deadline] reminders`` / ``classer_sans_suite`` is on;
actions wait for the sending window (``weekdays``, ``hours``) and the closure for ``grace_days``.

After a sync (``after_sync``), a démarche where nothing can have changed since its last completed
planning is skipped (``followup.demarche_skipped``): the rule is in ``connector.followup.skip``.
``actions run`` and ``actions plan`` plan every selected démarche.

TEST HOOK (documented, for the crash tests only): ``DS_CONNECTOR_TEST_CRASH=<point>[:<n>]`` makes the
process SIGKILL itself the n-th time (default 1) it reaches ``<point>``: ``planned`` (intents
committed), ``sending`` (claim committed, request not sent), ``answered`` (DS answered, result not
committed), ``step_sent`` (a closure step recorded sent, the next not started).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from connector import templates
from connector.config import Config, DeadlineConfig, DemarcheConfig, superseded_by
from connector.ds.client import DsClient
from connector.errors import ApiError, AuthError, ConnectorError, MutationNotSent, MutationOutcomeUnknown
from connector.followup import conventions, deadlines, journal, reconcile, skip
from connector.followup.conventions import Status
from connector.followup.profile import FollowupProfile, resolve
from connector.logs import get_logger
from connector.store import followup as store
from connector.store.door import Hook, enter

log = get_logger(__name__)

READ_ONLY = "Le jeton utilisé est configuré seulement en lecture"
NO_RIGHTS = "L’instructeur n’a pas les droits d’accès à ce dossier"
STATUT_CLOSED = ("Classée sans suite", "Hors délai")
OPERATIONS = {
    "reminder": "envoyer_message", "closure_message": "envoyer_message",
    "closure_annotations": "modifier_annotations", "passer_en_instruction": "passer_en_instruction",
    "repasser_en_instruction": "repasser_en_instruction", "classer_sans_suite": "classer_sans_suite",
}
PAYLOAD_KEYS = {  # GraphQL payload field of each operation
    "envoyer_message": "dossierEnvoyerMessage", "modifier_annotations": "dossierModifierAnnotations",
    "passer_en_instruction": "dossierPasserEnInstruction", "repasser_en_instruction": "dossierRepasserEnInstruction",
    "classer_sans_suite": "dossierClasserSansSuite",
}
CLOSURE_KINDS = ("closure_message", "closure_annotations", "passer_en_instruction", "repasser_en_instruction",
                 "classer_sans_suite")
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """The crash tests' hook (see the module docstring); does nothing unless the variable is set."""
    wanted = os.environ.get("DS_CONNECTOR_TEST_CRASH")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Decision:
    dossier: int
    rule: str
    kind: str | None = None  # None: nothing to do, with the reason
    dedup_key: str | None = None
    not_before: str | None = None


@dataclass
class DemarchePlan:
    demarche: int
    profile: FollowupProfile | None
    statuses: dict[str, int] = field(default_factory=dict)
    intents: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    problem: str | None = None
    # the first instant at which time alone changes a status or a decision (``conventions.next_change``)
    until: datetime | None = skip.NEVER


@dataclass
class RunReport:
    plans: list[DemarchePlan] = field(default_factory=list)
    planned: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    cancelled: int = 0
    reconciled: int = 0
    waiting: int = 0
    ds_now: datetime | None = None
    stopped: str | None = None
    renewals: list[Any] = field(default_factory=list)  # renewal_reminders.RenewalPlan, per campaign pair
    skipped: list[int] = field(default_factory=list)  # démarches not planned: nothing could have changed

    def summary(self) -> str:
        return (f"actions: {self.planned} planned, {self.sent} sent, {self.failed} failed, {self.unknown} unknown, "
                f"{self.cancelled} cancelled, {self.reconciled} read back, {self.waiting} waiting"
                + (f", {len(self.skipped)} démarche(s) unchanged (not planned)" if self.skipped else "")
                + (f"; stopped: {self.stopped}" if self.stopped else ""))


def deadline_demarches(db: sqlite_utils.Database, config: Config) -> list[tuple[DemarcheConfig, FollowupProfile]]:
    """The configured démarches whose form profile has the convention deadline. A démarche a newer
    campaign names as its previous one keeps its statuses but no longer acts (reminders and closure off):
    the only writes to it are the renewal reminders (``followup.renewal_actions``)."""
    out = []
    for d in config.demarches:
        profile = resolve(db, d.number, d)
        if profile is not None and profile.convention_deadline:
            if superseded_by(config, d.number) is not None:
                d = replace(d, deadline=replace(d.deadline, reminders=False, classer_sans_suite=False))
            out.append((d, profile))
    return out


# --- planning ---------------------------------------------------------------------------------


def _values(schools: Any, facts: dict[str, Any], st: Status, now: datetime) -> dict[str, Any]:
    """The template values of one dossier (``schools``: its "nombre d'écoles" champ's value)."""
    n = facts["number"]
    days = (st.deadline - deadlines.paris_day(now)).days if st.deadline else ""
    return {"collectivite": facts.get("demandeur_name") or "votre collectivité", "dossier": n,
            "date_limite": deadlines.fr_date(st.deadline) if st.deadline else "",
            "nombre_ecoles": schools if schools not in (None, "") else "?", "jours": days}


def plan_demarche(db: sqlite_utils.Database, dcfg: DemarcheConfig, profile: FollowupProfile, now: datetime,
                  instructeur_email: str | None) -> DemarchePlan:
    """What is due now on this démarche, from the mirror (the statuses are refreshed and saved first)."""
    settings = dcfg.deadline
    plan = DemarchePlan(dcfg.number, profile)
    due = []  # (facts, status, reminder step or None) of the dossiers with something due now
    with db.atomic():  # only the due dossiers' facts are kept, not the démarche's
        for facts, st in conventions.refreshed(db, settings, dcfg.number, profile, now):
            plan.statuses[st.status] = plan.statuses.get(st.status, 0) + 1
            change = conventions.next_change(st, settings, now)
            if change is not None and plan.until is not None and change < plan.until:
                plan.until = change
            reminder = conventions.due_reminder(st, settings, now) if settings.reminders else None
            closing = settings.classer_sans_suite and conventions.closure_due(st, settings, now)
            if reminder is not None or closing:
                due.append((facts, st, reminder))
    if not (settings.reminders or settings.classer_sans_suite):
        return plan
    instructeur_id = store.instructeur_by_email(db, instructeur_email) if instructeur_email else None
    if instructeur_id is None:
        plan.problem = (f"[ds] instructeur_email {instructeur_email!r} is not an instructeur of démarche {dcfg.number}"
                        if instructeur_email else "[ds] instructeur_email is not set: the connector cannot act on DS")
    if not due:
        return plan
    numbers = [facts["number"] for facts, _, _ in due]
    keys = store.journal_keys(db, numbers)
    schools_of = store.champ_values(db, numbers, profile.champ("nombre_ecoles"))
    window = deadlines.next_window(now, settings.weekdays, settings.hours).isoformat(timespec="seconds")
    annotation = _closure_annotation(db, dcfg.number, profile)
    for facts, st, reminder in due:
        n = facts["number"]
        known = keys.get(n, {})
        if (why := conventions.blocked(facts)) is not None:
            plan.decisions.append(Decision(n, f"rien envoyé : {why}"))
            continue
        base = {"demarche_number": dcfg.number, "dossier_number": n, "deadline": st.deadline.isoformat(),
                "instructeur_id": instructeur_id, "instructeur_email": instructeur_email}
        values = _values(schools_of.get(n), facts, st, now)
        ids = {"dossierId": facts["id"], "instructeurId": instructeur_id}
        if reminder is not None:
            key = f"reminder:{n}:{st.deadline}:{reminder}"
            body = templates.render(settings.reminder_template or templates.REMINDER, **values)
            rule = f"relance J-{reminder} : convention attendue au plus tard le {values['date_limite']}"
            if key not in known:
                plan.intents.append({**base, "kind": "reminder", "step": 0, "dedup_key": key, "rule": rule,
                                     "operation": OPERATIONS["reminder"], "payload": {**ids, "body": body},
                                     "not_before": window})
                plan.decisions.append(Decision(n, rule, "reminder", key, window))
            continue
        rule = f"délai dépassé : rien reçu au {values['date_limite']} (+{settings.grace_days} j de grâce)"
        steps: list[tuple[str, dict[str, Any]]] = [
            ("closure_message", {**ids, "body": templates.render(settings.closure_template or templates.CLOSURE,
                                                                 **values)})]
        if annotation is not None:
            steps.append(("closure_annotations", {**ids, "annotations": [annotation]}))
        if facts["state"] == "en_construction":
            steps.append(("passer_en_instruction", {**ids, "disableNotification": True}))
        elif facts["state"] == "accepte":
            steps.append(("repasser_en_instruction", {**ids, "disableNotification": True}))
        steps.append(("classer_sans_suite", {**ids, "motivation": templates.render(
            settings.motivation_template or templates.MOTIVATION, **values)}))
        for step, (kind, payload) in enumerate(steps, start=1):
            key = f"{kind}:{n}:{st.deadline}"
            if key in known:
                continue
            plan.intents.append({**base, "kind": kind, "step": step, "dedup_key": key, "rule": rule,
                                 "operation": OPERATIONS[kind], "payload": payload, "not_before": window})
            plan.decisions.append(Decision(n, rule, kind, key, window))
    return plan


def _closure_annotation(db: sqlite_utils.Database, demarche: int, profile: FollowupProfile) -> dict[str, Any] | None:
    """The statut annotation's value for a closure (a drop-down option of the form), if the profile has one."""
    statut = profile.champ("statut")
    if not statut:
        return None
    options = store.descriptor_options(db, demarche, statut)
    kind = store.descriptor_type(db, demarche, statut) or ""
    if options is not None:
        value = next((o for o in STATUT_CLOSED if o in options), None)
        if value is None:
            return None
        return {"id": statut, "value": {"dropDownList": value}}
    if kind.startswith("Text"):
        return {"id": statut, "value": {"text": STATUT_CLOSED[0]}}
    return None


def record_intents(db: sqlite_utils.Database, plan: Any, event: str = "followup.decision", **context: Any) -> int:
    """Write the plan's intents as ``planned`` rows (one transaction; keys already there are skipped)
    and log each decision as ``event`` (with ``context``). ``plan``: a :class:`DemarchePlan` or the
    renewal's plan (``intents``, ``decisions``, ``demarche``)."""
    inserted = 0
    with db.atomic():
        for intent in plan.intents:
            if store.insert_action(db, intent) is not None:
                inserted += 1
    for d in plan.decisions:
        log.info(event, demarche=plan.demarche, **context, dossier=d.dossier, rule=d.rule, action=d.kind,
                 dedup_key=d.dedup_key, not_before=d.not_before)
    crash_point("planned")
    return inserted


# --- running ----------------------------------------------------------------------------------


async def ds_clock(client: DsClient, demarche: int) -> datetime:
    """DS's clock: the ``Date`` header of the latest answer ``client`` got; when it got none yet, of
    one cheap read of ``demarche`` (``demarche_probe``)."""
    if client.stats.server_date is None:
        await client.query("demarche_probe", {"demarcheNumber": demarche})
    return client.stats.server_date or datetime.now(timezone.utc)


class Runner:
    """``hook``: what a sync runs on changed dossiers (``SyncHooks.dossiers_changed``: the forms'
    evaluation, the deadlines), run on every re-read through the door, so a dossier re-read before
    or after an action has its ``dossier_forms``, ``ecoles`` and ``anomalies`` current at once."""

    def __init__(self, db: sqlite_utils.Database, client: DsClient, config: Config, report: RunReport,
                 settle: timedelta, hook: Hook | None = None):
        self.db, self.client, self.config, self.report, self.settle = db, client, config, report, settle
        self.hook = hook
        self.quarantined: set[int] = set()  # dossiers the door quarantined in this run: not acted on
        self.unknown_types: set[str] = set()

    def now(self) -> datetime:
        return self.client.stats.server_date or datetime.now(timezone.utc)

    async def clock(self, demarche: int) -> datetime:
        """DS's clock: the Date header of the run's latest answer (after a sync, no request at all);
        a run that has not asked DS anything yet (``actions plan|run`` alone) reads it from one cheap
        request."""
        return await ds_clock(self.client, demarche)

    async def reread(self, demarche: int, number: int) -> dict[str, Any] | None:
        """Re-read one dossier from DS into the mirror, through the door (validated, saved, the hooks
        run, or quarantined: then it is in ``self.quarantined`` and not acted on); None when DS no
        longer has it."""
        result = await self.client.query("dossier", {"dossierNumber": number})
        node = (result.data or {}).get("dossier")
        if node is None:
            if "not_found" in result.error_codes():
                return None
            raise ApiError(f"DS could not serve dossier {number}: {result.errors}")
        node = {k: v for k, v in node.items() if k != "demarche"} if isinstance(node, dict) else node
        entry = enter(self.db, demarche, [node], hook=self.hook, unknown_types=self.unknown_types)
        for path in entry.counts.removed_files:  # attachments that left the dossier (after the commit)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # the next sync's sweep takes it
                log.warning("followup.file_unlink_failed", path=str(path), error=str(exc))
        for quarantined, error in entry.quarantined:
            self.quarantined.add(number)
            log.error("followup.dossier_quarantined", demarche=demarche, dossier=quarantined, error=error)
        if not entry.quarantined:
            self.quarantined.discard(number)
        return node

    def current(self, dcfg: DemarcheConfig, profile: FollowupProfile, now: datetime, *, act: bool) -> skip.Current:
        """What ``skip.why_plan`` compares with the démarche's last planning, as it is now."""
        return skip.Current(store.mirror_generation(self.db, dcfg.number), now,
                            skip.digest(dcfg, profile, self.config.ds.instructeur_email, act), skip.code_version(),
                            store.open_actions(self.db, dcfg.number))

    async def unchanged(self, dcfg: DemarcheConfig, profile: FollowupProfile, *, act: bool) -> bool:
        """True (logged ``followup.demarche_skipped``, counted in ``report.skipped``) when nothing can
        have changed on this démarche since its last completed planning (``connector.followup.skip``)."""
        now = await self.clock(dcfg.number)
        self.report.ds_now = now
        mark = skip.Mark.from_row(store.followup_plan(self.db, dcfg.number))
        why = skip.why_plan(mark, self.current(dcfg, profile, now, act=act))
        if why is not None:
            log.debug("followup.demarche_planned", demarche=dcfg.number, why=why)
            return False
        assert mark is not None
        self.report.skipped.append(dcfg.number)
        log.info("followup.demarche_skipped", demarche=dcfg.number, until=skip.until_text(mark.until))
        return True

    def begin_planning(self, dcfg: DemarcheConfig, profile: FollowupProfile, now: datetime, *,
                       act: bool) -> skip.Current:
        """A planning of the démarche starts: its last mark is forgotten (a planning that does not
        complete leaves none: the next one plans), and what holds now is kept for :meth:`completed`
        (the generation read BEFORE the planning's own re-reads and journal writes, so that the run
        after one that changed anything plans again)."""
        store.forget_followup_plan(self.db, dcfg.number)
        return self.current(dcfg, profile, now, act=act)

    def completed(self, dcfg: DemarcheConfig, before: skip.Current, plan: DemarchePlan) -> None:
        """Record the completed planning (``followup_plans``) that ``unchanged`` compares with."""
        mark = skip.Mark(before.generation, before.clock, plan.until, before.digest, before.version)
        store.save_followup_plan(self.db, dcfg.number, **mark.row())

    async def run_demarche(self, dcfg: DemarcheConfig, profile: FollowupProfile) -> None:
        now = await self.clock(dcfg.number)
        self.report.ds_now = now
        before = self.begin_planning(dcfg, profile, now, act=True)
        with self.db.atomic():
            self.report.cancelled += store.cancel_orphans(self.db)
        await self.reconcile(dcfg, profile)
        plan = plan_demarche(self.db, dcfg, profile, now, self.config.ds.instructeur_email)
        self.report.plans.append(plan)
        if plan.problem:
            log.warning("followup.cannot_act", demarche=dcfg.number, problem=plan.problem)
        self.report.planned += record_intents(self.db, plan)
        pending = [a for a in store.actions(self.db, states=("planned",), demarche=dcfg.number)
                   if a.kind in OPERATIONS]  # the renewal reminders run in followup.renewal_reminders
        by_dossier: dict[int, list[store.Action]] = {}
        for a in pending:
            by_dossier.setdefault(a.dossier_number, []).append(a)
        for number, todo in by_dossier.items():
            await self.run_dossier(dcfg, profile, number, sorted(todo, key=lambda a: (a.step, a.id)))
        self.completed(dcfg, before, plan)

    async def reconcile(self, dcfg: DemarcheConfig, profile: FollowupProfile) -> None:
        """Read back every sending/unknown action of this démarche old enough to have settled."""
        limit = (datetime.now(timezone.utc) - self.settle).isoformat(timespec="seconds")
        todo = [a for a in store.actions(self.db, states=("sending", "unknown"), demarche=dcfg.number)
                if (a.sending_at or "") <= limit]
        done_dossiers: dict[int, dict[str, Any] | None] = {}
        for a in todo:
            if a.dossier_number not in done_dossiers:
                done_dossiers[a.dossier_number] = await self.reread(dcfg.number, a.dossier_number)
            node = done_dossiers[a.dossier_number]
            if node is None:
                journal.failed(self.db, a.id, "the dossier is no longer on DS: outcome unknowable")
                self.report.failed += 1
                continue
            happened, evidence = reconcile.happened(self.db, a, node.get("state"))
            self.report.reconciled += 1
            if happened:
                journal.sent(self.db, a.id, {"read_back": evidence}, remote_id=evidence if a.kind in (
                    "reminder", "closure_message", "renewal_reminder") else None, note=f"read back from DS after {a.state}")
                log.info("followup.reconciled", demarche=a.demarche_number, dossier=a.dossier_number, action=a.id,
                         kind=a.kind, outcome="sent", evidence=evidence)
            else:
                journal.replan(self.db, a.id, f"read back from DS after {a.state}: not done, to send again")
                log.info("followup.reconciled", demarche=a.demarche_number, dossier=a.dossier_number, action=a.id,
                         kind=a.kind, outcome="not done")

    async def run_dossier(self, dcfg: DemarcheConfig, profile: FollowupProfile, number: int,
                          todo: list[store.Action]) -> None:
        now = self.now()
        if all(a.not_before and a.not_before > now.isoformat(timespec="seconds") for a in todo):
            self.report.waiting += len(todo)
            return
        node = await self.reread(dcfg.number, number)
        if number in self.quarantined:  # the mirror could not take what DS says now: do not act on it
            self.report.waiting += len(todo)
            return
        if node is None:
            for a in todo:
                journal.cancel(self.db, a.id, "the dossier is no longer on DS")
                self.report.cancelled += 1
            return
        now = self.now()
        (facts, st), = conventions.refresh(self.db, dcfg.deadline, dcfg.number, profile, now, [number])
        earlier_open = any(a.state not in ("sent", "cancelled") for a in store.actions(self.db, dossier=number)
                           if a.kind in CLOSURE_KINDS and a.id not in {t.id for t in todo})
        sent_any = False
        for a in todo:
            still = self._still_wanted(a, st, facts)
            if still is not None:
                journal.cancel(self.db, a.id, still)
                self.report.cancelled += 1
                log.info("followup.cancelled", demarche=a.demarche_number, dossier=number, action=a.id, kind=a.kind,
                         rule=still)
                continue
            if a.not_before and a.not_before > now.isoformat(timespec="seconds"):
                self.report.waiting += 1
                break
            if a.kind in CLOSURE_KINDS and earlier_open:
                self.report.waiting += 1
                break
            if not a.instructeur_id:
                journal.failed(self.db, a.id, "[ds] instructeur_email is not an instructeur of the démarche "
                               "(not found in its groupes instructeurs)")
                self.report.failed += 1
                break
            if not store.instructeur_in_groupe(self.db, a.instructeur_id, facts.get("groupe_instructeur_number")):
                journal.failed(self.db, a.id, f"the instructeur {a.instructeur_email} is not in the groupe instructeur "
                               f"{facts.get('groupe_instructeur_number')} of dossier {number}: nothing sent")
                self.report.failed += 1
                log.warning("followup.not_in_groupe", demarche=a.demarche_number, dossier=number, action=a.id,
                            instructeur=a.instructeur_email)
                break
            ok = await self.send(a)
            if not ok:
                break
            sent_any = True
            if a.kind in CLOSURE_KINDS:
                crash_point("step_sent")
        if sent_any:  # the mirror and the status show what was just done
            if await self.reread(dcfg.number, number) is not None:
                conventions.refresh(self.db, dcfg.deadline, dcfg.number, profile, self.now(), [number])

    def _still_wanted(self, a: store.Action, st: Status, facts: dict[str, Any]) -> str | None:
        """Why a planned action must not be sent any more (DS was just re-read), or None."""
        if a.kind == "reminder" and st.status != "awaiting":
            return f"le dossier n'attend plus de relance (statut {st.status} : {st.rule})"
        if a.kind in CLOSURE_KINDS and st.status != "overdue":
            return f"pas de classement : statut {st.status} ({st.rule})"
        if a.deadline and st.deadline and a.deadline != st.deadline.isoformat():
            return f"la date limite a changé ({a.deadline} → {st.deadline})"
        if (why := conventions.blocked(facts)) is not None and a.kind in ("reminder", "closure_message"):
            return f"rien envoyé : {why}"
        state = facts["state"]
        if a.kind == "passer_en_instruction" and state != "en_construction":
            return f"le dossier est déjà {state} sur DS"
        if a.kind == "repasser_en_instruction" and state not in ("accepte", "refuse", "sans_suite"):
            return f"le dossier est déjà {state} sur DS"
        if a.kind == "classer_sans_suite" and state == "sans_suite":
            return "le dossier est déjà classé sans suite sur DS"
        return None

    async def send(self, a: store.Action) -> bool:
        """Claim, send once, record. True when the action is sent."""
        if not journal.claim(self.db, a.id, self.now().isoformat(timespec="seconds")):
            return False
        crash_point("sending")
        log.info("followup.sending", demarche=a.demarche_number, dossier=a.dossier_number, action=a.id, kind=a.kind,
                 rule=a.rule)
        try:
            result = await self.client.mutate(a.operation, {"input": a.payload})
        except MutationOutcomeUnknown as exc:
            journal.unknown(self.db, a.id, str(exc))
            self.report.unknown += 1
            log.warning("followup.outcome_unknown", dossier=a.dossier_number, action=a.id, kind=a.kind, error=str(exc))
            return False
        except MutationNotSent as exc:
            journal.replan(self.db, a.id, str(exc))
            log.warning("followup.not_sent", dossier=a.dossier_number, action=a.id, kind=a.kind, error=str(exc))
            if exc.delay:
                raise
            return False
        except AuthError as exc:
            journal.replan(self.db, a.id, f"not sent: {exc}")
            raise
        except ApiError as exc:
            journal.failed(self.db, a.id, str(exc))
            self.report.failed += 1
            return False
        crash_point("answered")
        outcome, reason, remote = classify(a, result.data, result.errors)
        if outcome == "sent":
            journal.sent(self.db, a.id, (result.data or {}).get(PAYLOAD_KEYS[a.operation]), remote_id=remote, note=reason)
            self.report.sent += 1
            log.info("followup.sent", demarche=a.demarche_number, dossier=a.dossier_number, action=a.id, kind=a.kind,
                     remote_id=remote)
            return True
        journal.failed(self.db, a.id, reason or "DS refused", (result.data or {}).get(PAYLOAD_KEYS[a.operation])
                       or result.errors)
        self.report.failed += 1
        log.warning("followup.failed", demarche=a.demarche_number, dossier=a.dossier_number, action=a.id,
                    kind=a.kind, reason=reason)
        return False


def classify(a: store.Action, data: dict[str, Any] | None, errors: list[dict[str, Any]]) -> tuple[str, str | None,
                                                                                                   str | None]:
    """DS's answer → (sent | failed, reason, remote id). Two layers (docs/ds-api.md §13 rule 22): top-level
    errors (not_found, unauthorized) and the payload's French ``errors``."""
    payload = (data or {}).get(PAYLOAD_KEYS[a.operation])
    if payload is None:
        messages = "; ".join(e.get("message", "?") for e in errors) or "no answer"
        return "failed", f"DS refused: {messages}", None
    texts = [e.get("message", "") for e in payload.get("errors") or []]
    if not texts:
        remote = (payload.get("message") or {}).get("id") or (payload.get("dossier") or {}).get("id")
        return "sent", None, remote
    text = "; ".join(texts)
    if READ_ONLY in text:
        return "failed", f"DS refused: {text} (the API token is read-only: give it write access)", None
    if NO_RIGHTS in text:
        return "failed", f"DS refused: {text} (the instructeur is not in the dossier's groupe instructeur)", None
    if a.kind == "classer_sans_suite" and "déjà classé sans suite" in text:
        return "sent", f"already done: {text}", None
    if a.kind in ("passer_en_instruction", "repasser_en_instruction") and "déjà en instruction" in text:
        return "sent", f"already done: {text}", None
    if a.kind == "classer_sans_suite" and "déjà en instruction" in text:
        return "failed", (f"DS refused: « {text} » — DS's misleading answer when a mandatory private annotation is "
                          "blank or invalid (or the SIRET is degraded): fill them, then retry"), None
    if a.kind == "closure_annotations" and payload.get("annotations"):
        return "failed", f"DS saved some annotations but refused others: {text}", None
    return "failed", f"DS refused: {text}", None


async def run(config: Config, client: DsClient, db: sqlite_utils.Database, *, demarches: list[int] | None = None,
              settle: timedelta = timedelta(seconds=60), hook: Hook | None = None,
              after_sync: bool = False) -> RunReport:
    """``actions run`` (and the daemon after each sync): every deadline démarche, in config order.
    ``hook``: the sync's ``dossiers_changed`` (see ``Runner``). ``after_sync``: a démarche where
    nothing can have changed since its last completed planning is skipped (``connector.followup.skip``);
    ``actions run`` plans them all."""
    report = RunReport()
    runner = Runner(db, client, config, report, settle, hook)
    for dcfg, profile in deadline_demarches(db, config):
        if demarches and dcfg.number not in demarches:
            continue
        if after_sync and await runner.unchanged(dcfg, profile, act=True):
            continue
        try:
            await runner.run_demarche(dcfg, profile)
        except MutationNotSent as exc:
            report.stopped = str(exc)
            break
    return report


async def plan_only(config: Config, client: DsClient, db: sqlite_utils.Database, *,
                    demarches: list[int] | None = None,
                    targets: list[tuple[DemarcheConfig, FollowupProfile]] | None = None,
                    after_sync: bool = False) -> RunReport:
    """``actions plan``: what run would do now, and why; the journal and DS are not touched (the
    convention statuses are refreshed at DS's clock, see ``Runner.clock``). ``targets``: the
    ``deadline_demarches`` the caller already resolved (default: resolved here). ``after_sync`` (the
    statuses after a sync when no action is enabled): a démarche where nothing can have changed is
    skipped, and each planning is recorded for the next (``connector.followup.skip``)."""
    report = RunReport()
    runner = Runner(db, client, config, report, timedelta())
    for dcfg, profile in deadline_demarches(db, config) if targets is None else targets:
        if demarches and dcfg.number not in demarches:
            continue
        if after_sync and await runner.unchanged(dcfg, profile, act=False):
            continue
        now = await runner.clock(dcfg.number)
        report.ds_now = now
        before = runner.begin_planning(dcfg, profile, now, act=False) if after_sync else None
        plan = plan_demarche(db, dcfg, profile, now, config.ds.instructeur_email)
        report.plans.append(plan)
        if before is not None:
            runner.completed(dcfg, before, plan)
    return report


def refresh_all(db: sqlite_utils.Database, config: Config, now: datetime) -> dict[int, dict[str, int]]:
    out = {}
    for dcfg, profile in deadline_demarches(db, config):
        counts: dict[str, int] = {}
        with db.atomic():
            for _, st in conventions.refreshed(db, dcfg.deadline, dcfg.number, profile, now):
                counts[st.status] = counts.get(st.status, 0) + 1
        out[dcfg.number] = counts
    return out


__all__ = ["ConnectorError", "DeadlineConfig", "RunReport", "plan_only", "refresh_all", "run"]
