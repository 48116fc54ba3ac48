"""``ds-connector status`` (issue 11 §3): right answers and exit codes on a missing, empty, synced,
busy, failed and later-issue database, with the daemon alive, dead or never started."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemonenv import DaemonProcess, child_env
from simworld import visible_dossiers
from syncenv import run_once, simulator_config, start_sync_cli, sync, write_config

from connector.config import load_config
from connector.ds import retry
from connector.lock import LOCK_NAME
from connector.status import CRITICAL, OK, UNKNOWN, WARNING, ds_today, gather
from connector.store import open_db

TOP_KEYS = {"version", "generated_at", "config", "database", "daemon", "lock", "token", "interval_minutes",
            "running_run", "last_run", "rate_limited_requests", "ds_clock", "demarches", "renewals", "health"}
PARIS = ZoneInfo("Europe/Paris")
DEMARCHE_KEYS = {"number", "label", "title", "configured", "last_success_at", "last_success_age_seconds", "last_run",
                 "dossiers", "new_24h", "trash", "quarantined", "files", "anomalies", "conventions", "actions"}


def status_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "connector.cli", "status", "--config", str(config_path), *args],
                            capture_output=True, text=True, timeout=60, env=child_env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def status_json(config_path: Path) -> tuple[int, dict]:
    result = status_cli(config_path, "--json")
    return result.returncode, json.loads(result.stdout)


def reasons(status: dict) -> list[str]:
    return [r["reason"] for r in status["health"]["reasons"]]


def test_no_database_is_unknown_and_creates_nothing(simulator, tmp_path):
    config = write_config(tmp_path / "site", simulator.url, simulator.token, [1])
    before = sorted(p.name for p in config.parent.iterdir())
    code, s = status_json(config)
    assert code == UNKNOWN == s["health"]["code"]
    assert s["database"]["readable"] is False and "No database" in s["database"]["error"]
    assert sorted(p.name for p in config.parent.iterdir()) == before
    text = status_cli(config)
    assert text.returncode == UNKNOWN and text.stdout.startswith("ds-connector status: UNKNOWN")


def test_empty_database_is_critical_never_synced(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    open_db(config.database.path).close()
    code, s = status_json(config.path)
    assert code == CRITICAL
    assert set(s) == TOP_KEYS
    assert [d["number"] for d in s["demarches"]] == [d.number for d in config.demarches]
    assert all(set(d) == DEMARCHE_KEYS for d in s["demarches"])
    assert reasons(s) == [f"démarche {d.number}: no successful sync yet" for d in config.demarches]
    assert s["last_run"] is None and s["daemon"]["running"] is False and s["lock"]["held"] is False
    assert all(d["dossiers"] == {"total": 0, "by_state": {}} for d in s["demarches"])
    # the tables of the forms and deadlines issues exist (their migrations ran) and are empty
    assert all(d["anomalies"] is not None and d["conventions"] is not None and d["actions"] is not None
               for d in s["demarches"])


def test_after_a_manual_sync_only_ok_with_the_mirrors_figures(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    report = sync(config)
    assert report.status == "ok"
    code, s = status_json(config.path)
    assert code == OK, reasons(s)
    assert s["daemon"] == {**s["daemon"], "running": False, "seen": False, "next_run_at": None}
    assert s["last_run"]["status"] == "ok" and s["last_run"]["kind"] == "once"
    with closing(sqlite3.connect(config.database.path)) as conn:
        for d in s["demarches"]:
            states = dict(conn.execute("SELECT state, count(*) FROM dossiers WHERE demarche_number = ? GROUP BY state",
                                       [d["number"]]))
            assert d["dossiers"]["by_state"] == states
            assert d["dossiers"]["total"] == len(visible_dossiers(simulator.world, d["number"]))
            assert d["last_run"] == {**d["last_run"], "result": "ok", "error": None}
            assert d["last_success_age_seconds"] < 120
    text = status_cli(config.path).stdout
    assert text.startswith("ds-connector status: OK\n")
    assert "Daemon:    not running (never started with this state directory)" in text


def test_prometheus_format(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    sync(config)
    result = status_cli(config.path, "--format", "prometheus")
    assert result.returncode == OK
    samples: dict[str, list[str]] = {}
    declared = []
    for line in result.stdout.splitlines():
        if line.startswith("# TYPE "):
            declared.append(line.split()[2])
        elif not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            float(value)  # every sample has a number
            name = name_labels.split("{")[0]
            assert name == declared[-1], f"{name} sampled outside its block"
            samples.setdefault(name, []).append(name_labels)
    assert len(declared) == len(set(declared))
    number = config.demarches[0].number
    assert f'ds_connector_last_success_timestamp_seconds{{demarche="{number}"}}' in samples[
        "ds_connector_last_success_timestamp_seconds"]
    assert any(f'demarche="{number}",state="' in s for s in samples["ds_connector_dossiers"])
    for name in ("ds_connector_health", "ds_connector_rate_limited_requests_total", "ds_connector_quarantined_dossiers"):
        assert name in samples


HOLD_AND_DIE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from connector.lock import InstanceLock
    lock = InstanceLock(Path(sys.argv[1]), holder="daemon")
    lock.acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


def test_stale_lock_of_a_killed_process_reads_free_with_its_pid(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    sync(config)
    child = subprocess.Popen([sys.executable, "-c", HOLD_AND_DIE, str(config.state_dir)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "locked\n"
    code, s = status_json(config.path)
    assert s["lock"] == {"held": True, "pid": child.pid, "holder": "daemon", "stale": False, "stale_pid": None}
    child.kill()
    child.wait()
    assert (config.state_dir / LOCK_NAME).read_text().startswith(str(child.pid))  # left behind
    code, s = status_json(config.path)
    assert code == OK
    assert s["lock"] == {"held": False, "pid": None, "holder": None, "stale": True, "stale_pid": child.pid}
    assert f"stale pid {child.pid} in the lock file" in status_cli(config.path).stdout


def test_status_during_a_running_sync_answers_at_once_without_the_lock(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator, page_size=5)
    sync(config)
    # Démarches sync concurrently and a --full after a sync asks few pages: slow enough to be caught.
    simulator.control("fault", kind="slow", delay=3.0, count=100, operation="getDossierListingPage")
    simulator.control("fault", kind="slow", delay=3.0, count=100, operation="getDossiersPage")
    log = (tmp_path / "sync.log").open("wb")
    child = start_sync_cli(config.path, "--full", stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"sync.started" not in (tmp_path / "sync.log").read_bytes():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        started = time.monotonic()
        code, s = status_json(config.path)
        took = time.monotonic() - started
        assert child.poll() is None, "the sync ended before status ran"
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)
        log.close()
    print(f"status --json during a sync (child process, Python start included): {took:.2f} s")
    assert code == OK, reasons(s)
    assert s["lock"]["held"] and s["lock"]["pid"] == child.pid and s["lock"]["holder"] == "sync", s["lock"]
    assert s["running_run"]["status"] == "running" and s["running_run"]["kind"] == "full"
    assert s["last_run"]["status"] == "ok"


@pytest.mark.slow  # a daemon process, killed
def test_daemon_alive_then_killed(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    daemon = DaemonProcess(config.path, interval_seconds=600)
    try:
        daemon.wait_event("daemon.job_done")
        code, s = status_json(config.path)
        assert code == OK, reasons(s)
        assert s["daemon"]["running"] and s["daemon"]["pid"] == daemon.proc.pid and s["daemon"]["state"] == "idle"
        next_run = datetime.fromisoformat(s["daemon"]["next_run_at"])
        assert timedelta(seconds=500) < next_run - datetime.now(timezone.utc) <= timedelta(seconds=600)
        assert s["last_run"]["kind"] == "daemon"
        daemon.proc.kill()
        daemon.wait()
    finally:
        daemon.stop()
    code, s = status_json(config.path)
    assert code == OK  # the mirror is fresh; staleness is judged on the syncs, not on the process
    assert s["daemon"]["running"] is False and s["daemon"]["state"] == "dead" and s["daemon"]["next_run_at"] is None
    assert "Daemon:    not running (dead" in status_cli(config.path).stdout


def test_a_failed_last_run_is_critical_with_its_error(simulator, tmp_path, monkeypatch):
    config = simulator_config(tmp_path / "site", simulator)
    sync(config)
    monkeypatch.setattr(retry, "MAX_ATTEMPTS", 2)
    simulator.control("fault", kind="http_error", status=503, count=10_000, operation="getDeletedDossiersPage")
    report = run_once(config).sync  # what sync and the daemon run
    simulator.control("faults/clear")
    assert report.status == "failed" and report.exit_code == 75
    code, s = status_json(config.path)
    assert code == CRITICAL
    for d in s["demarches"]:
        assert d["last_run"]["result"] == "failed"
        assert d["last_run"]["error"].startswith("PageFailed: ") and "503" in d["last_run"]["error"]
    assert sum("last run failed" in r for r in reasons(s)) == len(config.demarches)
    assert "last run failed: PageFailed" in status_cli(config.path).stdout

    report = run_once(config).sync
    assert report.status == "ok"
    assert status_json(config.path)[0] == OK


def test_staleness_warning_then_critical_and_token_expiry(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator, extra="interval_minutes = 10")
    sync(config)
    now = datetime.now(timezone.utc)
    assert gather(config, now)["health"]["code"] == OK
    assert gather(config, now + timedelta(minutes=25))["health"]["code"] == OK
    later = gather(config, now + timedelta(minutes=35))
    assert later["health"]["code"] == WARNING and "3 intervals" in reasons(later)[0]
    assert gather(config, now + timedelta(hours=25))["health"]["code"] == CRITICAL

    # days left from today in Paris (the machine's clock may be on UTC: from 23:00 UTC it is tomorrow)
    now = datetime.now(timezone.utc)
    today = now.astimezone(PARIS).date()
    text = config.path.read_text().replace("[ds]", f"[ds]\ntoken_expires_on = {today + timedelta(days=20)}")
    config.path.write_text(text)
    expiring = gather(load_config(config.path), now)
    assert expiring["health"]["code"] == WARNING and expiring["token"]["days_left"] == 20
    late = gather(load_config(config.path), datetime(today.year, today.month, today.day, 23, 30, tzinfo=PARIS))
    assert late["token"]["days_left"] == 20  # 22:30 or 21:30 UTC: the same Paris day
    tomorrow = today + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 0, 30, tzinfo=PARIS)
    assert gather(load_config(config.path), midnight)["token"]["days_left"] == 19  # the UTC day is still today
    config.path.write_text(text.replace(str(today + timedelta(days=20)), str(today - timedelta(days=1))))
    code, expired = status_json(config.path)
    assert code == CRITICAL and any("expired" in r for r in reasons(expired))


def test_quarantine_is_a_warning(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    sync(config)
    db = open_db(config.database.path)
    from connector.store import quarantine

    number = config.demarches[0].number
    quarantine(db, number, None, "a page DS could not serve", None)
    db.close()
    code, s = status_json(config.path)
    assert code == WARNING and reasons(s) == [f"démarche {number}: 1 in quarantine"]


LATER_TABLES = """
DROP TABLE IF EXISTS anomalies; DROP TABLE IF EXISTS conventions; DROP TABLE IF EXISTS actions;
CREATE TABLE anomalies (id INTEGER PRIMARY KEY, demarche_number INTEGER, dossier_number INTEGER, code TEXT,
                        severity TEXT, resolved_at TEXT);
