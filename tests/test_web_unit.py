"""systemd/ds-connector-web.service: the daemon's user and sandbox, the web's credentials and no API
token, a valid command line, exposure ≤ 1.5 (with systemd-analyze, as in CI)."""

from __future__ import annotations

import re
import shlex
import subprocess

from click.testing import CliRunner
from test_systemd_units import ANALYZE, _copies, directives, needs_analyze, values

from connector.cli import cli
from connector.credentials import CREDENTIAL_NAME
from connector.web.auth import SECRET_FILE, USERS_FILE

UNIT = "ds-connector-web.service"


def test_same_user_web_credentials_and_never_the_token():
    assert values(UNIT, "User") == values("ds-connector.service", "User") == ["ds-connector"]
    assert values(UNIT, "LoadCredential") == [f"{USERS_FILE}:/etc/ds-connector/{USERS_FILE}",
                                              f"{SECRET_FILE}:/etc/ds-connector/{SECRET_FILE}"]
    assert not any(CREDENTIAL_NAME in v or "TOKEN" in v.upper() for _, v in directives(UNIT))
    assert values(UNIT, "ProtectSystem") == ["strict"]
    assert values(UNIT, "ReadWritePaths") == ["/var/lib/ds-connector"]  # SQLite's -wal/-shm (see the unit)
    assert values(UNIT, "StateDirectory") == []  # the daemon's unit owns the directory


def test_the_sandbox_is_the_daemons_plus_a_localhost_only_network():
    def sandbox(unit: str) -> dict[str, list[str]]:
        lines = directives(unit)
        start = next(i for i, (k, _) in enumerate(lines) if k == "NoNewPrivileges")
        out: dict[str, list[str]] = {}
        for k, v in lines[start:]:
            out.setdefault(k, []).append(v)
        return out

    web, daemon = sandbox(UNIT), sandbox("ds-connector.service")
    assert {k: v for k, v in daemon.items() if k != "WantedBy"}.items() <= web.items()
    assert web["IPAddressDeny"] == ["any"] and web["IPAddressAllow"] == ["localhost"]


def test_exec_start_is_a_valid_command_line():
    argv = shlex.split(values(UNIT, "ExecStart")[0])
    assert argv[:2] == ["/opt/ds-connector/venv/bin/ds-connector", "serve"]
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output


@needs_analyze
def test_exposure_is_at_most_1_5(tmp_path):
    path = _copies(tmp_path) / UNIT
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=15", str(path)],
                            capture_output=True, text=True)
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    print(f"{UNIT}: exposure {score and score[1]}")
    assert result.returncode == 0 and score and float(score[1]) <= 1.5, result.stdout[-3000:]
