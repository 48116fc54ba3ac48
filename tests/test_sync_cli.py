"""``ds-connector sync`` as an operator meets it (issue 4 §5-6): the command run as a child process
against the simulator, for each failure an operator can cause and for a good run.

Every failure must give its exit code (78 EX_CONFIG: fix something first; 75 EX_TEMPFAIL: try
later), a clear line on stderr naming what is wrong (the démarche, the file, the holder's pid), no
traceback, and never the token: not on stdout, not on stderr, not in the database files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from simworld import visible_dossiers
from syncenv import sync_cli, write_config

from connector.lock import InstanceLock

SUMMARY = re.compile(  # two lines on purpose, each within 100 columns
    r"^(full )?sync (ok|partial|failed): \d+ démarches?, (?P<requests>\d+) requests, (?P<seconds>\d+\.\d) s\n"
    r"  (?P<new>\d+) new, (?P<updated>\d+) updated, (?P<deleted>\d+) deleted, \d+ to the trash, "
    r"(?P<quarantined>\d+) quarantined, \d+ files$"
)
EVENT = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


def run(config_path: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ds-connector sync``, checked for what must never show: a traceback, the token."""
    result = sync_cli(config_path, *args)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert token not in output, "the token leaked into the output"
    for path in config_path.parent.glob("ds-connector.sqlite*"):
        assert token.encode() not in path.read_bytes(), f"the token leaked into {path.name}"
    return result


def problem_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = result.stderr.splitlines()
    assert lines, "nothing on stderr"
    assert all(line.startswith(("ds-connector: ", "  - ")) for line in lines), result.stderr
    return lines


def dossier_counts(config_path: Path) -> dict[int, int]:
    db = config_path.parent / "ds-connector.sqlite"
    if not db.exists():
        return {}
    with closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT demarche_number, count(*) FROM dossiers GROUP BY demarche_number"))


def listed(handle, demarche: int) -> int:
    return len(visible_dossiers(handle.world, demarche))


# --- the token ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, expected", [
    ("unknown", "refused the API token"),  # never given to the simulator
    ("revoked", "refused the API token"),
    ("expired", "expired"),
])
def test_a_bad_token_stops_the_sync_with_one_clear_line(simulator, tmp_path, kind, expected):
    if kind == "unknown":
        token = secrets.token_urlsafe(32)
    else:
        token = simulator.sim.add_token(**{kind: True})
    config = write_config(tmp_path, simulator.url, token, sorted(simulator.world.demarches))
    result = run(config, token)
    assert result.returncode == 78
    [line] = problem_lines(result)
    assert expected in line
    assert f"token read from token file {tmp_path / 'ds-api-token'}" in line  # where it came from, not what
    assert dossier_counts(config) == {}


@pytest.mark.parametrize("source", ["credentials directory", "environment"])
def test_a_refused_token_names_the_source_it_was_read_from(simulator, tmp_path, source):
    token = simulator.sim.add_token(revoked=True)
    config = write_config(tmp_path, simulator.url, token, sorted(simulator.world.demarches))
    config.write_text(config.read_text().replace('token_file = "ds-api-token"\n', ""))
    (tmp_path / "ds-api-token").unlink()
    if source == "environment":
        env, named = {"DS_API_TOKEN": token}, "token read from $DS_API_TOKEN"
    else:
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "ds-api-token").write_text(token + "\n")
        env, named = {"CREDENTIALS_DIRECTORY": str(credentials)}, f"token read from the credentials directory ({credentials}"
    result = subprocess.run([sys.executable, "-m", "connector", "sync", "--config", str(config)],
                            capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")},
                                 **env})
    assert result.returncode == 78, result.stderr
    refused = [line for line in result.stderr.splitlines() if "refused the API token" in line]
    assert refused and named in refused[0], result.stderr
    assert token not in result.stdout + result.stderr


def test_token_not_covering_a_demarche_syncs_the_others_and_names_it(simulator, tmp_path):
    covered, *uncovered = sorted(simulator.world.demarches, key=lambda n: -listed(simulator, n))
    token = simulator.sim.add_token(demarches=[covered])
    config = write_config(tmp_path, simulator.url, token, sorted(simulator.world.demarches))
    result = run(config, token)
    assert result.returncode == 78
    lines = problem_lines(result)
    assert len(lines) == len(uncovered)
    for number, line in zip(sorted(uncovered), lines):
        assert f"démarche {number}" in line and "access" in line, line
    assert str(covered) not in result.stderr
    assert dossier_counts(config) == {covered: listed(simulator, covered)}
    assert result.stdout.splitlines()[-2].startswith("sync partial:")


