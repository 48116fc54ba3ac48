"""The single-instance lock, across real processes (docs/operations.md §3.5)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector.errors import EX_TEMPFAIL, ConnectorError, LockHeld
from connector.lock import LOCK_NAME, InstanceLock

# Takes the lock, says so, then holds it until stdin closes (or it is killed).
HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from connector.lock import InstanceLock
    with InstanceLock(Path(sys.argv[1]), holder="sync --once"):
        print("locked", flush=True)
        sys.stdin.read()
""")


@pytest.fixture
def holder(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_lock_file_holds_the_pid_and_is_private(tmp_path):
    with InstanceLock(tmp_path / "state", holder="daemon") as lock:
        assert lock.path == tmp_path / "state" / LOCK_NAME
        assert lock.path.read_text() == f"{os.getpid()} daemon\n"
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    assert lock.path.read_text() == ""  # released: no stale pid left behind


def test_second_holder_in_another_process_gets_lock_held_naming_the_pid(tmp_path, holder):
    with pytest.raises(LockHeld) as caught:
        InstanceLock(tmp_path).acquire()
    message = str(caught.value)
    assert f"pid {holder.pid}, sync --once" in message
    assert "the daemon or a one-shot sync is running" in message
    assert caught.value.exit_code == EX_TEMPFAIL


def test_lock_is_released_when_its_holder_is_sigkilled(tmp_path, holder):
    with pytest.raises(LockHeld):
        InstanceLock(tmp_path).acquire()
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    with InstanceLock(tmp_path, holder="daemon") as lock:
        assert lock.path.read_text() == f"{os.getpid()} daemon\n"


def test_lock_is_released_when_its_holder_exits(tmp_path, holder):
    holder.stdin.close()
    assert holder.wait() == 0
    with InstanceLock(tmp_path):
        pass


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    with InstanceLock(tmp_path):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            InstanceLock(tmp_path).acquire()
    with InstanceLock(tmp_path):
        pass


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConnectorError, match="Cannot open the lock file"):
        InstanceLock(tmp_path / "file").acquire()


def test_lock_never_touches_the_database(tmp_path):
    with InstanceLock(tmp_path):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]
