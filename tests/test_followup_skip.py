"""The follow-up after a sync passes over a deadline démarche where nothing can have changed (issue 18,
``connector/followup/skip.py``): the decision's table (each rule flips it), the next change instant
checked against the planner's own pure functions, the mirror generation bumped by every writer on a
real SQLite file, and the whole path against the simulator over HTTP (a quiet sync skips and costs DS
nothing more; DS's clock past a reminder's time plans and sends it once; a dossier change plans)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from contextlib import closing
from datetime import date, datetime, time, timedelta, timezone

import pytest
import structlog

from connector import service, store
from connector.commands.actions import run_actions
from connector.commands.hooks import sync_hooks
from connector.config import DeadlineConfig, DemarcheConfig
from connector.credentials import load_token
from connector.followup import conventions, deadlines, skip
from connector.followup.conventions import Status
from connector.followup.deadlines import PARIS, add_months
from connector.followup.profile import FollowupProfile
from connector.lock import InstanceLock
from connector.store import followup as followup_store
from followup_env import followup_config, journal, occitanie, paris_at
from syncenv import run_once
from test_store import DEMARCHE, load, node, page_nodes

UTC = timezone.utc
T0 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
PROFILE = FollowupProfile("ent_ecole", True, {"statut": "Q2hhbXAtOQ=="})


# --- the decision: each rule flips it -------------------------------------------------------------

MARK = skip.Mark(generation=7, planned_at=T0, until=T0 + timedelta(days=3), digest="d", version="v")
NOW = skip.Current(generation=7, clock=T0 + timedelta(hours=5), digest="d", version="v", open_actions=0)


@pytest.mark.parametrize("mark, now, why", [
    (MARK, NOW, None),
    (MARK, dataclasses.replace(NOW, clock=T0), None),  # the planning's own clock
    (dataclasses.replace(MARK, until=skip.NEVER), dataclasses.replace(NOW, clock=T0 + timedelta(days=400)), None),
    (None, NOW, "no completed planning"),
    (MARK, dataclasses.replace(NOW, generation=8), "mirror or journal changed"),  # rule 1
    (MARK, dataclasses.replace(NOW, clock=MARK.until), "clock reached"),  # rule 2, at the instant itself
    (MARK, dataclasses.replace(NOW, clock=MARK.until + timedelta(days=1)), "clock reached"),
    (dataclasses.replace(MARK, until=None), NOW, "next change is unknown"),
    (MARK, dataclasses.replace(NOW, clock=T0 - timedelta(seconds=1)), "before the last planning"),
    (MARK, dataclasses.replace(NOW, digest="other"), "config changed"),  # rule 3
    (MARK, dataclasses.replace(NOW, open_actions=1), "not final"),  # rule 4
    (MARK, dataclasses.replace(NOW, version="v2"), "code changed"),  # rule 5
])
def test_the_skip_decision(mark, now, why):
    got = skip.why_plan(mark, now)
    assert (got is None) if why is None else (got is not None and why in got), got


def test_a_mark_survives_its_row():
    for until in (T0 + timedelta(days=3), None, skip.NEVER):
        mark = dataclasses.replace(MARK, until=until)
        row = {**mark.row(), "config_digest": mark.digest, "code_version": mark.version}
        assert skip.Mark.from_row(row) == mark
    assert skip.Mark.from_row(None) is None
    assert skip.until_text(None) == "unknown" and skip.until_text(skip.NEVER) == "never"


SETTINGS = DeadlineConfig(reminders=True, classer_sans_suite=True)


@pytest.mark.parametrize("change", [
    {"deadline": dataclasses.replace(SETTINGS, reminders=False)},
    {"deadline": dataclasses.replace(SETTINGS, classer_sans_suite=False)},
    {"deadline": dataclasses.replace(SETTINGS, reminder_days=(10,))},
    {"deadline": dataclasses.replace(SETTINGS, grace_days=2)},
    {"deadline": dataclasses.replace(SETTINGS, hours=(8, 18))},
    {"deadline": dataclasses.replace(SETTINGS, reminder_template="Relance {dossier}")},
    {"fee_per_school": 40.0},
    {"profile": "occitanie"},
    {"roles": (("statut", "Statut"),)},
])
def test_every_setting_the_planning_reads_changes_the_digest(change):
    base = DemarcheConfig(1, deadline=SETTINGS)
    same = skip.digest(base, PROFILE, "tech@example.org", True)
    assert skip.digest(DemarcheConfig(1, deadline=SETTINGS), PROFILE, "tech@example.org", True) == same
    assert skip.digest(dataclasses.replace(base, **change), PROFILE, "tech@example.org", True) != same
    assert skip.digest(base, PROFILE, "other@example.org", True) != same
    assert skip.digest(base, PROFILE, "tech@example.org", False) != same
    assert skip.digest(base, dataclasses.replace(PROFILE, champs={}), "tech@example.org", True) != same


# --- the next change, against the planner's own pure functions -------------------------------------

def _facts(depot: str, state: str = "en_instruction", **more) -> dict:
    return {"number": 1, "id": "RG9zc2llci0x", "state": state, "date_depot": depot, "archived": 0,
            "pending_deletion": 0, **more}


def _decide(facts: dict, messages: list, settings: DeadlineConfig, now: datetime) -> tuple:
    """Everything the planning computes for one dossier at ``now``."""
    st = conventions.evaluate(facts, messages, {}, PROFILE, settings, now)
    return (st, conventions.next_step(st, facts, settings, now, {}), conventions.due_reminder(st, settings, now),
            conventions.closure_due(st, settings, now))


PDF = [{"created_at": "2026-09-20T10:00:00+02:00", "id": "m1",
        "files": [{"content_type": "application/pdf", "filename": "c.pdf", "file_key": "k", "virus_scan": "safe"}]}]


@pytest.mark.parametrize("facts, messages, settings, start", [
    (_facts("2026-09-15T10:00:00+02:00"), [], SETTINGS, datetime(2026, 9, 16, tzinfo=UTC)),  # awaiting
    (_facts("2026-09-15T10:00:00+02:00"), [], SETTINGS, datetime(2026, 11, 5, tzinfo=UTC)),  # past J-15
    (_facts("2026-09-15T10:00:00+02:00"), [], dataclasses.replace(SETTINGS, grace_days=3),
     datetime(2026, 11, 14, 12, tzinfo=UTC)),  # overdue, in the grace days
    (_facts("2026-08-31T23:30:00+02:00"), [], SETTINGS, datetime(2026, 10, 20, tzinfo=UTC)),  # DST ends 25 Oct
    (_facts("2026-09-15T10:00:00+02:00"), PDF, SETTINGS, datetime(2026, 9, 21, tzinfo=UTC)),  # received
    (_facts("2026-09-15T10:00:00+02:00", state="refuse"), [], SETTINGS, datetime(2026, 9, 21, tzinfo=UTC)),
    (_facts(None), [], SETTINGS, datetime(2026, 9, 21, tzinfo=UTC)),  # no reference date
])
def test_nothing_the_planning_computes_changes_before_the_next_change_and_something_does_at_it(
        facts, messages, settings, start):
    decided = _decide(facts, messages, settings, start)
    change = conventions.next_change(decided[0], settings, start)
    end = change or start + timedelta(days=200)
    at = start
    while at < end:  # every hour, and the last second before the change
        assert _decide(facts, messages, settings, at) == decided, at
        at = min(at + timedelta(hours=1), end - timedelta(seconds=1)) if at < end - timedelta(seconds=1) else end
    if change is not None:
        assert _decide(facts, messages, settings, change) != decided
        assert change.astimezone(PARIS).time() == time(0, 0)  # Paris midnights, DST or not
    else:
        assert _decide(facts, messages, settings, end) == decided


def test_the_next_change_of_an_awaiting_dossier_is_its_next_reminder_then_its_deadline_then_its_closure():
    st = Status("awaiting", "r", deadline=date(2026, 11, 15))
    settings = dataclasses.replace(SETTINGS, grace_days=2)
    assert conventions.next_change(st, settings, datetime(2026, 10, 1, tzinfo=UTC)) == deadlines.reminder_at(
        date(2026, 11, 15), 15)
    assert conventions.next_change(st, settings, datetime(2026, 11, 13, tzinfo=UTC)) == deadlines.closure_at(
        date(2026, 11, 15))
    overdue = dataclasses.replace(st, status="overdue")
    assert conventions.next_change(overdue, settings, datetime(2026, 11, 16, 12, tzinfo=UTC)) == deadlines.closure_at(
        date(2026, 11, 15), 2)
    assert conventions.next_change(overdue, settings, datetime(2026, 11, 20, tzinfo=UTC)) is None


# --- the mirror generation: every writer bumps it, in its own transaction --------------------------

@pytest.fixture
def db(tmp_path):
    db = store.open_db(tmp_path / "mirror.db")
    yield db
    db.close()


def _generation(db) -> int:
    return followup_store.mirror_generation(db, DEMARCHE)


def _changes(db, write) -> int:
    before = _generation(db)
    write()
    return _generation(db) - before


def test_every_write_to_a_demarches_mirror_or_journal_bumps_its_generation_and_a_quiet_page_does_not(db):
    def atomic(fn, *args):
        def go():
            with db.atomic():
                fn(db, *args)
        return go

    descriptor = load("demarche_descriptor")["demarche"]
    assert _changes(db, atomic(store.save_demarche, descriptor)) > 0
    assert _changes(db, atomic(store.save_demarche, descriptor)) == 0  # read again as it was (daily, --full)
    fewer = {**descriptor, "groupeInstructeurs": descriptor["groupeInstructeurs"][:-1]}
    assert _changes(db, atomic(store.save_demarche, fewer)) > 0  # a groupe (its instructeurs) went
    assert _changes(db, atomic(store.save_demarche, descriptor)) > 0
    assert _changes(db, atomic(store.save_dossiers, DEMARCHE, page_nodes())) > 0  # new
    assert _changes(db, atomic(store.save_dossiers, DEMARCHE, page_nodes())) == 0  # the same page again
    touched = node(1001)
    touched["dateDerniereModification"] = "2026-12-01T10:00:00+01:00"
    assert _changes(db, atomic(store.save_dossiers, DEMARCHE, [touched])) > 0  # updated
    trash = load("pending_deleted_dossiers_page")["demarche"]["pendingDeletedDossiers"]["nodes"]
    assert _changes(db, atomic(store.save_pending_deleted, DEMARCHE, trash)) > 0  # flagged
    assert _changes(db, atomic(store.save_pending_deleted, DEMARCHE, trash)) == 0  # the same trash listed again
    moved = [{**trash[0], "reason": "expired"}]
    assert _changes(db, atomic(store.save_pending_deleted, DEMARCHE, moved)) > 0  # a trash row that changed
    assert _changes(db, lambda: store.clear_pending(db, [1003])) > 0  # unflagged
    assert _changes(db, lambda: store.quarantine(db, DEMARCHE, 1001, "bad", "{}")) > 0
    assert _changes(db, lambda: store.clear_quarantine(db, 1001)) > 0
    assert _changes(db, lambda: store.quarantine(db, DEMARCHE, None, "page", None)) > 0  # a page, no number
    assert _changes(db, lambda: store.confirm_vanished(db, 1001)) > 0  # purged
    deleted = load("deleted_dossiers_page")["demarche"]["deletedDossiers"]["nodes"]
    assert _changes(db, atomic(store.save_deleted, DEMARCHE, deleted)) > 0
    intent = {"demarche_number": DEMARCHE, "dossier_number": 1003, "kind": "reminder", "dedup_key": "k",
              "rule": "r", "operation": "envoyer_message", "payload": {}}
    assert _changes(db, atomic(followup_store.insert_action, intent)) > 0
    action = followup_store.actions(db)[0]
    assert _changes(db, lambda: followup_store.transition(db, action.id, ("planned",), "cancelled")) > 0
    # derived rows (statuses) and another démarche's writes leave it alone
    assert _changes(db, atomic(followup_store.save_conventions, [{
        "dossier_number": 1003, "demarche_number": DEMARCHE, "reference": "date_depot", "reference_at": None,
        "deadline": None, "status": "not_applicable", "rule": "r", "received_at": None, "proof_message_id": None,
        "proof_file_key": None, "proof_annotation_id": None, "next_action": None, "next_action_at": None}])) == 0
    assert _changes(db, lambda: store.quarantine(db, DEMARCHE + 1, None, "page", None)) == 0


def test_a_bump_rolls_back_with_its_write_and_a_dropped_trigger_comes_back_at_the_next_open(db, tmp_path):
    before = _generation(db)
    with pytest.raises(RuntimeError):
        with db.atomic():
            store.save_dossiers(db, DEMARCHE, page_nodes())
            raise RuntimeError("the page fails")
    assert _generation(db) == before and db.conn.execute("SELECT count(*) FROM dossiers").fetchone() == (0,)
    db.conn.execute("DROP TRIGGER generation_dossiers_insert")
    db.close()
    again = store.open_db(tmp_path / "mirror.db")
    try:
        with again.atomic():
            store.save_dossiers(again, DEMARCHE, page_nodes())
        assert followup_store.mirror_generation(again, DEMARCHE) > before
    finally:
        again.close()


# --- the whole path, against the simulator over HTTP ---------------------------------------------

def _requests(sim) -> int:
    return sim.control("requests")["count"]


def _quiet_run(config, sim):
    """A run with nothing new on DS: (its outcome, the requests DS received, its skip events)."""
    sim.control("requests/reset")
    with structlog.testing.capture_logs() as logs:
        outcome = run_once(config)
    assert outcome.sync.exit_code == 0 and outcome.followup is not None, outcome.sync.summary()
    return outcome, _requests(sim), [e for e in logs if e["event"] == "followup.demarche_skipped"]


def _until(config, demarche: int) -> datetime | None:
    with closing(sqlite3.connect(config.database.path)) as conn:
        (text,) = conn.execute("SELECT until FROM followup_plans WHERE demarche_number = ?", [demarche]).fetchone()
    return datetime.fromisoformat(text) if text else None


def _reminders(sim, number: int) -> list[str]:
    return [e["input"]["body"] for e in sim.control("log")["mutations"]
            if e.get("dossier") == number and e["outcome"] == "ok" and e["name"] == "dossierEnvoyerMessage"]


def test_a_quiet_sync_skips_the_planning_until_ds_clock_or_a_dossier_says_otherwise(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim, reminders=True, classer=True)
    a, b = sim.control("dossiers", demarche=occ, count=2, state="en_instruction")["numbers"]
    deadline = add_months(world.dossiers[a].depose_at.astimezone(PARIS).date(), 2)

    first = run_once(config, full=True)  # plans and acts on the seeded backlog
    assert first.followup.skipped == [] and first.followup.sent > 0
    settled, planned_requests, events = _quiet_run(config, sim)  # its own sends and re-reads: planned again
    assert settled.followup.skipped == [] and events == [] and settled.followup.sent == 0
    quiet, requests, events = _quiet_run(config, sim)
    assert quiet.followup.skipped == [occ] and quiet.followup.plans == []
    assert [(e["demarche"], e["until"]) for e in events] == [(occ, skip.until_text(_until(config, occ)))]
    assert requests == planned_requests == 3 * len(config.demarches)  # nothing more asked of DS
    assert quiet.followup.ds_now is not None

    # DS's clock just before the first instant time alone changes anything: still nothing to plan.
    until = _until(config, occ)
    assert until is not None and until <= deadlines.reminder_at(deadline, 15)
    paris_at(world, until - timedelta(minutes=1), sim)
    assert _quiet_run(config, sim)[0].followup.skipped == [occ]
    assert _reminders(sim, a) == []

    # At a's J-15, nothing changed on DS: the sync plans, and a's reminder goes once.
    paris_at(world, datetime.combine(deadline - timedelta(days=15), time(8, 0), tzinfo=PARIS), sim)
    due, _, _ = _quiet_run(config, sim)
    assert due.followup.skipped == [] and due.followup.sent >= 2  # a's and b's reminders
    assert len(_reminders(sim, a)) == 1 and "dans 15 jour(s)" in _reminders(sim, a)[0]
    assert len(_reminders(sim, b)) == 1
    for _ in range(2):  # the run after acting plans again (its own writes), then it skips; nothing is resent
        again, _, _ = _quiet_run(config, sim)
    assert again.followup.skipped == [occ]
    assert len(_reminders(sim, a)) == len(_reminders(sim, b)) == 1

    # A dossier change alone: the signed PDF comes for b, DS's clock unchanged in the démarche's terms.
    sim.control("message", number=b, content_type="application/pdf")
    changed, _, events = _quiet_run(config, sim)
    assert changed.followup.skipped == [] and events == []
    with closing(sqlite3.connect(config.database.path)) as conn:
        assert conn.execute("SELECT status FROM conventions WHERE dossier_number = ?", [b]).fetchone() == (
            "received_on_time",)
    assert _quiet_run(config, sim)[0].followup.skipped == [occ]

    # An operator's commands always plan, whatever the mark says.
    ran = asyncio.run(run_actions(config, settle=timedelta()))
    assert ran.skipped == [] and [p.demarche for p in ran.plans] == [occ]
    with InstanceLock(config.state_dir, holder="test") as lock:
        planned = asyncio.run(service.plan(config, load_token(config, environ={}), lock, sync_hooks(config)))
    assert planned.skipped == [] and [p.demarche for p in planned.plans] == [occ]
    assert all(x["state"] in ("sent", "cancelled", "failed") for x in journal(config))


def test_a_config_change_plans_again(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    quiet = followup_config(tmp_path / "state", sim)  # statuses only: nothing written to DS
    for _ in range(2):
        outcome = run_once(quiet)
    assert outcome.followup.skipped == [occitanie(sim.world)]
    acting = followup_config(tmp_path / "state", sim, reminders=True)
    assert run_once(acting).followup.skipped == []
