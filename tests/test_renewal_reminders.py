"""The renewal reminders on the simulator's two campaigns: before the cut-off, one message on the
previous-year dossier of exactly the communes that have not filed (and whose schools nobody took over),
once each across SIGKILLs at every journal step (the simulator's mutation journal shows no duplicate);
the archived previous-year dossier is reported by ``actions plan``, never planned nor retried; the
previous campaign's own deadline follow-up does not act."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

from connector.config import load_config
from connector.followup.actions import deadline_demarches
from connector.simulator import renewal
from connector.simulator.seed import seed_world
from connector.store.db import open_db
from followup_env import effects, journal
from renewal_env import renewal_config
from syncenv import sync_cli

# Each run reaches "planned" three times (the deadline follow-up of each campaign, then the renewal's
# intents): planned:3 kills right after the reminders are recorded. Two reminders to send: each is
# killed once after its claim (sending) and once after DS's answer (answered), then read back.
CRASHES = ["planned:3", "sending:1", "answered:1", "sending:1", "answered:1", "planned:3"]


def _cli(config, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY",
                                                            "DS_CONNECTOR_TEST_CRASH")}
    if crash:
        env["DS_CONNECTOR_TEST_CRASH"] = crash
    return subprocess.run([sys.executable, "-m", "connector.cli", *args, "--config", str(config.path)],
                          capture_output=True, text=True, timeout=300, env=env)


def _previous_dossier(world, siret: str) -> int:
    return next(d.number for d in world.dossiers.values()
                if d.demarche_number == renewal.PREVIOUS and d.demandeur.get("siret") == siret)


def test_reminders_go_once_to_the_communes_that_have_not_renewed_across_sigkills(make_simulator, tmp_path):
    sim = make_simulator(world=seed_world(7, 60, renewal=True))
    world = sim.world
    truth = sim.control("renewal/truth")
    targets = {_previous_dossier(world, s) for s in truth["to_remind"]}
    archived, = truth["archived_previous_dossiers"]
    assert archived in targets  # D has not renewed, but its dossier is archived
    reachable = targets - {archived}
    assert len(reachable) == 2

    quiet = renewal_config(tmp_path / "state", sim)
    assert sync_cli(quiet.path).returncode == 0
    config = renewal_config(tmp_path / "state", sim, reminders=True)
    plan = _cli(config, "actions", "plan")
    assert plan.returncode == 0, plan.stderr
    assert f"dossier {archived} (previous campaign): nothing — rien envoyé : dossier archivé" in plan.stdout
    for n in reachable:
        assert f"dossier {n} (previous campaign): renewal_reminder" in plan.stdout, plan.stdout
    assert "cut-off in 14 day(s)" in plan.stdout
    sim.control("log/reset")

    killed = 0
    for crash in CRASHES:
        done = _cli(config, "actions", "run", "--settle", "0", crash=crash)
        if done.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert done.returncode in (0, 1), done.stderr
    for _ in range(2):  # and again: nothing more
        final = _cli(config, "actions", "run", "--settle", "0")
        assert final.returncode == 0, final.stdout + final.stderr
    assert killed >= 5, f"only {killed} of {len(CRASHES)} runs reached their crash point"

    log = sim.control("log")["mutations"]
    counted = effects(log)
    duplicates = sum(n - 1 for n in counted.values() if n > 1)
    sent_to = Counter(e["dossier"] for e in log if e["outcome"] == "ok" and e["name"] == "dossierEnvoyerMessage")
    print(f"renewal crash test: {killed} SIGKILLs, {len(log)} mutations received, {len(counted)} distinct side "
          f"effects, {duplicates} duplicates, messages to {dict(sent_to)}")
    assert duplicates == 0
    assert sent_to == {n: 1 for n in reachable}
    assert archived not in {e.get("dossier") for e in log}  # never tried
    rows = journal(config, kind="renewal_reminder")
    assert {(r["dossier_number"], r["state"]) for r in rows} == {(n, "sent") for n in reachable}
    body = next(e["input"]["body"] for e in log if e["outcome"] == "ok")
    assert "29 octobre 2026" in body and "14 jour(s)" in body

    plan = _cli(config, "actions", "plan")
    assert f"dossier {archived} (previous campaign): nothing — rien envoyé : dossier archivé" in plan.stdout
    assert "renewal_reminder (from" not in plan.stdout  # nothing planned again


def test_a_commune_that_files_before_the_send_is_not_reminded(make_simulator, tmp_path):
    sim = make_simulator(world=seed_world(7, 60, renewal=True))
    quiet = renewal_config(tmp_path / "state", sim)
    assert sync_cli(quiet.path).returncode == 0
    # Out of the sending window: the reminders are planned, then wait.
    config = renewal_config(tmp_path / "state", sim, reminders=True)
    text = config.path.read_text().replace("weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']\nhours = [0, 24]",
                                           "weekdays = ['mon']\nhours = [9, 10]")
    config.path.write_text(text)
    done = _cli(config, "actions", "run", "--settle", "0")
    assert done.returncode == 0, done.stderr
    planned = journal(config, kind="renewal_reminder")
    assert len(planned) == 2 and {r["state"] for r in planned} == {"planned"}
    assert not [e for e in sim.control("log")["mutations"] if e["name"] == "dossierEnvoyerMessage"]


def test_the_previous_campaign_deadline_follow_up_stops_acting(make_simulator, tmp_path):
    sim = make_simulator(world=seed_world(7, 60, renewal=True))
    config = renewal_config(tmp_path / "state", sim)
    text = config.path.read_text().replace(
        f"number = {renewal.PREVIOUS}\n",
        f"number = {renewal.PREVIOUS}\n[demarches.deadline]\nreminders = true\nclasser_sans_suite = true\n", 1)
    config.path.write_text(text)
    assert sync_cli(config.path).returncode == 0
    config = load_config(config.path)
    db = open_db(config.database.path)
    try:
        acting = {d.number: (d.deadline.reminders, d.deadline.classer_sans_suite)
                  for d, _ in deadline_demarches(db, config)}
    finally:
        db.conn.close()
    assert acting[renewal.PREVIOUS] == (False, False)
    assert config.demarches[0].deadline.reminders  # the config itself is as written
