"""Helpers for the sync tests: a config file pointing at a running simulator, and running the sync.

``write_config`` writes ``config.toml`` and a 0600 token file under a directory, exactly as an
operator would; ``sync`` runs the engine in-process (``asyncio.run``), ``sync_cli`` runs
``ds-connector sync`` as a subprocess (the command an operator types).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from connector.config import Config, load_config
from connector.credentials import load_token
from connector.sync import SyncReport, run_sync


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
    return asyncio.run(run_sync(config, load_token(config, environ={}), **options))


def sync_cli(config_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``ds-connector sync --config PATH ARGS`` in a child process (no TTY: JSON logs on stdout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", "sync", "--config", str(config_path), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