def test_demarche_missing_on_ds_is_named(simulator, tmp_path):
    existing = sorted(simulator.world.demarches)[0]
    missing = 999_999
    config = write_config(tmp_path, simulator.url, simulator.token, [missing, existing])
    result = run(config, simulator.token)
    assert result.returncode == 78
    [line] = problem_lines(result)
    assert f"démarche {missing}" in line and "does not exist" in line
    assert dossier_counts(config) == {existing: listed(simulator, existing)}


# --- the config -----------------------------------------------------------------------------------


def test_bad_config_lists_every_problem_at_once(simulator, tmp_path):
    first = sorted(simulator.world.demarches)[0]
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches))
    text = config.read_text().replace("page_size = 100", 'pagesize = 5\ninterval_minutes = "ten"')
    config.write_text(text + f"[[demarches]]\nnumber = {first}\n")
    result = run(config, simulator.token)
    assert result.returncode == 78
    lines = problem_lines(result)
    assert str(config) in lines[0]
    problems = "\n".join(lines[1:])
    assert "pagesize" in problems and "did you mean 'page_size'" in problems
    assert "interval_minutes" in problems and "integer" in problems
    assert str(first) in problems and "already configured" in problems
    assert len(lines) == 4, result.stderr
    assert not (tmp_path / "ds-connector.sqlite").exists()


def test_missing_token_file(simulator, tmp_path):
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches))
    (tmp_path / "ds-api-token").unlink()
    result = run(config, simulator.token)
    assert result.returncode == 78
    [line] = problem_lines(result)
    assert str(tmp_path / "ds-api-token") in line and "does not exist" in line


def test_group_readable_token_file_is_refused(simulator, tmp_path):
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches))
    os.chmod(tmp_path / "ds-api-token", 0o640)
    result = run(config, simulator.token)
    assert result.returncode == 78
    [line] = problem_lines(result)
    assert str(tmp_path / "ds-api-token") in line and "chmod 600" in line
    assert not (tmp_path / "ds-connector.sqlite").exists()


def test_demarche_option_not_in_config(simulator, tmp_path):
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches))
    result = run(config, simulator.token, "--demarche", "4242")
    assert result.returncode == 78
    [line] = problem_lines(result)
    assert "4242" in line and "not in" in line
    assert all(str(n) in line for n in simulator.world.demarches)  # what is configured, to pick from
    assert dossier_counts(config) == {}


# --- the lock -------------------------------------------------------------------------------------


def test_lock_held_by_the_daemon(simulator, tmp_path):
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches))
    with InstanceLock(tmp_path, holder="daemon"):
        result = run(config, simulator.token)
    assert result.returncode == 75
    [line] = problem_lines(result)
    assert f"pid {os.getpid()}" in line and "daemon" in line
    assert not (tmp_path / "ds-connector.sqlite").exists()  # nothing written while another holds it


# --- a good run -----------------------------------------------------------------------------------


def test_successful_run_logs_json_and_ends_with_the_summary(simulator, tmp_path):
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches),
                          page_size=10)
    result = run(config, simulator.token)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    *logs, first, second = result.stdout.splitlines()
    summary = SUMMARY.match(f"{first}\n{second}")
    assert summary, (first, second)
    assert max(len(first), len(second)) <= 100
    events = [json.loads(line) for line in logs]
    assert all(isinstance(e, dict) and EVENT.match(e["event"]) for e in events), logs
    names = [e["event"] for e in events]
    committed = [e for e in events if e["event"] == "sync.page_committed"]
    assert names[0] == "sync.started" and names[-1] == "sync.finished"
    assert len(committed) > len(simulator.world.demarches)  # several pages per démarche

    expected = {n: listed(simulator, n) for n in simulator.world.demarches}
    assert dossier_counts(config) == expected
    assert int(summary["new"]) == sum(expected.values()) == sum(e.get("new", 0) for e in committed)
    assert (summary["updated"], summary["deleted"], summary["quarantined"]) == ("0", "0", "0")
    assert int(summary["requests"]) == events[-1]["requests"]

    again = run(config, simulator.token)
    assert again.returncode == 0, again.stderr
    summary = SUMMARY.match("\n".join(again.stdout.splitlines()[-2:]))
    assert summary and summary["new"] == "0" and summary["updated"] == "0"
    assert int(summary["requests"]) == 3 * len(simulator.world.demarches)  # one page of each stream
