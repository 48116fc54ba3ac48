"""Actions on DS (issue 9 §2-3): reminders at J-15 and J-3, the five-step closure of an overdue
dossier, the re-read just before acting, eligibility, the sending window and grace period, the
journal commands, and refusals (read-only token, instructeur outside the groupe, DS refusing a state
change). Every side effect is checked in the simulator's own mutation journal."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, time, timedelta

import pytest

from connector.commands.actions import run_actions
from connector.commands.hooks import sync_hooks
from connector.followup.deadlines import PARIS, add_months
from followup_env import (
    api_instructeur, followup_config, journal, occitanie, paris_at, statuses, sync_and_act, sync_and_refresh,
)
from syncenv import sync


def _kinds(log: list[dict], number: int) -> list[str]:
    return [e["name"] for e in log if e.get("dossier") == number and e["outcome"] == "ok"]


def _cli(config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    return subprocess.run([sys.executable, "-m", "connector.cli", "actions", *args, "--config", str(config.path)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_reminders_then_the_closure_each_once_and_none_where_the_pdf_came(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim, reminders=True, classer=True)
    a, b, c, d, e = sim.control("dossiers", demarche=occ, count=5, state="accepte")["numbers"]
    deadline = add_months(world.dossiers[a].depose_at.astimezone(PARIS).date(), 2)
    sync_and_act(config)
    sim.control("log/reset")  # the seeded backlog's own actions are not this test's

    sim.control("advance", seconds=5 * 86400)
    sim.control("message", number=b, content_type="application/pdf")  # on time: never reminded
    sim.control("archive", number=d)  # archived: the messagerie is closed
    sim.control("message", number=e, kind="non_pdf")  # a Word file: to review, a person decides
    paris_at(world, datetime.combine(deadline - timedelta(days=15), time(8, 0), tzinfo=PARIS), sim)
    sync_and_act(config)
    sync_and_act(config)  # deciding again changes nothing
    paris_at(world, datetime.combine(deadline - timedelta(days=3), time(8, 0), tzinfo=PARIS), sim)
    sync_and_act(config)
    log = sim.control("log")["mutations"]
    for number in (a, c):
        bodies = [x["input"]["body"] for x in log if x.get("dossier") == number]
        assert len(bodies) == 2 and "dans 15 jour(s)" in bodies[0] and "dans 3 jour(s)" in bodies[1], bodies
        assert all(f"nº {number}" in body for body in bodies)
    assert _kinds(log, b) == _kinds(log, d) == _kinds(log, e) == []

    # The day after the deadline: c's PDF arrives after the last sync; the run re-reads c before acting.
    paris_at(world, datetime.combine(deadline + timedelta(days=1), time(0, 0, 30), tzinfo=PARIS), sim)
    sync(config)
    sim.control("message", number=c, content_type="application/pdf")
    report = asyncio.run(run_actions(config, settle=timedelta()))
    log = sim.control("log")["mutations"]
    assert _kinds(log, a) == ["dossierEnvoyerMessage"] * 3 + [
        "dossierModifierAnnotations", "dossierRepasserEnInstruction", "dossierClasserSansSuite"]
    assert _kinds(log, c) == ["dossierEnvoyerMessage"] * 2  # the reminders only: no closure
    assert world.dossiers[a].state == "sans_suite" and world.dossiers[c].state == "accepte"
    assert "délai de deux mois" in world.dossiers[a].messages[-2].body or any(
        "classée sans suite" in m.body for m in world.dossiers[a].messages)
    assert world.dossiers[a].motivation and "Convention signée non reçue" in world.dossiers[a].motivation
    assert report.failed == report.unknown == 0 and report.cancelled >= 1
    got = statuses(config)
    assert got[a] == "overdue" and got[c] == "received_late" and got[b] == "received_on_time" and got[e] == "to_review"
    cancelled = journal(config, dossier_number=c, state="cancelled")
    assert cancelled and all("received_late" in x["last_error"] for x in cancelled)
    # Another cycle sends nothing more.
    before = len(log)
    sync_and_act(config)
    assert len(sim.control("log")["mutations"]) == before


def test_grace_period_and_sending_window_are_respected(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim, classer=True,
                             deadline_extra="grace_days = 2\nweekdays = ['mon', 'tue', 'wed', 'thu', 'fri']\n"
                                            "hours = [9, 17]\n")
    (a,) = sim.control("dossiers", demarche=occ, count=1, state="accepte")["numbers"]
    deadline = add_months(world.dossiers[a].depose_at.astimezone(PARIS).date(), 2)  # 15 Dec 2026, a Tuesday
    sync_and_act(config)
    sim.control("log/reset")
    paris_at(world, datetime.combine(deadline + timedelta(days=2), time(10, 0), tzinfo=PARIS), sim)
    sync_and_act(config)  # within the grace period
    assert _kinds(sim.control("log")["mutations"], a) == []
    paris_at(world, datetime.combine(deadline + timedelta(days=3), time(7, 0), tzinfo=PARIS), sim)
    sync_and_act(config)  # grace over, but before 9:00: planned, waiting for the window
    assert _kinds(sim.control("log")["mutations"], a) == []
    assert {x["state"] for x in journal(config, dossier_number=a)} == {"planned"}
    paris_at(world, datetime.combine(deadline + timedelta(days=3), time(9, 30), tzinfo=PARIS), sim)
    sync_and_act(config)
    assert _kinds(sim.control("log")["mutations"], a)[-1] == "dossierClasserSansSuite"


def test_plan_touches_nothing_and_the_journal_commands(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    config = followup_config(tmp_path / "state", sim, reminders=True, classer=True)
    sync(config)
    sim.control("log/reset")
    plan = _cli(config, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "classer_sans_suite" in plan.stdout and "délai dépassé" in plan.stdout
    assert sim.control("log")["mutations"] == [] and journal(config) == []
    run = _cli(config, "run", "--settle", "0")
    assert run.returncode == 0, run.stderr
    assert "sent" in run.stdout
    sent = journal(config, state="sent")
    assert sent and len(sim.control("log")["mutations"]) == len(sent)
    listed = _cli(config, "list", "--state", "sent", "--dossier", str(sent[0]["dossier_number"]))
    assert listed.returncode == 0 and str(sent[0]["id"]) in listed.stdout and "journal:" in listed.stdout
    refused = _cli(config, "retry", str(sent[0]["id"]))
    assert refused.returncode != 0 and "only a failed or cancelled action" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = _cli(config, "cancel", "999999")
    assert missing.returncode != 0 and "no action 999999" in missing.stderr
    again = _cli(config, "plan")
    assert again.returncode == 0 and "classer_sans_suite" not in again.stdout


def test_read_only_token_instructeur_outside_the_groupe_and_ds_refusing_a_state_change(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    a, b = sim.control("dossiers", demarche=occ, count=2, state="accepte")["numbers"]
    deadline = add_months(world.dossiers[a].depose_at.astimezone(PARIS).date(), 2)
    paris_at(world, datetime.combine(deadline + timedelta(days=1), time(10, 0), tzinfo=PARIS), sim)

    # 1. A read-only token: every action fails with DS's text, the sync goes on.
    read_only = sim.control("token", write_access=False)["token"]
    ro = followup_config(tmp_path / "ro", sim, classer=True, token=read_only)
    sync_and_act(ro)
    failed = journal(ro, dossier_number=a)
    assert failed[0]["state"] == "failed" and "seulement en lecture" in failed[0]["last_error"]
    assert [x["state"] for x in failed[1:]] == ["planned"] * (len(failed) - 1)  # later steps wait
    assert all(e["outcome"] == "errors" for e in sim.control("log/reset")["mutations"])
    assert sync(ro).exit_code == 0

    # 2. An instructeur of another groupe: refused locally, nothing sent; with a stale mirror that
    #    believes otherwise, DS refuses with its own reason.
    groupe = world.dossiers[a].groupe_instructeur_number
    members = {i for g in world.demarches[occ].groupes for i in g.instructeur_ids
               if g.number in (groupe, world.dossiers[b].groupe_instructeur_number)}  # b is for part 3
    outsider = next(i for i in world.instructeurs.values() if i.id not in members and any(
        i.id in g.instructeur_ids for g in world.demarches[occ].groupes))
    out = followup_config(tmp_path / "out", sim, classer=True, instructeur=outsider.email)
    sync_and_act(out)
    first = journal(out, dossier_number=a)[0]
    assert first["state"] == "failed" and "is not in the groupe instructeur" in first["last_error"]
    assert [e for e in sim.control("log/reset")["mutations"] if e.get("dossier") == a] == []
    with closing(sqlite3.connect(out.database.path)) as conn, conn:
        conn.execute("INSERT INTO groupe_instructeur_members VALUES (?, ?)", [groupe, first["instructeur_id"]])
        conn.execute("UPDATE actions SET state = 'planned' WHERE id = ?", [first["id"]])
    asyncio.run(run_actions(out, settle=timedelta()))
    first = journal(out, id=first["id"])[0]
    assert first["state"] == "failed" and "n’a pas les droits d’accès à ce dossier" in first["last_error"]

    # 3. DS refuses the state change (degraded SIRET): the closure stops there, with DS's reason.
    world.dossiers[b].demandeur = {"__typename": "PersonneMoraleIncomplete", "siret": "21340172201787"}
    sim.control("touch", numbers=[b])
    good = followup_config(tmp_path / "good", sim, classer=True)
    sim.control("log/reset")
    sync_and_act(good)
    rows = {x["kind"]: x for x in journal(good, dossier_number=b)}
    assert rows["classer_sans_suite"]["state"] == "failed"
    assert "SIRET du dossier ne sont pas complètes" in rows["classer_sans_suite"]["last_error"]
    assert {rows[k]["state"] for k in ("closure_message", "closure_annotations", "repasser_en_instruction")} == {"sent"}
    done = journal(good, dossier_number=a, kind="classer_sans_suite")[0]
    assert done["state"] == "sent" and world.dossiers[a].state == "sans_suite"  # the other dossier went on
    refused = [e for e in sim.control("log")["mutations"] if e["outcome"] != "ok"]
    assert b in {e["dossier"] for e in refused}
    assert all(e["name"] == "dossierClasserSansSuite" and "SIRET" in e["errors"][0] for e in refused)
    assert all(world.dossiers[e["dossier"]].demandeur["__typename"] == "PersonneMoraleIncomplete" for e in refused)


def test_an_operator_cancel_that_a_run_overtakes_says_so(make_simulator, tmp_path, monkeypatch):
    """``actions cancel`` reads the action, then compares-and-sets it: a run claiming it in between
    wins, and the operator is told nothing was done (not "cancelled" while it is being sent)."""
    from connector.followup import journal as jr
    from connector.store import open_db

    sim = make_simulator(seed=7, dossiers=60)
    config = followup_config(tmp_path / "state", sim, reminders=True, classer=True)
    sync(config)
    assert _cli(config, "run", "--settle", "0").returncode == 0
    action_id = journal(config, state="sent")[0]["id"]
    with closing(sqlite3.connect(config.database.path)) as conn, conn:  # set-up: one action planned again
        conn.execute("UPDATE actions SET state = 'planned' WHERE id = ?", [action_id])

    read = jr.store.action

    def read_then_a_run_claims_it(db, aid):
        found = read(db, aid)
        monkeypatch.setattr(jr.store, "action", read)  # once: the race, then the real reads
        assert jr.claim(db, aid, "2026-10-15T08:00:00+00:00")  # what a run does right then
        return found

    monkeypatch.setattr(jr.store, "action", read_then_a_run_claims_it)
    db = open_db(config.database.path)
    try:
        with pytest.raises(jr.JournalError, match="changed meanwhile .*sending"):
            jr.operator_cancel(db, action_id)
    finally:
        db.close()
    assert journal(config, id=action_id)[0]["state"] == "sending"


def _derived(config, number: int) -> tuple[list, list, list]:
    with closing(sqlite3.connect(config.database.path)) as conn:
        ecoles = conn.execute("SELECT position, uai_saisi, uai, nom FROM ecoles WHERE dossier_number = ? "
                              "ORDER BY position", [number]).fetchall()
        anomalies = conn.execute("SELECT code, champ, key FROM anomalies WHERE dossier_number = ? "
                                 "AND resolved_at IS NULL ORDER BY code, key", [number]).fetchall()
        forms = conn.execute("SELECT * FROM dossier_forms WHERE dossier_number = ?", [number]).fetchall()
    return ecoles, anomalies, [tuple(r) for r in forms]


def test_after_actions_run_closes_a_dossier_its_ecoles_and_anomalies_are_current_without_check(
        make_simulator, tmp_path):
    """The follow-up re-reads a dossier before and after acting through the sync's door: the forms
    hook runs, so the usager's last edit (made after the last sync) is in ``ecoles`` and
    ``anomalies`` as soon as ``actions run`` has closed the dossier, with no ``check``."""
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    config = followup_config(tmp_path / "state", sim, classer=True)
    numbers = sim.control("dossiers", demarche=occ, count=5, state="accepte")["numbers"]
    number = next(n for n in numbers if len(next(c for c in world.dossiers[n].champs
                                                   if c.stable_id == 4210009).value or []) >= 2)
    deadline = add_months(world.dossiers[number].depose_at.astimezone(PARIS).date(), 2)
    sync_and_act(config)
    paris_at(world, datetime.combine(deadline + timedelta(days=1), time(0, 0, 30), tzinfo=PARIS), sim)
    sync(config, hooks=sync_hooks(config))  # the sync alone: the actions come below
    assert world.dossiers[number].state == "accepte"
    before = _derived(config, number)
    assert before[0] and len(before[0]) >= 2
    schools = next(c for c in world.dossiers[number].champs if c.stable_id == 4210009).value
    sim.control("champ", number=number, stable_id=4210009, value=schools[:1])  # after the last sync

    report = asyncio.run(run_actions(config, settle=timedelta()))

    assert world.dossiers[number].state == "sans_suite" and report.unknown == 0
    assert not journal(config, dossier_number=number, state="failed")
    after = _derived(config, number)
    assert len(after[0]) == 1 and after != before  # the edit is in, at once
    with closing(sqlite3.connect(config.database.path)) as conn:
        (state,) = conn.execute("SELECT state FROM dossiers WHERE number = ?", [number]).fetchone()
    assert state == "sans_suite"
    done = subprocess.run([sys.executable, "-m", "connector.cli", "check", "--config", str(config.path)],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN",)})
    assert done.returncode == 0, done.stderr
    assert _derived(config, number) == after  # what check computes: nothing was stale
