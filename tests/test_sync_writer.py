"""The writer thread (connector/store/writer.py): a page's cursor never commits before its rows,
whatever the timing of the two threads.

A slowed writer (every unit of work waits a random while before it runs, and the door lingers
inside its transaction after the rows, before the cursor) syncs a world of small pages while an
observer thread reads the mirror as fast as it can, each read one snapshot. In every snapshot, for
every démarche, each dossier of the final mirror dated before the dossiers bookmark's ``max_seen``
(the last dossier of the last committed page; pages come in date order) must already be there.
A made-up door that commits the cursor first, in its own transaction, proves the observer can see
a violation.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from connector.store import door
from connector.store.writer import Writer
from connector.sync import engine
from syncenv import read_db, simulator_config, sync


class _SlowWriter(Writer):
    """Every unit waits 0–8 ms on the writer's thread before it runs: the loop runs ahead of it."""

    async def _submit(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def slowed(*a: Any, **k: Any) -> Any:
            time.sleep(random.uniform(0, 0.008))
            return work(*a, **k)

        return await super()._submit(slowed, *args, **kwargs)


def _lingering_saver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The door lingers 2–10 ms inside its transaction after a page's rows, before its cursor."""
    save = door.save_dossiers

    def lingering(*args: Any, **kwargs: Any) -> Any:
        counts = save(*args, **kwargs)
        time.sleep(random.uniform(0.002, 0.010))
        return counts

    monkeypatch.setattr(door, "save_dossiers", lingering)


def _cursor_first(db: Any, demarche: int, nodes: list[Any], *, then: Any = None, **options: Any) -> door.Entry:
    """A broken door: the page's cursor in a transaction of its own, then (later) the rows."""
    if then is not None:
        with db.atomic():
            then(db)
    time.sleep(0.01)
    return door.enter(db, demarche, nodes, **options)


class _Observer(threading.Thread):
    """Reads the bookmarks and the dossiers in one snapshot, again and again, until stopped."""

    def __init__(self, path: Any) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.done = threading.Event()
        self.snapshots: list[tuple[dict[int, str], dict[int, set[int]]]] = []

    def run(self) -> None:
        while not self.path.exists() and not self.done.is_set():
            time.sleep(0.001)
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            while not self.done.is_set():
                try:
                    conn.execute("BEGIN")
                    marks = dict(conn.execute("SELECT demarche_number, max_seen FROM sync_state "
                                              "WHERE stream = 'dossiers' AND max_seen IS NOT NULL"))
                    held: dict[int, set[int]] = {}
                    for demarche, number in conn.execute("SELECT demarche_number, number FROM dossiers"):
                        held.setdefault(demarche, set()).add(number)
                    conn.execute("COMMIT")
                except sqlite3.OperationalError:  # the tables do not exist yet
                    conn.execute("ROLLBACK") if conn.in_transaction else None
                    time.sleep(0.001)
                    continue
                self.snapshots.append((marks, held))
        finally:
            conn.close()


def _observe(config: Any) -> tuple[list[tuple[dict[int, str], dict[int, set[int]]]], int]:
    """Sync while the observer watches; the violations it saw, and the snapshots taken mid-sync."""
    observer = _Observer(config.database.path)
    observer.start()
    try:
        report = sync(config)
    finally:
        observer.done.set()
        observer.join()
    assert report.status == "ok"
    with read_db(config) as db:
        final = [(d, n, date) for d, n, date in db.execute(
            "SELECT demarche_number, number, date_derniere_modification FROM dossiers")]
    total = len(final)
    violations = []
    for marks, held in observer.snapshots:
        for demarche, max_seen in marks.items():
            missing = {n for d, n, date in final if d == demarche and date < max_seen} - held.get(demarche, set())
            if missing:
                violations.append((demarche, max_seen, sorted(missing)))
    midway = sum(1 for _, held in observer.snapshots if 0 < sum(map(len, held.values())) < total)
    return violations, midway


def test_a_pages_cursor_never_commits_before_its_rows_with_a_slowed_writer(simulator, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "Writer", _SlowWriter)
    _lingering_saver(monkeypatch)
    config = simulator_config(tmp_path, simulator, page_size=3)
    violations, midway = _observe(config)
    assert midway >= 10, "the observer must have seen the mirror half-written, or it proves nothing"
    assert violations == []


def test_the_observer_sees_a_cursor_committed_before_its_rows(simulator, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "Writer", _SlowWriter)
    monkeypatch.setattr(engine, "enter", _cursor_first)
    config = simulator_config(tmp_path, simulator, page_size=3)
    violations, midway = _observe(config)
    assert midway >= 10
    assert violations, "a door that commits the cursor first must be caught"


# --- the writer's own promises (connector/store/writer.py's docstring), no server -------------------


class _Gate:
    """Holds the writer's thread inside a unit until released; says when the unit has started."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def hold(self) -> None:
        self.started.set()
        self.release.wait(5)

    async def entered(self) -> None:
        await asyncio.to_thread(self.started.wait, 5)


def _writer_test(tmp_path, scenario) -> Any:
    async def main() -> Any:
        async with Writer(tmp_path / "mirror.sqlite") as writer:
            return await scenario(writer)

    return asyncio.run(main())


def test_a_unit_already_running_when_its_caller_is_cancelled_commits_and_its_caller_gets_its_outcome(tmp_path):
    gate = _Gate()
    got: list[str] = []

    def unit(db: Any) -> str:
        gate.hold()
        with db.atomic():
            db.conn.execute("CREATE TABLE t (x)")
            db.conn.execute("INSERT INTO t VALUES (1)")
        return "committed"

    async def scenario(writer: Writer) -> None:
        async def caller() -> None:
            got.append(await writer(unit))  # the outcome is delivered...
            await asyncio.sleep(0)  # ...and the cancellation comes at the next await
            got.append("went on")

        task = asyncio.create_task(caller())
        await gate.entered()
        task.cancel()
        await asyncio.sleep(0.05)
        gate.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await writer(lambda db: db.conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 1

    _writer_test(tmp_path, scenario)
    assert got == ["committed"]


def test_a_unit_still_queued_when_its_caller_is_cancelled_never_runs(tmp_path):
    gate = _Gate()
    ran: list[str] = []

    async def scenario(writer: Writer) -> None:
        first = asyncio.create_task(writer(lambda db: gate.hold()))
        await gate.entered()
        queued = asyncio.create_task(writer(lambda db: ran.append("queued")))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued  # cancelled while its unit waits behind the held one
        gate.release.set()
        await first
        await writer(lambda db: ran.append("after"))  # in order, after the first

    _writer_test(tmp_path, scenario)
    assert ran == ["after"]


def test_the_connection_refuses_any_thread_but_the_writers(tmp_path):
    async def scenario(writer: Writer) -> None:
        db = await writer(lambda db: db)
        with pytest.raises(sqlite3.ProgrammingError, match="same thread"):
            db.conn.execute("SELECT 1")
        assert await writer(lambda db: db.conn.execute("SELECT 1").fetchone()[0]) == 1

    _writer_test(tmp_path, scenario)
