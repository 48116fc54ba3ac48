"""Logs (issue 11 §4): the token never shows, not in a traceback's locals, not in a repr, not in any
file a full scenario writes."""

from __future__ import annotations

import io
import json
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
