"""The run service (connector/service.py): one run for every entry point, against the simulator over
HTTP and real SQLite files. What DS received is read from the simulator's own request log
(``/_sim/requests``), never from the client's counters."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from typing import Any

import pytest

from connector import service
from connector.commands.hooks import sync_hooks
from connector.credentials import load_token
from connector.daemon.notify import Notifier
from connector.daemon.scheduler import Daemon
from connector.ds.budget import RequestBudget
from connector.errors import EX_CONFIG
from connector.lock import InstanceLock, read_holder
from followup_env import followup_config, journal
from syncenv import run_once, simulator_config, sync_cli


def received(simulator: Any) -> list[dict[str, Any]]:
    return simulator.control("requests")["requests"]


def test_the_summary_counts_what_ds_received_follow_up_included(simulator, tmp_path):
    config = followup_config(tmp_path, simulator, reminders=True, classer=True, only_occitanie=False)
    n = len(config.demarches)
    simulator.control("requests/reset")
    full = run_once(config, full=True)
    assert full.followup is not None and full.followup.ds_now is not None  # the follow-up ran, at DS's clock
    assert full.followup.sent > 0  # it acted on DS: its mutations and re-reads are in the count too
    log = received(simulator)
    assert full.sync.requests == len(log) == full.requests, full.sync.summary()
    assert f"{len(log)} requests" in full.sync.summary()
    assert not any(r["operation"] == "getDemarcheProbe" for r in log)  # DS's clock came from the run's answers

    simulator.control("requests/reset")
    quiet = run_once(config)
    log = received(simulator)
    assert quiet.sync.total("new") == quiet.sync.total("updated") == 0
    assert quiet.followup is not None and quiet.followup.ds_now is not None
    assert quiet.sync.requests == len(log) == 3 * n, (quiet.sync.summary(), log)
    # what the run recorded for status: the same count, and DS's clock (the simulator's, not ours)
    with closing(sqlite3.connect(config.database.path)) as db:
        requests, clock = db.execute("SELECT requests, ds_clock FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
    assert requests == 3 * n
    assert clock[:16] == simulator.control("world")["now"][:16]


def test_the_daemons_follow_up_writes_under_the_lock(simulator, tmp_path, monkeypatch):
    config = followup_config(tmp_path, simulator, reminders=True, classer=True)
    seen: dict[str, Any] = {}
    follow_up = service._after_sync

    async def watched(*args: Any) -> Any:
        holder = read_holder(config.state_dir)
        seen["holder"] = (holder.held, holder.what)
        seen["sync"] = sync_cli(config.path)  # an operator's one-shot sync, while the follow-up runs
        report = await follow_up(*args)
        seen["journal"] = len(journal(config))  # the follow-up's writes are committed...
        seen["held_after"] = read_holder(config.state_dir).held  # ...and the lock is still the daemon's
        return report

    monkeypatch.setattr(service, "_after_sync", watched)
    daemon = Daemon(config, load_token(config, environ={}), hooks=sync_hooks, notifier=Notifier({}))
    asyncio.run(daemon._run_job("sync", False))
    assert seen["holder"] == (True, "daemon")
    assert seen["sync"].returncode == 75, seen["sync"].stderr
    assert "daemon" in seen["sync"].stderr
    assert seen["journal"] > 0 and seen["held_after"] is True
    assert not read_holder(config.state_dir).held  # released once the run is reported
    assert daemon.failures == 0, daemon.last_result


class FakeTime:
    """A clock that moves only when the budget sleeps: a minute of budget costs no real minute."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class RecordingBudget(RequestBudget):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.starts: list[float] = []

    async def acquire(self) -> float:
        waited = await super().acquire()
        self.starts.append(self._sent[-1])
        return waited


def test_one_budget_per_process_and_token(simulator, tmp_path, monkeypatch):
    """Two runs of two démarches (or more) and their follow-ups draw from one budget: DS never gets more
    than requests_per_minute requests from this process in any 60 s."""
    per_minute = 5
    config = followup_config(tmp_path, simulator, reminders=True, classer=True, only_occitanie=False)
    text = config.path.read_text().replace("requests_per_minute = 400", f"requests_per_minute = {per_minute}")
    assert f"requests_per_minute = {per_minute}" in text
    config.path.write_text(text)
    from connector.config import load_config

    config = load_config(config.path)
    assert len(config.demarches) >= 2 and config.ds.requests_per_minute == per_minute
    fake = FakeTime()
    made: list[RecordingBudget] = []

    def budget(per_minute: int) -> RecordingBudget:
        made.append(RecordingBudget(per_minute, clock=fake.clock, sleep=fake.sleep))
        return made[-1]

    monkeypatch.setattr(service, "_budgets", {})
    monkeypatch.setattr(service, "RequestBudget", budget)
    simulator.control("requests/reset")
    first = run_once(config, full=True)
    second = run_once(config)
    assert first.followup is not None and first.followup.sent > 0 and second.followup is not None
    assert len(made) == 1  # one budget for the process and token, across runs and follow-ups
    starts = made[0].starts
    assert len(starts) == len(received(simulator)) == first.requests + second.requests
    assert len(starts) > 3 * per_minute
    for i in range(len(starts) - per_minute):
        assert starts[i + per_minute] - starts[i] >= 60.0, (i, starts[i:i + per_minute + 1])


