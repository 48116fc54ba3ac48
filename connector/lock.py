"""The single-instance lock: the daemon and ``sync --once`` hold it for their whole life (OPS.md §3.5).

A separate ``ds-connector.lock`` file under the state directory, locked with ``flock()``: the kernel
drops the lock when its holder dies, even by SIGKILL, so a crash never leaves a stale lock. The
database file itself is never locked nor opened here: SQLite's POSIX locks would be dropped by a
``close()`` on any descriptor of its inode (sqlite.org/howtocorrupt.html §2.2). ``status`` does not
take the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from connector.errors import ConnectorError, LockHeld

LOCK_NAME = "ds-connector.lock"


class InstanceLock:
    """``with InstanceLock(state_dir, holder="daemon"):`` raises LockHeld if another process has it.

    The file holds the holder's pid and what it is ("daemon", "sync --once"), for the error message.
    """

    def __init__(self, state_dir: Path, holder: str = "ds-connector"):
        self.path = Path(state_dir) / LOCK_NAME
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError("InstanceLock is not reentrant")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConnectorError(f"Cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 256, 0).decode(errors="replace").strip()
            os.close(fd)
            pid, _, what = owner.partition(" ")
            raise LockHeld(
                f"Another ds-connector holds {self.path} (pid {pid or 'unknown'}"
                f"{', ' + what if what else ''}): the daemon or a one-shot sync is running. "
                "Try again later, or stop it first (systemctl stop ds-connector)."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.holder}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no stale pid for the next reader
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
