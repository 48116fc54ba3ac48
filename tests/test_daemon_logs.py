"""Logs and the terminal (issue 11 §4): the progress line and log lines never share a line; the token
never shows, not in a traceback's locals, not in a repr, not in any file a full scenario writes."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import structlog

from daemonenv import DaemonProcess, NotifySocket, child_env
from syncenv import write_config

from connector import logs
from connector.commands.sync import TerminalProgress
from connector.credentials import ApiToken

pytestmark = pytest.mark.slow  # daemon processes and a pseudo-terminal


@pytest.fixture(autouse=True)
def restore_logging():
    """logs.configure() is global: put back what the other tests run with (pytest's streams close)."""
    import logging

    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:], root.level = handlers, level


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(raw: str) -> list[str]:
    """What a terminal shows for this output: ``\\r`` goes to column 0, ``ESC[2K`` clears the line."""
    lines, current = [], ""
    for token in re.split(r"(\r|\n|\x1b\[2K)", raw):
        if token == "\r":
            continue  # column 0: the next text overwrites, and we only ever write after a clear
        if token == "\x1b[2K":
            current = ""
        elif token == "\n":
            lines.append(current)
            current = ""
        else:
            current += token
    return lines + ([current] if current else [])


def test_a_log_line_clears_the_progress_line_which_is_redrawn_below():
    out = FakeTerminal()
    terminal = logs.TerminalLines(out)
    logs.configure(level="info", json=False, stream=terminal)
    if True:
        terminal.progress("démarche 1: 3 pages, 300 dossiers (300 new, 0 updated), 120 dossiers/s")
        structlog.get_logger("t").warning("store.tombstone_reinserted", dossier=7)
        terminal.progress("démarche 1: 4 pages, 400 dossiers (400 new, 0 updated), 130 dossiers/s")
        import logging

        logging.getLogger("gql.transport.aiohttp").error("a foreign logger's line")
        terminal.done()
    shown = screen(out.getvalue())
    assert len(shown) == 3, shown
    assert "store.tombstone_reinserted" in shown[0] and "dossiers/s" not in shown[0]
    assert "a foreign logger's line" in shown[1] and "dossiers/s" not in shown[1]
    assert shown[2] == "démarche 1: 4 pages, 400 dossiers (400 new, 0 updated), 130 dossiers/s"


def test_sync_on_a_real_terminal_never_glues_a_log_line_to_the_progress_line(simulator, tmp_path):
    config = write_config(tmp_path / "site", simulator.url, simulator.token, sorted(simulator.world.demarches),
                          page_size=5)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "sync", "--config", str(config), "-v"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=child_env())
    os.close(slave)
    raw = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        raw += chunk
    assert proc.wait(60) == 0
    os.close(master)
    shown = screen(raw.decode(errors="replace").replace("\r\n", "\n"))
    logged = [s for s in shown if "sync.page_committed" in s]
    progress = [s for s in shown if "dossiers/s" in s]
    assert logged and progress, shown[:20]
    assert not [s for s in shown if "dossiers/s" in s and "sync." in s], "a log line shares the progress line"


def test_a_traceback_never_shows_the_tokens_locals(capsys):
    secret = "c2VjcmV0LXRva2VuLWZvci10ZXN0cw=="
    out = io.StringIO()
    logs.configure(level="info", json=True, stream=out)

    def fails(token: ApiToken) -> None:
        revealed = token.reveal()  # a local holding the secret
        raise RuntimeError(f"boom {len(revealed)}")

    try:
        fails(ApiToken(secret, "test"))
    except RuntimeError:
        structlog.get_logger("t").exception("daemon.job_crashed", token=secret, api=ApiToken(secret, "t"))
    text = out.getvalue()
    assert "RuntimeError" in text and "boom" in text
    assert secret not in text
    assert "ApiToken(***)" in text


def scenario_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_a_full_scenario_never_writes_the_token_anywhere(make_simulator, tmp_path):
    simulator = make_simulator(dossiers=60)
    token = simulator.token
    secrets = {token, token.rstrip("=")}
    import base64

    secrets.add(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(";")[-1])  # the secret part
    site = tmp_path / "site"
    config = write_config(site, simulator.url, token, sorted(simulator.world.demarches), page_size=10,
                          extra="interval_minutes = 10")
    outputs: list[str] = []
    notify = NotifySocket()
    daemon = DaemonProcess(config, notify=notify, watchdog_usec=1_000_000, interval_seconds=1.5)
    try:
        daemon.wait_event("daemon.job_done", count=2)
        for args in (["status"], ["status", "--json"], ["status", "--format", "prometheus"], ["check-config"]):
            result = subprocess.run([sys.executable, "-m", "connector.cli", *args, "--config", str(config)],
                                    capture_output=True, text=True, env=child_env(), timeout=60)
            outputs += [result.stdout, result.stderr]
        manual = subprocess.run([sys.executable, "-m", "connector.cli", "sync", "--wait", "--full", "--config",
                                 str(config)], capture_output=True, text=True, env=child_env(), timeout=300)
        assert manual.returncode == 0, manual.stderr
        outputs += [manual.stdout, manual.stderr]
        config.write_text(config.read_text() + "\n[bogus]\ntoken = \"x\"\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_event("daemon.config_invalid")
    finally:
        code = daemon.stop()
        notify.close()
    assert code == 0
    outputs += ["".join(daemon.raw_stdout), daemon.stderr, "\n".join(notify.fields())]
    # an export of the whole database, as an operator would make one
    with closing(sqlite3.connect(site / "ds-connector.sqlite")) as conn:
        (tmp_path / "export.sql").write_text("\n".join(conn.iterdump()), encoding="utf-8")
    files = scenario_files(site) + [tmp_path / "export.sql"]
    assert len(files) > 5
    for secret in secrets:
        for text in outputs:
            assert secret not in text
        for path in files:
            if path.name == "ds-api-token":
                continue  # the operator's own token file
            assert secret.encode() not in path.read_bytes(), f"the token is in {path}"
    assert json.loads(outputs[2])["health"]["state"] in ("OK", "WARNING")
