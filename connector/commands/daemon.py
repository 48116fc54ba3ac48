"""``ds-connector daemon``: config, token and logging around :class:`connector.daemon.scheduler.Daemon`.

A bad config or a missing token exits 78 before anything starts (systemd's ``Type=notify`` unit then
fails at ``systemctl start``, loudly, and ``RestartPreventExitStatus=78 243`` keeps it down; under the
unit a missing token file is systemd's own failure, 243/CREDENTIALS, before this process runs).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from connector import service
from connector.commands.hooks import sync_hooks
from connector.config import load_config
from connector.credentials import load_token
from connector.daemon.notify import Notifier
from connector.daemon.scheduler import Daemon


def run_daemon(config_path: Path | None, *, interval_seconds: float | None = None) -> int:
    config = load_config(config_path)
    # JSON lines on stdout for journald (console on a terminal): before the token lookup, whose
    # development-only fallback logs a warning.
    service.configure_logging(config, "daemon")
    token = load_token(config)
    daemon = Daemon(config, token, hooks=sync_hooks, notifier=Notifier(),
                    interval_seconds=interval_seconds)
    return asyncio.run(daemon.run())
