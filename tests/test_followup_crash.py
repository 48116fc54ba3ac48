"""Crash safety of the journal (issue 9 §3): ``ds-connector actions run`` SIGKILLed at every step —
after ``planned``, after ``sending`` (request not sent), after DS answered but before ``sent`` was
committed, in the middle of the closure — then restarted: the simulator's mutation journal shows
each message, annotation and state change exactly once, and a dossier whose PDF arrived between a
crash and the restart is not closed.

The kills use the documented test hook ``DS_CONNECTOR_TEST_CRASH=<point>:<n>`` (the process SIGKILLs
itself the n-th time it reaches the point; connector/followup/actions.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from followup_env import effects, followup_config, journal, occitanie, statuses
from syncenv import sync_cli

pytestmark = pytest.mark.slow  # a process killed at every step, restarted

CRASHES = ["planned:1", "sending:1", "answered:1", "step_sent:1", "sending:3", "answered:2", "step_sent:3",
           "answered:4", "sending:2", "planned:1"]


def _run(config, crash: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY",
                                                            "DS_CONNECTOR_TEST_CRASH")}
    if crash:
        env["DS_CONNECTOR_TEST_CRASH"] = crash
    return subprocess.run([sys.executable, "-m", "connector.cli", "actions", "run", "--settle", "0",
                           "--config", str(config.path)], capture_output=True, text=True, timeout=300, env=env)


def test_sigkill_at_every_step_then_restart_gives_each_side_effect_exactly_once(make_simulator, tmp_path):
    sim = make_simulator(seed=7, dossiers=60)
    world = sim.world
    occ = occitanie(world)
    new = sim.control("dossiers", demarche=occ, count=4, state="accepte")["numbers"]
    sim.control("advance", seconds=47 * 86400)  # the new dossiers are 13 days from their deadline
    quiet = followup_config(tmp_path / "state", sim)
    assert sync_cli(quiet.path).returncode == 0
    config = followup_config(tmp_path / "state", sim, reminders=True, classer=True)
    sim.control("log/reset")

    killed, rescued = 0, None
    for crash in CRASHES:
        done = _run(config, crash)
        if done.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert done.returncode in (0, 1), done.stderr
        if crash == "step_sent:1" and rescued is None:
            # Mid-closure: its first step is sent. The collectivité's PDF arrives before the restart.
            mid = [a for a in journal(config, kind="closure_message", state="sent")]
            assert mid, "the first closure step should have been sent before the kill"
            rescued = mid[-1]["dossier_number"]
            sim.control("message", number=rescued, content_type="application/pdf")
    final = _run(config, None)
    assert final.returncode in (0, 1), final.stderr
    assert killed >= 8, f"only {killed} of {len(CRASHES)} runs reached their crash point"

    log = sim.control("log")["mutations"]
    counted = effects(log)
    duplicates = {k: n for k, n in counted.items() if n > 1}
    print(f"crash test: {killed} SIGKILLs, {len(log)} mutations received, {len(counted)} distinct side effects, "
          f"{sum(n - 1 for n in duplicates.values())} duplicates")
    assert duplicates == {}
    rows = journal(config)
    assert {r["state"] for r in rows} <= {"sent", "failed", "cancelled"}, [(r["id"], r["state"]) for r in rows]
    assert sum(1 for r in rows if r["state"] == "sent") == len(counted)
    # Every sent action is one effect DS received (and the other way round).
    assert len([e for e in log if e["outcome"] == "ok"]) == len(counted)
    # The rescued dossier was never classé sans suite; its closure was cancelled after the re-read.
    assert world.dossiers[rescued].state != "sans_suite"
    assert not [e for e in log if e.get("dossier") == rescued and e["name"] == "dossierClasserSansSuite"]
    assert statuses(config)[rescued] == "received_late"
    # The reminders of the new dossiers went out once each.
    for number in new:
        assert sum(1 for e in log if e.get("dossier") == number and e["name"] == "dossierEnvoyerMessage") == 1
    # Each closed dossier got its four steps, once, in order.
    for number in {e["dossier"] for e in log if e["name"] == "dossierClasserSansSuite" and e["outcome"] == "ok"}:
        names = [e["name"] for e in log if e.get("dossier") == number and e["outcome"] == "ok"]
        assert names[-4:] == ["dossierEnvoyerMessage", "dossierModifierAnnotations",
                              "dossierRepasserEnInstruction", "dossierClasserSansSuite"], names
    with closing(sqlite3.connect(config.database.path)) as conn:
        read_back = conn.execute("SELECT count(*) FROM actions WHERE last_error LIKE 'read back from DS%'").fetchone()[0]
    assert read_back >= 2  # the "answered" crashes were settled by reading DS back, not by resending