CREATE TABLE conventions (demarche_number INTEGER, dossier_number INTEGER, status TEXT, deadline TEXT);
CREATE TABLE actions (id INTEGER PRIMARY KEY, demarche_number INTEGER, dossier_number INTEGER, kind TEXT, state TEXT);
"""


def test_the_tables_of_later_issues_are_read_when_they_exist(simulator, tmp_path):
    config = simulator_config(tmp_path / "site", simulator)
    sync(config)
    a, b = config.demarches[0].number, config.demarches[1].number
    today = date.today()
    with closing(sqlite3.connect(config.database.path)) as conn, conn:
        conn.executescript(LATER_TABLES)
        conn.executemany("INSERT INTO anomalies (demarche_number, dossier_number, code, severity, resolved_at) "
                         "VALUES (?, 1, 'x', ?, ?)", [(a, "error", None), (a, "warning", None), (a, "error", "2026-01-01")])
        conn.executemany("INSERT INTO conventions VALUES (?, 1, ?, ?)", [
            (a, "awaiting", (today + timedelta(days=3)).isoformat()),    # awaited, due soon
            (a, "awaiting", (today + timedelta(days=40)).isoformat()),   # awaited, not soon
            (a, "awaiting", (today - timedelta(days=2)).isoformat()),    # awaiting as saved: not also overdue
            (a, "overdue", (today - timedelta(days=9)).isoformat()),
            (a, "received_on_time", today.isoformat()),
        ])
        conn.executemany("INSERT INTO actions (demarche_number, dossier_number, kind, state) VALUES (?, 1, 'k', ?)",
                         [(a, "planned"), (a, "planned"), (a, "failed"), (b, "sent")])
    code, s = status_json(config.path)
    assert code == OK, reasons(s)
    first, second = s["demarches"][0], s["demarches"][1]
    assert first["anomalies"] == {"open": 2, "by_severity": {"error": 1, "warning": 1}}
    assert first["conventions"] == {"awaiting": 3, "due_within_15_days": 1, "overdue": 1}
    assert first["actions"] == {"planned": 2, "sending": 0, "sent": 0, "failed": 1, "unknown": 0, "cancelled": 0}
    assert second["conventions"] == {"awaiting": 0, "due_within_15_days": 0, "overdue": 0}
    assert second["anomalies"] == {"open": 0, "by_severity": {}}

    with closing(sqlite3.connect(config.database.path)) as conn, conn:
        conn.execute("INSERT INTO actions (demarche_number, dossier_number, kind, state) VALUES (?, 2, 'k', 'unknown')", [b])
    code, s = status_json(config.path)
    assert code == CRITICAL and reasons(s) == [f"démarche {b}: 1 action(s) in unknown state (check DS)"]
    prom = status_cli(config.path, "--format", "prometheus").stdout
    assert f'ds_connector_actions{{demarche="{b}",state="unknown"}} 1' in prom
    assert f'ds_connector_conventions{{demarche="{a}",status="overdue"}} 1' in prom


def test_status_and_actions_plan_count_the_conventions_alike(make_simulator, tmp_path):
    """On the demo's world (seed 2026, DS's clock months behind this machine's): ``status`` shows the
    conventions as ``actions plan`` counts them, awaiting and overdue never both."""
    from followup_env import followup_config, occitanie, sync_and_act

    simulator = make_simulator(seed=2026, dossiers=300)
    config = followup_config(tmp_path, simulator)
    sync_and_act(config)
    number = occitanie(simulator.world)
    code, s = status_json(config.path)
    conventions = next(d for d in s["demarches"] if d["number"] == number)["conventions"]
    plan = subprocess.run([sys.executable, "-m", "connector.cli", "actions", "plan", "--config", str(config.path)],
                          capture_output=True, text=True, timeout=120, env=child_env())
    assert plan.returncode == 0, plan.stderr
    line = next(l for l in plan.stdout.splitlines() if l.startswith(f"démarche {number} "))
    planned = {status: int(n) for n, status in re.findall(r"(\d+) ([a-z_]+)", line.split(":", 1)[1])}
    assert planned.get("overdue", 0) > 0 and planned.get("awaiting", 0) > 0, line  # both figures are exercised
    assert conventions["awaiting"] == planned["awaiting"] and conventions["overdue"] == planned["overdue"], line
    assert conventions["due_within_15_days"] <= conventions["awaiting"]
    with closing(sqlite3.connect(config.database.path)) as conn:
        total = conn.execute("SELECT count(*) FROM conventions WHERE demarche_number = ?", [number]).fetchone()[0]
    assert sum(planned.values()) == total  # one status per convention: no overlap
    text = status_cli(config.path).stdout
    assert (f"conventions: {planned['awaiting']} awaiting (of which {conventions['due_within_15_days']} due "
            f"within 15 days), {planned['overdue']} overdue") in text


def test_the_status_day_is_ds_clocks_paris_day_else_this_machines():
    now = datetime(2026, 12, 4, 23, 30, tzinfo=timezone.utc)  # 00:30 on the 5th in Paris
    assert ds_today("2026-10-14T22:30:00+00:00", now) == date(2026, 10, 15)
    assert ds_today("2026-10-15T00:30:00+02:00", now) == date(2026, 10, 15)
    assert ds_today(None, now) == date(2026, 12, 5)  # no run recorded DS's clock yet
