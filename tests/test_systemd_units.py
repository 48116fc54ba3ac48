"""The units in systemd/ are code: parsed, cross-checked with the CLI and the daemon, and (when
systemd-analyze is installed, as in CI) verified with no warning and scored ≤ 1.5 exposure."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import cli
from connector.credentials import CREDENTIAL_NAME
from connector.daemon.scheduler import DRAIN_SECONDS

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SERVICES = ("ds-connector.service", "ds-connector-sync.service")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (.ci/run installs it)")
SANDBOX_START = "NoNewPrivileges"


def directives(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


def values(name: str, key: str) -> list[str]:
    return [v for k, v in directives(name) if k == key]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min|h)?", value)
    assert match, value
    return int(match[1]) * {"s": 1, None: 1, "min": 60, "h": 3600}[match[2]]


def test_the_daemon_unit_speaks_notify_and_never_restarts_a_permanent_error():
    unit = "ds-connector.service"
    assert values(unit, "Type") == ["notify"]
    assert values(unit, "Restart") == ["on-failure"]
    # 78: the daemon's permanent errors; 243: systemd's own CREDENTIALS failure (a missing token file)
    assert values(unit, "RestartPreventExitStatus") == ["78 243"]
    assert values(unit, "WatchdogSec")
    assert seconds(values(unit, "TimeoutStopSec")[0]) > DRAIN_SECONDS  # the drain ends before SIGKILL
    assert values(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]


@pytest.mark.parametrize("unit", SERVICES)
def test_each_service_gets_the_token_as_a_credential_and_runs_as_the_sysusers_user(unit):
    assert values(unit, "LoadCredential") == [f"{CREDENTIAL_NAME}:/etc/ds-connector/{CREDENTIAL_NAME}"]
    sysusers = (UNITS / "sysusers.d" / "ds-connector.conf").read_text().splitlines()
    users = [line.split()[1] for line in sysusers if line.startswith("u ")]
    assert values(unit, "User") == users == ["ds-connector"]
    assert values(unit, "StateDirectory") == ["ds-connector"]
    assert not any(k == "Environment" and "TOKEN" in v.upper() for k, v in directives(unit))
    assert "--token" not in values(unit, "ExecStart")[0]


@pytest.mark.parametrize("unit", SERVICES)
def test_each_exec_start_is_a_valid_command_line(unit):
    argv = shlex.split(values(unit, "ExecStart")[0])
    assert argv[0] == "/opt/ds-connector/venv/bin/ds-connector"
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_the_one_shot_service_has_the_daemons_sandbox():
    def sandbox(unit: str) -> list[tuple[str, str]]:
        lines = directives(unit)
        start = next(i for i, (k, _) in enumerate(lines) if k == SANDBOX_START)
        return [(k, v) for k, v in lines[start:] if k != "WantedBy"]  # [Install] differs, of course

    assert sandbox("ds-connector-sync.service") == sandbox("ds-connector.service")
    assert values("ds-connector-sync.service", "Type") == ["oneshot"]
    assert values("ds-connector-sync.timer", "Unit") == ["ds-connector-sync.service"]


def _copies(tmp_path: Path) -> Path:
    """The units with ExecStart= pointing at a binary this machine has (docs/operations.md §1.4)."""
    for path in UNITS.glob("*.service"):
        text = re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/usr/bin/true", path.read_text(encoding="utf-8"))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    for path in UNITS.glob("*.timer"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@needs_analyze
def test_systemd_analyze_verify_prints_nothing(tmp_path):
    copies = _copies(tmp_path)
    names = sorted(p.name for p in copies.iterdir())
    result = subprocess.run([ANALYZE, "verify", *names], cwd=copies, capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_verify_would_catch_a_typo(tmp_path):
    """The check above is not vacuous: a misspelt directive is output (verify only warns)."""
    copies = _copies(tmp_path)
    unit = copies / "ds-connector.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSytem="))
    result = subprocess.run([ANALYZE, "verify", unit.name], cwd=copies, capture_output=True, text=True)
    assert "Unknown key 'ProtectSytem'" in result.stdout + result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", SERVICES)
def test_exposure_is_at_most_1_5(tmp_path, unit):
    path = _copies(tmp_path) / unit
    # --threshold is on the internal 0-100 scale in systemd 252 (docs/operations.md §1.4): 15 is "1.5".
    result = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=15", str(path)],
                            capture_output=True, text=True)
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    print(f"{unit}: exposure {score and score[1]}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert score and float(score[1]) <= 1.5


@needs_analyze
def test_sysusers_file_parses():
    result = subprocess.run(["systemd-sysusers", "--dry-run", str(UNITS / "sysusers.d" / "ds-connector.conf")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
