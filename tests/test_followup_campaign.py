"""A campaign played through two months of simulated time (issue 9, Tests): a few hundred Occitanie
dossiers, usager replies of every kind delivered day after day (PDF, late PDF, Word, image, text,
PDF still being scanned then safe or infected), new dossiers deposited, and a daemon cycle (sync +
actions) every simulated day. At the end every dossier's status equals what the simulator planted,
and reminders and closures went exactly to the right dossiers, once each.

The expectations are computed from the simulator's planted markers and its records, with the rules
of the issue written out again here (not with the connector's code)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, time, timedelta

from connector import service
from connector.simulator import anomalies as A
from connector.simulator.dates import deadline_day, paris_day
from connector.simulator.shapes import is_degraded
from connector.simulator.state import PARIS
from followup_env import effects, followup_config, journal, occitanie, paris_at, statuses
from syncenv import run_once

DAYS = 61
KINDS = [("signed_pdf", "safe")] * 6 + [("non_pdf", "safe"), ("image", "safe"), ("text", "safe"),
                                        ("signed_pdf", "pending")]


def planted(d, closed_by_connector: set[int], now: datetime) -> str | None:
    """The status the simulator planted for an Occitanie dossier (None: no convention is owed)."""
    if d.state == "refuse":
        return "not_applicable"
    if d.state == "sans_suite":
        return "overdue" if d.number in closed_by_connector else "not_applicable"
    marks = set(d.anomalies)
    if A.PDF_SCAN_PENDING in marks:
        return "to_confirm"
    if A.CONVENTION_ON_TIME in marks:
        return "received_on_time"
    if A.CONVENTION_LATE in marks:
        return "received_late"
    if A.CONVENTION_MISSING in marks:
        if marks & {A.REPLY_NON_PDF, A.REPLY_IMAGE}:
            return "to_review"
        return "overdue" if paris_day(now) > deadline_day(d.depose_at) else "awaiting"
    return None


def blocked(d) -> bool:
    return bool(d.archived or d.connection_usager == "deleted" or d.hidden_by_user_at
                or d.hidden_by_administration_at)


def reminder_step(d, now: datetime) -> int | None:
    """J-15 / J-3: the latest step whose day has come (00:00 Paris), before the deadline's end."""
    deadline = datetime.fromisoformat(deadline_day(d.depose_at)).date()
    today = now.astimezone(PARIS).date()
    if today > deadline:
        return None
    due = [n for n in (15, 3) if today >= deadline - timedelta(days=n)]
    return min(due) if due else None


def test_two_months_of_campaign(make_simulator, tmp_path):
    sim = make_simulator(seed=11, dossiers=400, rate_limit=0)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim, reminders=True, classer=True)
    rng = random.Random(2026)
    expected_reminders: set[tuple[int, str, int]] = set()
    expected_closures: set[int] = set()
    wrong: list[str] = []
    pending_scans: list[str] = []
    seen = 0
    start = world.clock.now().astimezone(PARIS).date()
    for day in range(DAYS):
        paris_at(world, datetime.combine(start + timedelta(days=day), time(10, 0), tzinfo=PARIS), sim)
        for key in pending_scans:  # yesterday's scans end: one in five infected
            sim.control("scan", key=key, result="infected" if rng.random() < 0.2 else "safe")
        pending_scans = []
        if day % 3 == 1:
            sim.control("dossiers", demarche=occ, count=2, state="accepte")
        now = world.clock.now()
        for d in sorted(world.dossiers.values(), key=lambda d: d.number):
            if (d.demarche_number != occ or d.state in ("refuse", "sans_suite") or blocked(d)
                    or A.CONVENTION_MISSING not in d.anomalies or rng.random() > 0.035):
                continue
            kind, scan = rng.choice(KINDS)
            answer = sim.control("message", number=d.number, kind=kind, virus_scan=scan)
            if scan == "pending":
                pending_scans += answer["attachments"]
        # What the connector must do this cycle, from the planted truth at this instant.
        closed = {e["dossier"] for e in sim.control("log")["mutations"]
                  if e["name"] == "dossierClasserSansSuite" and e["outcome"] == "ok"}
        before: dict[int, str | None] = {}
        for d in world.dossiers.values():
            if d.demarche_number != occ or not d.depose_at:
                continue
            truth = before[d.number] = planted(d, closed, now)
            if blocked(d):
                continue
            step = reminder_step(d, now)
            if truth == "awaiting" and step is not None:
                expected_reminders.add((d.number, deadline_day(d.depose_at), step))
            if truth == "overdue" and d.state != "sans_suite" and not is_degraded(d.demandeur):
                expected_closures.add(d.number)
        # A day passed on DS's clock since the last cycle: the process's per-minute request budget for the
        # token would have refilled long ago (a real minute here is a simulated day).
        service._budgets.clear()
        outcome = run_once(config)  # one daemon cycle: the sync, then its follow-up on the same client
        assert outcome.sync is not None and outcome.sync.exit_code == 0, outcome.summary()
        assert outcome.followup is not None, "the follow-up after the sync failed (see the log)"
        log = sim.control("log")["mutations"]
        for e in log[seen:]:  # nothing to a dossier whose convention had come (or was being looked at)
            truth = before.get(e.get("dossier"), "not an Occitanie dossier")
            if e["outcome"] == "ok" and truth not in ("awaiting", "overdue"):
                wrong.append(f"day {day}: {e['name']} to dossier {e.get('dossier')} whose status was {truth}")
        seen = len(log)

    log = sim.control("log")["mutations"]
    now = world.clock.now()
    closed = {e["dossier"] for e in log if e["name"] == "dossierClasserSansSuite" and e["outcome"] == "ok"}
    got = statuses(config)
    agree, disagree = Counter(), []
    for d in world.dossiers.values():
        if d.demarche_number != occ or d.number not in got:
            continue
        truth = planted(d, closed, now)
        if truth is None:
            continue
        if got[d.number] == truth:
            agree[truth] += 1
        else:
            disagree.append((d.number, truth, got[d.number], d.state, d.anomalies))
    sent_reminders = {(r["dossier_number"], r["deadline"], int(r["dedup_key"].rsplit(":", 1)[1]))
                      for r in journal(config, kind="reminder", state="sent")}
    counted = effects(log)
    print(f"campaign: {sum(agree.values())} statuses agree with the planted truth "
          f"({', '.join(f'{n} {s}' for s, n in sorted(agree.items()))}), {len(disagree)} disagree; "
          f"{len(sent_reminders)} reminders, {len(closed)} closures, "
          f"{sum(n - 1 for n in counted.values() if n > 1)} duplicate side effects, {len(log)} mutations")
    assert disagree == []
    assert wrong == []
    assert {k: n for k, n in counted.items() if n > 1} == {}
    assert sent_reminders == expected_reminders
    assert closed == expected_closures
    assert len(agree) >= 6 and sum(agree.values()) >= 150
    assert len(sent_reminders) >= 30 and len(closed) >= 10
