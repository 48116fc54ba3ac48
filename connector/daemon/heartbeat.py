"""The daemon's heartbeat file, ``daemon.json`` in the state directory, read by ``status``.

The daemon holds the instance lock only while a job runs, so the lock cannot say whether it is
alive between runs: this file does. Rewritten atomically (temporary file + rename, mode 0600) at
start, at each job's start and end, and every ``HEARTBEAT_SECONDS``. It holds no secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HEARTBEAT_NAME = "daemon.json"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS  # no beat for that long: the daemon is gone or wedged


@dataclass
class Heartbeat:
    pid: int = field(default_factory=os.getpid)
    started_at: str = ""
    beat_at: str = ""
    state: str = "starting"  # starting, idle, syncing, stopping, stopped
    job: str | None = None  # the running job ("sync", "reconcile")
    next_run_at: str | None = None
    next_reconcile_at: str | None = None
    last_result: str | None = None  # "sync ok 10:42, 4 démarches, 3 new"
    consecutive_failures: int = 0
    interval_minutes: int | None = None


def write_heartbeat(state_dir: Path, beat: Heartbeat) -> None:
    path = Path(state_dir) / HEARTBEAT_NAME
    tmp = path.with_name(f".{HEARTBEAT_NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(beat), f, ensure_ascii=False)
    os.replace(tmp, path)


def read_heartbeat(state_dir: Path) -> dict[str, Any] | None:
    """The last heartbeat written, or None (no file, or unreadable)."""
    try:
        data = json.loads((Path(state_dir) / HEARTBEAT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
