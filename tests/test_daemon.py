"""``ds-connector daemon`` as systemd runs it: a child process, ``NOTIFY_SOCKET`` bound by the test,
the simulator as DS (issue 11 §1 and its "Tests")."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from daemonenv import DaemonProcess, NotifySocket
from simworld import visible_dossiers
from syncenv import start_sync_cli, sync_cli, write_config

from connector.daemon.heartbeat import HEARTBEAT_NAME

pytestmark = pytest.mark.slow  # daemon processes, signalled and killed


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket()
    yield sock
    sock.close()


def config_for(simulator, directory: Path, **options) -> Path:
    return write_config(directory, simulator.url, simulator.token, sorted(simulator.world.demarches), **options)


def db_rows(config_path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(config_path.parent / "ds-connector.sqlite")) as conn:
        return conn.execute(sql).fetchall()


def test_notify_ready_watchdog_status_stopping(simulator, tmp_path, notify):
    config = config_for(simulator, tmp_path / "site")
    daemon = DaemonProcess(config, notify=notify, watchdog_usec=1_000_000, interval_seconds=600)
    try:
        ready = notify.wait_for(lambda m: m == "READY=1", timeout=60)
        status = notify.wait_for(lambda m: m.startswith("STATUS=sync ok"), timeout=60)
        time.sleep(2.0)  # WATCHDOG_USEC=1 s: a ping every 0.5 s
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.stderr
    finally:
        daemon.stop()
    fields = notify.fields()
    print("notify messages seen:", fields)
    assert ready and "; next " in status and "démarches" in status
    assert fields.count("READY=1") == 1
    assert len(notify.fields("WATCHDOG=1")) >= 3
    assert "STOPPING=1" in fields
    assert fields.index("READY=1") < fields.index("STOPPING=1")
    beat = json.loads((config.parent / HEARTBEAT_NAME).read_text())
    assert beat["state"] == "stopped"


def slow_pages(simulator, delay: float = 0.4, count: int = 200) -> None:
    simulator.control("fault", kind="slow", delay=delay, count=count, operation="getDossiersPage")


def test_sigterm_mid_sync_exits_0_consistent_and_the_next_start_resumes(make_simulator, tmp_path, notify):
    simulator = make_simulator(dossiers=150)
    config = config_for(simulator, tmp_path / "site", page_size=5)
    slow_pages(simulator)
    daemon = DaemonProcess(config, notify=notify, interval_seconds=600)
    try:
        # The first page is stored and the second one asked (0.4 s): SIGTERM now lets that one
        # commit and asks no third, well inside the first démarche's pass.
        daemon.wait_event("sync.page_committed", count=1)
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.stderr
        took = time.monotonic() - sent
    finally:
        daemon.stop()
    print(f"SIGTERM to exit: {took:.2f} s")
    assert "STOPPING=1" in notify.fields()
    assert daemon.events("sync.stopped") and daemon.events("daemon.stopped")[0]["exit_code"] == 0
    assert "Traceback" not in daemon.stderr
    committed = sum(e["nodes"] for e in daemon.events("sync.page_committed") if e.get("stream") == "dossiers")
    assert db_rows(config, "PRAGMA integrity_check") == [("ok",)]
    assert db_rows(config, "SELECT count(*) FROM dossiers") == [(committed,)]  # every committed page, no more
    assert db_rows(config, "SELECT status FROM sync_runs") == [("stopped",)]
    mid_pass = db_rows(config, "SELECT demarche_number FROM sync_state WHERE stream = 'dossiers' AND after_cursor IS NOT NULL")
    assert mid_pass, (db_rows(config, "SELECT * FROM sync_state"), [(e.get("demarche"), e.get("stream"), e.get("nodes"), e.get("last")) for e in daemon.events("sync.page_committed")])

    simulator.control("faults/clear")
    again = DaemonProcess(config, interval_seconds=600)
    try:
        again.wait_event("daemon.job_done", timeout=120)
    finally:
        assert again.stop() == 0
    assert again.events("sync.stream_resumed")
    for number in simulator.world.demarches:
        expected = len(visible_dossiers(simulator.world, number))
        assert db_rows(config, f"SELECT count(*) FROM dossiers WHERE demarche_number = {number}") == [(expected,)]
    assert [s for (s,) in db_rows(config, "SELECT status FROM sync_runs ORDER BY id")] == ["stopped", "ok"]


def test_runs_at_the_interval_and_never_overlaps(simulator, tmp_path):
    config = config_for(simulator, tmp_path / "site", page_size=5)
    slow_pages(simulator, delay=0.3, count=10_000)  # a sync lasts several seconds, the interval is 1 s
    daemon = DaemonProcess(config, interval_seconds=1.0)
    try:
        daemon.wait_event("daemon.job_done", count=3, timeout=180)
    finally:
        assert daemon.stop() == 0
    sequence = [e["event"] for e in daemon.lines if e.get("event") in ("daemon.job_started", "daemon.job_done")]
    assert sequence[:6] == ["daemon.job_started", "daemon.job_done"] * 3
    assert all(a != b for a, b in zip(sequence, sequence[1:])), sequence  # started/done alternate
    assert daemon.events("daemon.job_skipped"), "runs due while one was going are skipped (max_instances=1)"
    runs = db_rows(config, "SELECT started_at, finished_at FROM sync_runs WHERE status != 'stopped' ORDER BY id")
    assert len(runs) >= 3
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(runs, runs[1:]))  # one ends before the next starts


def test_a_manual_sync_during_a_daemon_run_exits_75_naming_the_daemon(simulator, tmp_path):
    config = config_for(simulator, tmp_path / "site", page_size=5)
    slow_pages(simulator)
    daemon = DaemonProcess(config, interval_seconds=600)
    try:
        daemon.wait_event("sync.page_committed")
        manual = sync_cli(config)
        assert manual.returncode == 75, manual.stderr
        assert f"pid {daemon.proc.pid}, daemon" in manual.stderr
        assert "Traceback" not in manual.stderr
    finally:
        assert daemon.stop() == 0


def test_a_daemon_job_waits_for_a_manual_sync_then_runs(simulator, tmp_path):
    config = config_for(simulator, tmp_path / "site", page_size=5)
    slow_pages(simulator)
    log = (tmp_path / "manual.log").open("wb")
    manual = start_sync_cli(config, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"sync.page_committed" not in (tmp_path / "manual.log").read_bytes():
            assert manual.poll() is None and time.monotonic() < deadline, (tmp_path / "manual.log").read_text()
            time.sleep(0.05)
        daemon = DaemonProcess(config, interval_seconds=600)
        try:
            waiting = daemon.wait_event("daemon.waiting_for_lock")[0]
            assert waiting["holder_pid"] == manual.pid and waiting["holder"] == "sync"
            assert manual.wait(120) == 0
            daemon.wait_event("daemon.job_done", timeout=120)
        finally:
            assert daemon.stop() == 0
    finally:
        if manual.poll() is None:
            manual.kill()
        log.close()
    runs = db_rows(config, "SELECT kind, status, started_at, finished_at FROM sync_runs ORDER BY id")
    assert [(k, s) for k, s, _, _ in runs] == [("once", "ok"), ("daemon", "ok")]
    assert runs[0][3] <= runs[1][2]  # the daemon's run started after the manual one ended


def test_sighup_with_a_bad_config_keeps_the_old_one_and_a_good_one_replaces_it(simulator, tmp_path, notify):
    config = config_for(simulator, tmp_path / "site")
    daemon = DaemonProcess(config, notify=notify, interval_seconds=1.0)
    good = config.read_text()
    try:
        daemon.wait_event("daemon.job_done")
        config.write_text(good.replace("[sync]", "[sync]\ninterval_minutes = 0\npage_sise = 7")
                          .replace('attachments = "messages"', 'attachments = "some"'))
        daemon.signal(signal.SIGHUP)
        invalid = daemon.wait_event("daemon.config_invalid")[0]
        done = len(daemon.events("daemon.job_done"))
        daemon.wait_event("daemon.job_done", count=done + 2, timeout=60)  # still syncing, old config
        config.write_text(good.replace('attachments = "messages"', 'attachments = "none"'))
        daemon.signal(signal.SIGHUP)
        daemon.wait_event("daemon.config_reloaded")
    finally:
        assert daemon.stop() == 0
    problems = "\n".join(invalid["problems"])
    assert "interval_minutes: 0 is out of range" in problems
    assert "page_sise: unknown key (did you mean 'page_size'?)" in problems
    assert "attachments: 'some' is not one of" in problems
    assert invalid["kept"] == "the previous configuration"
    assert any(m.startswith("STATUS=config reload failed (3 problem(s)), old config kept") for m in notify.fields())


def test_a_refused_token_exits_78(simulator, tmp_path, notify):
    config = write_config(tmp_path / "site", simulator.url, "bm90LWEtdG9rZW47bm9wZQ==", sorted(simulator.world.demarches))
    daemon = DaemonProcess(config, notify=notify, interval_seconds=600)
    assert daemon.wait(60) == 78
    assert daemon.events("daemon.permanent_error")
    assert "READY=1" in notify.fields()


def test_a_bad_config_exits_78_before_ready(tmp_path, notify):
    config = tmp_path / "config.toml"
    config.write_text("[sync]\ninterval_minutes = -1\n")
    daemon = DaemonProcess(config, notify=notify, interval_seconds=None)
    assert daemon.wait(60) == 78
    assert "interval_minutes: -1 is out of range" in daemon.stderr
    assert "no démarche configured" in daemon.stderr
    assert "Traceback" not in daemon.stderr
    assert "READY=1" not in notify.fields()


def test_a_reload_with_a_shorter_interval_brings_the_next_sync_forward(simulator, tmp_path):
    """``systemctl reload`` after ``interval_minutes`` 60 → 2: the next sync comes 2 minutes after
    the latest one started, not at the old time an hour later (nor 2 minutes after the reload)."""
    from datetime import datetime, timedelta

    config = config_for(simulator, tmp_path / "site")
    hourly = config.read_text().replace("[sync]", "[sync]\ninterval_minutes = 60")
    config.write_text(hourly)
    daemon = DaemonProcess(config, interval_seconds=None)
    try:
        started = datetime.fromisoformat(daemon.wait_event("daemon.job_started")[0]["timestamp"])
        daemon.wait_event("daemon.job_done")
        time.sleep(1.0)  # the reload comes later than the sync's start
        config.write_text(hourly.replace("interval_minutes = 60", "interval_minutes = 2"))
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_event("daemon.config_reloaded")[0]
    finally:
        assert daemon.stop() == 0
    next_sync = datetime.fromisoformat(reloaded["next_sync_at"])
    assert reloaded["interval_minutes"] == 2
    assert abs(next_sync - (started + timedelta(minutes=2))) < timedelta(seconds=2), (started, next_sync)


def test_the_daemon_survives_a_refusing_ds_and_tries_again_on_its_schedule(simulator, tmp_path):
    config = config_for(simulator, tmp_path / "site")
    simulator.control("refuse", seconds=600)
    daemon = DaemonProcess(config, interval_seconds=600)
    try:
        failed = daemon.wait_event("daemon.job_failed", timeout=90)[0]
        backoff = daemon.wait_event("daemon.backoff")[0]
        assert daemon.proc.poll() is None  # still running: not a permanent error
    finally:
        assert daemon.stop() == 0
    assert failed["error"] == f"DS did not answer at {simulator.url}: connection refused; is [ds] url right?"
    assert failed["error_class"] == "DsUnreachable"
    assert backoff["retry_in_seconds"] == 60  # sooner than the 600 s interval