def test_actions_plan_asks_ds_its_clock_once_and_keeps_nothing(simulator, tmp_path):
    config = followup_config(tmp_path, simulator, reminders=True, classer=True)
    run_once(config, full=True)
    with closing(sqlite3.connect(config.database.path)) as db:
        before = db.execute("SELECT count(*), total(id) FROM actions").fetchone()
        statuses = db.execute("SELECT dossier_number, status, updated_at FROM conventions ORDER BY 1").fetchall()
    simulator.control("requests/reset")
    out = subprocess.run([sys.executable, "-m", "connector", "actions", "plan", "--config", str(config.path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^DS clock: \d{4}-\d\d-\d\d", out.stdout, re.M)
    assert [r["operation"] for r in received(simulator)] == ["getDemarcheProbe"]
    with closing(sqlite3.connect(config.database.path)) as db:
        assert db.execute("SELECT count(*), total(id) FROM actions").fetchone() == before
        assert db.execute("SELECT dossier_number, status, updated_at FROM conventions ORDER BY 1").fetchall() == statuses


def test_operator_commands_wait_for_the_lock(simulator, tmp_path):
    """``actions cancel`` while a run holds the lock: it says whom it waits for, then does its work."""
    config = followup_config(tmp_path, simulator, reminders=True, classer=True,  # a window DS's clock is not in
                             deadline_extra="weekdays = ['sun']\nhours = [23, 24]\n")
    run_once(config, full=True)
    action = next(a for a in journal(config) if a["state"] == "planned")
    lock = InstanceLock(config.state_dir, holder="daemon")
    lock.acquire()
    try:
        child = subprocess.Popen([sys.executable, "-m", "connector", "actions", "cancel", str(action["id"]),
                                  "--config", str(config.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        assert child.stderr is not None
        line = child.stderr.readline()
        assert "waiting for pid" in line and "daemon" in line, line
        assert child.poll() is None
        assert journal(config, id=action["id"])[0]["state"] == action["state"]  # nothing written meanwhile
    finally:
        lock.release()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert journal(config, id=action["id"])[0]["state"] == "cancelled"


def test_check_waits_for_the_lock_then_checks(simulator, tmp_path):
    """``check`` while the daemon's run holds the lock: it says whom it waits for, then checks (it used
    to fail with 75: a short local command has nothing to gain from failing)."""
    config = simulator_config(tmp_path, simulator)
    run_once(config, full=True)
    lock = InstanceLock(config.state_dir, holder="daemon")
    lock.acquire()
    try:
        child = subprocess.Popen([sys.executable, "-m", "connector", "check", "--config", str(config.path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stderr is not None
        line = child.stderr.readline()
        assert "waiting for pid" in line and "daemon" in line, line
        assert child.poll() is None
    finally:
        lock.release()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert str(config.demarches[0].number) in out


@pytest.mark.parametrize("command", [
    ["sync"], ["sync", "--once"], ["check"], ["export", "ecoles"], ["actions", "plan"], ["actions", "run"],
])
def test_an_unknown_demarche_is_exit_78_naming_the_configured_ones(simulator, tmp_path, command):
    config = simulator_config(tmp_path, simulator)
    out = subprocess.run([sys.executable, "-m", "connector", *command, "--config", str(config.path),
                          "--demarche", "999999"], capture_output=True, text=True, timeout=60)
    assert out.returncode == EX_CONFIG, (out.stdout, out.stderr)
    assert "999999" in out.stderr and "Traceback" not in out.stderr
    for d in config.demarches:
        assert str(d.number) in out.stderr
    assert not config.database.path.exists()  # refused before anything was opened


def test_a_sync_of_one_demarche_follows_up_that_demarche_alone(simulator, tmp_path):
    """``sync --demarche N``: the follow-up acts on N only; another démarche's overdue conventions wait
    for a run that syncs it (this run did not refresh its mirror)."""
    quiet = followup_config(tmp_path, simulator, only_occitanie=False)  # actions off: everything mirrored
    run_once(quiet, full=True)
    config = followup_config(tmp_path, simulator, reminders=True, classer=True, only_occitanie=False)
    occitanie = next(d.number for d in config.demarches if simulator.world.demarches[d.number].kind == "occitanie")
    others = [d.number for d in config.demarches if d.number != occitanie]
    run_once(config, demarches=others)
    assert journal(config) == []  # Occitanie's overdue dossiers are in the mirror, but it was not synced
    run_once(config, demarches=[occitanie])
    assert journal(config) and {a["demarche_number"] for a in journal(config)} == {occitanie}
