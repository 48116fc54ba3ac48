"""The single-instance lock, held while a sync runs (docs/operations.md §3.5; issue 11: job-time, not process-time).

``sync`` holds it for its one run (the sync, its follow-up and its report: ``connector.service``);
the daemon holds it for each job, not between jobs, so an operator's one-shot sync between two daemon
runs works; ``actions plan|run|retry|cancel`` and ``check`` hold it too (they open the writer). A second acquirer gets LockHeld (exit 75)
naming the holder's pid, or waits (``sync --wait``; the daemon's jobs always wait, asynchronously).

A separate ``ds-connector.lock`` file under the state directory, locked with ``flock()``: the kernel
drops the lock when its holder dies, even by SIGKILL, so a crash never leaves a stale lock. The
database file itself is never locked nor opened here: SQLite's POSIX locks would be dropped by a
``close()`` on any descriptor of its inode (sqlite.org/howtocorrupt.html §2.2). ``status`` does not
take the lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from connector import private
from connector.errors import ConnectorError, LockHeld, machine_fault

LOCK_NAME = "ds-connector.lock"


class InstanceLock:
    """``with InstanceLock(state_dir, holder="daemon"):`` raises LockHeld if another process has it.

    The file holds the holder's pid and what it is ("daemon", "sync --once"), for the error message.
    """

    def __init__(self, state_dir: Path, holder: str = "ds-connector"):
        self.path = Path(state_dir) / LOCK_NAME
        self.holder = holder
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> None:
        """Take the lock, or raise LockHeld; with ``wait``, block until the holder lets it go."""
        if self._fd is not None:
            raise RuntimeError("InstanceLock is not reentrant")
        try:
            private.makedirs(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise machine_fault(exc, self.path) or ConnectorError(
                f"Cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                owner = _holder_text(fd)
                os.close(fd)
                pid, _, what = owner.partition(" ")
                raise LockHeld(
                    f"Another ds-connector holds {self.path} (pid {pid or 'unknown'}"
                    f"{', ' + what if what else ''}): the daemon or a one-shot sync is running. "
                    "Try again later, pass --wait to wait for it, or stop it first (systemctl stop ds-connector)."
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # interrupted by SIGINT: KeyboardInterrupt
            except BaseException:
                os.close(fd)
                raise
        self._own(fd)

    async def acquire_async(self, stop: asyncio.Event | None = None, poll: float = 0.5,
                            on_wait=None) -> bool:
        """Take the lock without blocking the event loop: poll until it is free (True) or ``stop``
        is set (False). ``on_wait(holder_text)`` is called once, when the lock is found held."""
        waited = False
        while True:
            try:
                self.acquire()
                return True
            except LockHeld:
                if not waited and on_wait is not None:
                    on_wait(read_holder(self.path.parent))
                waited = True
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), poll)
                    return False
                except asyncio.TimeoutError:
                    continue
            await asyncio.sleep(poll)

    def _own(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.holder}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no stale pid for the next reader
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> InstanceLock:
        if self._fd is None:  # ``with lock:`` after an explicit acquire() just releases at the end
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder_text(fd: int) -> str:
    return os.pread(fd, 256, 0).decode(errors="replace").strip()


@dataclass(frozen=True)
class LockHolder:
    """What the lock file says, read without taking the lock (for ``status``)."""

    pid: int | None  # the pid written in the file (None: empty file, released cleanly)
    what: str | None  # "daemon", "sync"...
    held: bool  # a live process holds the flock now
    stale: bool  # a pid is written but that process is gone (killed before it could clean up)


def read_holder(state_dir: Path) -> LockHolder:
    """Who holds the lock, from the file and ``/proc/locks``, never locking anything: probing with
    a shared flock could make a real acquirer fail in that instant."""
    path = Path(state_dir) / LOCK_NAME
    try:
        text = path.read_text(errors="replace").strip()
        inode = path.stat().st_ino
    except OSError:
        return LockHolder(None, None, False, False)
    pid_text, _, what = text.partition(" ")
    pid = int(pid_text) if pid_text.isdigit() else None
    held = _flocked(inode)
    if held is None:  # no /proc/locks: fall back on the pid being alive
        held = pid is not None and pid_alive(pid)
    return LockHolder(pid, what or None, held, pid is not None and not held)


def _flocked(inode: int) -> bool | None:
    """Whether a FLOCK lock is on this inode, from /proc/locks (None when unreadable)."""
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:123456 0 EOF" ("->" marks a waiter)
        if "->" in parts:
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
