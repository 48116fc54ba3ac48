"""Helpers for the sync tests: a config file pointing at a running simulator, and running the sync.

``write_config`` writes ``config.toml`` and a 0600 token file under a directory, exactly as an
operator would; ``sync`` runs the engine in-process (``asyncio.run``), ``sync_cli`` runs
``ds-connector sync`` as a subprocess (the command an operator types).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from connector import service
from connector.commands.hooks import sync_hooks
from connector.config import Config, load_config
from connector.credentials import load_token
from connector.lock import InstanceLock
from connector.sync import SyncReport, run_sync
from simworld import op


def write_config(
    directory: Path,
    url: str,
    token: str,
    demarches: list[int],
    *,
    attachments: str = "messages",
    page_size: int = 100,
    requests_per_minute: int = 400,
    extra: str = "",
) -> Path:
    """A config for the simulator at ``url``; the token goes to ``ds-api-token`` (mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "ds-api-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    lines = [
        "[ds]", f'url = "{url}"', 'token_file = "ds-api-token"', f"requests_per_minute = {requests_per_minute}",
        "", "[database]", 'path = "ds-connector.sqlite"',
        "", "[sync]", f'attachments = "{attachments}"', f"page_size = {page_size}", extra, "",
    ]
    for number in demarches:
        lines += ["[[demarches]]", f"number = {number}", ""]
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def simulator_config(directory: Path, simulator: Any, **options: Any) -> Config:
    """``write_config`` for a ``SimulatorHandle`` (every démarche of its world), loaded."""
    demarches = options.pop("demarches", None) or sorted(simulator.world.demarches)
    token = options.pop("token", None) or simulator.token
    return load_config(write_config(directory, simulator.url, token, demarches, **options))


def sync(config: Config, **options: Any) -> SyncReport:
    """The sync engine alone (no lock, no follow-up), on a client of the run service."""
    return asyncio.run(sync_async(config, **options))


async def sync_async(config: Config, **options: Any) -> SyncReport:
    async with service.client(config, load_token(config, environ={})) as client:
        return await run_sync(config, client, **options)


def run_once(config: Config, hooks: Any = None, **options: Any) -> service.Outcome:
    """One run of the run service as ``sync`` makes it (the lock, the sync, the follow-up, the report)."""
    hooks = hooks if hooks is not None else sync_hooks(config)
    with InstanceLock(config.state_dir, holder="test") as lock:
        return asyncio.run(service.run(config, load_token(config, environ={}), lock, kind="once", hooks=hooks,
                                       **options))


def sync_cli(config_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``ds-connector sync --config PATH ARGS`` in a child process (no TTY: JSON logs on stdout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", "sync", "--config", str(config_path), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


# --- Reading the mirror and the simulator back (tests/test_sync*.py) ------------------------------


def read_db(config: Config) -> sqlite3.Connection:
    """A plain sqlite3 connection to the mirror (rows as ``sqlite3.Row``)."""
    conn = sqlite3.connect(config.database.path)
    conn.row_factory = sqlite3.Row
    return conn


def dump(config: Config, ignore: dict[str, set[str]] | None = None) -> dict[str, list[tuple]]:
    """Every table of the mirror (migrations bookkeeping aside) as sorted rows of (column, value)
    pairs, without the tables and columns in ``ignore`` (``{"table": {"col"}}``, ``{"table": {"*"}}``)."""
    ignore = ignore or {}
    out: dict[str, list[tuple]] = {}
    with closing(read_db(config)) as conn:
        tables = [n for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != '_sqlite_migrations' ORDER BY name")]
        for table in tables:
            skip = ignore.get(table, set())
            if "*" in skip:
                continue
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            out[table] = sorted(tuple((k, r[k]) for k in r.keys() if k not in skip) for r in rows)
    return out


def remote_dossiers(simulator: Any, demarche: int) -> dict[int, Any]:
    """Every dossier the simulator lists for ``demarche``, by number, read with the connector's own
    ``dossiers_page`` operation over HTTP (a direct GraphQL fetch, no connector code on the way)."""
    nodes: dict[int, Any] = {}
    after = None
    while True:
        status, answer, _ = simulator.post(op("dossiers_page", demarcheNumber=demarche, first=100, after=after))
        assert status == 200 and "errors" not in answer, answer
        page = answer["data"]["demarche"]["dossiers"]
        nodes.update({n["number"]: n for n in page["nodes"]})
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def without_urls(value: Any) -> Any:
    """A DS answer without its File ``url``s (signed, they change at every read)."""
    if isinstance(value, dict):
        return {k: without_urls(v) for k, v in value.items()
                if not (k == "url" and "checksum" in value and "filename" in value)}
    if isinstance(value, list):
        return [without_urls(v) for v in value]
    return value


def start_sync_cli(config_path: Path, *args: str, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    """``sync_cli`` without waiting: the running ``ds-connector sync`` child (to signal or kill it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "sync", "--config", str(config_path), *args],
        stdout=stdout, stderr=stderr, env=env,
    )
