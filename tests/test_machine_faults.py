"""The machine's own faults and its other users (issue 15 §5-6): DS refusing connections, a full disk,
a read-only or refused database, and files left readable by other local accounts.

Every command is run as an operator runs it (a child process against the simulator); each failure
must end with one line on stderr, its documented exit code, no traceback, and nothing lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from pathlib import Path

import aiohttp
import pytest

from simworld import visible_dossiers
from syncenv import sync_cli, write_config

from connector.credentials import ApiToken
from connector.ds.client import DsClient, _no_connection
from connector.ds.retry import UNREACHABLE_SECONDS
from connector.errors import EX_IOERR, EX_TEMPFAIL, DsUnreachable, machine_fault


def lines_of(result: subprocess.CompletedProcess[str]) -> tuple[list[str], list[dict]]:
    """stderr's lines for people, the JSON log lines (stdout, or stderr for ``actions``); and never a
    traceback anywhere."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    return ([x for x in result.stderr.splitlines() if not x.startswith("{")],
            [json.loads(x) for x in lines if x.startswith("{")])


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    return subprocess.run([sys.executable, "-m", "connector.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def dossier_count(database: Path) -> int:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]


def integrity(database: Path) -> str:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def expected_dossiers(simulator) -> int:
    return sum(len(visible_dossiers(simulator.world, n)) for n in simulator.world.demarches)


# --- DS unreachable ------------------------------------------------------------------------------


def test_the_simulator_refuses_connections_then_listens_again(simulator):
    simulator.control("refuse", seconds=1.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", simulator.port), timeout=5).close()
    deadline = time.monotonic() + 30
    while True:  # listening again on the same port
        try:
            assert simulator.control("world")["demarches"]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_sync_against_a_refusing_ds_gives_up_quickly_with_one_line_and_exit_75(simulator, tmp_path):
    config = write_config(tmp_path / "site", simulator.url, simulator.token, sorted(simulator.world.demarches))
    simulator.control("refuse", seconds=600)
    started = time.monotonic()
    result = sync_cli(config, timeout=120)  # main took 4 min 12 s here
    seconds = time.monotonic() - started
    print(f"sync against a refusing DS: exit {result.returncode} after {seconds:.1f} s")
    stderr, logs = lines_of(result)
    assert result.returncode == EX_TEMPFAIL
    assert stderr == [f"ds-connector: DS did not answer at {simulator.url}: connection refused; is [ds] url right?"]
    # A few quick tries, not the long backoff kept for timeouts, 429 and 5xx: every démarche's waits
    # added up stay under UNREACHABLE_SECONDS, and no warning per try.
    waits: dict[tuple, float] = {}
    for line in logs:
        if line["event"] == "api.retry":
            key = (line.get("demarche"), line["operation"])
            waits[key] = waits.get(key, 0.0) + line["wait"]
    assert waits and all(total <= UNREACHABLE_SECONDS for total in waits.values()), waits
    assert not [x for x in logs if x["level"] == "warning" and x["event"] == "api.error"]
    finished = [x for x in logs if x["event"] == "sync.finished"]
    assert finished and finished[0]["status"] == "failed"


def test_actions_plan_against_a_refusing_ds_exits_75_with_one_line(simulator, tmp_path):
    config = write_config(tmp_path / "site", simulator.url, simulator.token, sorted(simulator.world.demarches))
    number = sorted(simulator.world.demarches)[-1]
    with config.open("a") as f:  # the last démarche gets a deadline, so that plan reads DS's clock
        f.write("\n[demarches.deadline]\n")
    assert sync_cli(config).returncode == 0
    simulator.control("refuse", seconds=600)
    result = cli(config, "actions", "plan")
    stderr, _ = lines_of(result)
    if result.returncode == 0:
        pytest.skip(f"démarche {number}'s profile has no convention deadline here: plan did not read DS")
    assert result.returncode == EX_TEMPFAIL, result.stderr
    assert stderr == [f"ds-connector: DS did not answer at {simulator.url}: connection refused; is [ds] url right?"]


# --- the machine's faults ------------------------------------------------------------------------


def test_machine_fault_names_the_fault_the_place_and_what_to_do():
    full = machine_fault(sqlite3.OperationalError("database or disk is full"), Path("/srv/m.sqlite"))
    assert full is not None and full.exit_code == EX_IOERR
    assert "/srv/m.sqlite" in full.message and "disk is full" in full.message and "free space" in full.message
    readonly = machine_fault(sqlite3.OperationalError("attempt to write a readonly database"), Path("/srv/m.sqlite"))
    assert readonly is not None and "read-only" in readonly.message
    refused = machine_fault(PermissionError(13, "Permission denied", "/srv/files/1/a.pdf"))
    assert refused is not None and "/srv/files/1/a.pdf" in refused.message and "permission refused" in refused.message
    wrapped = RuntimeError("page failed")
    wrapped.__cause__ = OSError(28, "No space left on device", "/srv/files")
    assert machine_fault(wrapped) is not None
    assert machine_fault(sqlite3.IntegrityError("UNIQUE constraint failed: champs.id")) is None  # a bug
    assert machine_fault(KeyError("id")) is None


@contextmanager
def small_tmpfs(size: str):
    """A tmpfs of ``size`` (root only), unmounted at the end; yields (mount point, resize)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to make a small file system (CI runs as root)")
    point = Path(tempfile.mkdtemp(prefix="ds-connector-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def resize(new: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new}", str(point)], check=True)

    try:
        yield point, resize
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def test_a_database_on_a_full_disk_ends_with_one_line_and_exit_74_then_completes(make_simulator, tmp_path):
    simulator = make_simulator(dossiers=400)
    with small_tmpfs("3m") as (disk, resize):
        config = write_config(tmp_path / "site", simulator.url, simulator.token, sorted(simulator.world.demarches),
                              attachments="none", page_size=20)
        config.write_text(config.read_text().replace('path = "ds-connector.sqlite"',
                                                     f'path = "{disk}/ds-connector.sqlite"'))
        database = disk / "ds-connector.sqlite"
        result = sync_cli(config)
        stderr, _ = lines_of(result)
        assert result.returncode == EX_IOERR, result.stderr
        assert len(stderr) == 1, stderr
        assert stderr[0].startswith(f"ds-connector: cannot write the database {database}: the disk is full; ")
        assert "free space" in stderr[0]
        stored = dossier_count(database)
        assert 0 < stored < expected_dossiers(simulator)  # it stopped mid-way, on a page boundary
        assert integrity(database) == "ok"

        resize("64m")
        result = sync_cli(config)
        lines_of(result)
        assert result.returncode == 0, result.stderr
        assert integrity(database) == "ok"
        assert dossier_count(database) == expected_dossiers(simulator)


def test_a_database_on_a_read_only_file_system_ends_with_one_line_and_exit_74(simulator, tmp_path):
    with small_tmpfs("16m") as (disk, _resize):
        config = write_config(tmp_path / "site", simulator.url, simulator.token, sorted(simulator.world.demarches),
                              attachments="none")
        config.write_text(config.read_text().replace('path = "ds-connector.sqlite"',
                                                     f'path = "{disk}/ds-connector.sqlite"'))
        assert sync_cli(config).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        simulator.control("dossiers", demarche=sorted(simulator.world.demarches)[0], count=3)
        result = sync_cli(config)
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        stderr, _ = lines_of(result)
        assert result.returncode == EX_IOERR, result.stderr
        assert len(stderr) == 1 and f"cannot write {disk}/" in stderr[0], stderr  # the lock file, first
        assert "read-only" in stderr[0]
        result = sync_cli(config)
        assert result.returncode == 0, result.stderr
        assert dossier_count(disk / "ds-connector.sqlite") == expected_dossiers(simulator)


# --- other local users ---------------------------------------------------------------------------


def _world_readable(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            found.append(f"{path} {stat.filemode(mode)}")
    return found


def test_a_sync_under_umask_022_leaves_nothing_readable_by_others(simulator, tmp_path):
    site = tmp_path / "site"
    config = write_config(site, simulator.url, simulator.token, sorted(simulator.world.demarches),
                          attachments="all")
    config.write_text(config.read_text().replace('path = "ds-connector.sqlite"', 'path = "state/ds-connector.sqlite"'))
    state = site / "state"
    old = os.umask(0o022)
    try:
        result = sync_cli(config)
        exported = cli(config, "export", "ecoles", "--output", str(state / "exports" / "ecoles.csv"))
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert exported.returncode == 0, exported.stderr
    written = {p.name for p in state.rglob("*")}
    assert {"ds-connector.sqlite", "files", "ds-connector.lock", "ecoles.csv"} <= written, written
    assert any((state / "files").rglob("*.*")), "no attachment was downloaded: the test proves nothing"
    with closing(sqlite3.connect(state / "ds-connector.sqlite")) as conn:  # the -wal/-shm exist while open
        conn.execute("SELECT count(*) FROM dossiers").fetchone()
        assert (state / "ds-connector.sqlite-wal").exists()
        assert _world_readable(state) == []
    assert _world_readable(state) == []


def test_check_config_and_status_report_a_database_readable_by_others(simulator, tmp_path):
    config = write_config(tmp_path / "site", simulator.url, simulator.token, sorted(simulator.world.demarches))
    assert sync_cli(config).returncode == 0
    database = config.parent / "ds-connector.sqlite"
    checked = cli(config, "check-config")
    assert "readable by their owner only" in checked.stdout, checked.stdout
    os.chmod(database, 0o644)
    checked = cli(config, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert f"WARNING: {database} is mode 0644, readable beyond its owner" in checked.stdout
    assert f"chmod go-rwx {database}" in checked.stdout
    status = cli(config, "status", "--json")
    reasons = json.loads(status.stdout)["health"]["reasons"]
    assert any(r["level"] == "WARNING" and f"{database} is mode 0644" in r["reason"] for r in reasons), reasons
    assert status.returncode >= 1


def _read_probe(url: str, unreachable_seconds: float = 0.0):
    """One read with the connector's client, retrying 'unreachable' for ``unreachable_seconds``."""

    async def go():
        async with DsClient(url, ApiToken("t", "test"), unreachable_seconds=unreachable_seconds) as client:
            return await client.query("demarche_probe", {"demarcheNumber": 1})

    return asyncio.run(go())


def test_tls_refused_by_the_server_is_unreachable_with_a_tls_hint(simulator):
    url = simulator.url.replace("http://", "https://")  # a TLS handshake against a plain HTTP server
    with pytest.raises(DsUnreachable) as caught:
        _read_probe(url)
    assert caught.value.message.startswith(f"DS did not answer at {url}: TLS failed (")
    assert "CA certificates" in caught.value.message


def test_a_name_that_does_not_resolve_is_unreachable_with_a_dns_hint():
    # The resolver's answer faked at the network edge (CI may have no DNS at all): aiohttp's own error.

    key = aiohttp.client_reqrep.ConnectionKey("ds.example.invalid", 443, True, True, None, None, None)
    error = aiohttp.ClientConnectorDNSError(key, socket.gaierror(-2, "Name or service not known"))
    assert _no_connection(error) == ("the name ds.example.invalid does not resolve; is [ds] url right, "
                                     "and DNS reachable from this machine?")
    assert _no_connection(TimeoutError()) is None  # a timeout keeps the long retry
