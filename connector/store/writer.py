"""The sync's one SQLite connection, on a thread of its own: the writer.

During a sync the event loop never touches the database. It hands the writer whole units of work,
``await writer(work, *args)``, which runs ``work(db, *args)`` on the writer's one thread, in the
order the units were handed over (one thread, first in, first out). Every unit that writes is one
transaction: a dossier page with its cursor (the door, ``connector.store.door.enter``), a deletion
page with its cursor, the descriptor with its hook. So a page's rows and its cursor commit together
whatever the timing of the two threads, and the pages of one stream commit in the stream's order
(the stream awaits each page's commit before it hands over the next).

Why a thread: ``sqlite3`` releases the GIL while a statement runs and while a commit waits for the
disk (``synchronous=FULL``: an fsync per page). Meanwhile the loop receives and decodes the next
pages (every stream reads one page ahead) and the attachments' threads write files.

- **One writer, checked.** The connection is opened on the writer's thread with ``sqlite3``'s
  same-thread check on: any use from another thread raises ``ProgrammingError`` instead of
  writing behind the writer's back.
- **Cancellation.** A task cancelled while its unit is queued drops the unit (nothing of it was
  written). One cancelled while its unit runs does not stop it: the unit commits or rolls back whole
  on the writer's thread, the task gets its outcome (a committed page is counted in the report) and
  is cancelled at its next ``await``; whatever is handed over afterwards runs after it.
- **Bounded.** Each stream holds at most two pages: the one being committed and the one read ahead.
  Pages in memory ≤ 2 × streams × démarches synced at once; nothing else queues up.
- **Logs** of a unit carry the context bound where it was handed over (the run, the démarche).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from connector.store.db import open_db

T = TypeVar("T")


class Writer:
    """``async with Writer(path) as writer:`` opens the mirror on the writer's thread (``open_db``:
    pragmas, migrations) and closes it there at the end."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ds-connector-sqlite")
        self._db: sqlite_utils.Database | None = None
        self.cpu_seconds = 0.0  # CPU time of the units so far, on the writer's thread (for the run's log)
        self.units = 0

    async def __aenter__(self) -> Writer:
        try:
            self._db = await self._submit(self._open)
        except BaseException:
            self._thread.shutdown(wait=True)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._db is not None:
                await self._submit(self._db.close)
        finally:
            self._db = None
            self._thread.shutdown(wait=True)

    def _open(self) -> sqlite_utils.Database:
        return open_db(self.path)  # on the writer's thread: the connection refuses any other

    async def __call__(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(db, *args, **kwargs)`` on the writer's thread, after every unit handed over before it.

        A unit once started is never abandoned: if the caller is cancelled meanwhile, it still gets
        the unit's outcome (so what was committed is also counted) and the cancellation takes effect
        at its next ``await``. A unit still queued when its caller is cancelled is dropped."""
        if self._db is None:
            raise RuntimeError("the writer is not open")
        return await self._submit(work, self._db, *args, **kwargs)

    async def _submit(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        context = contextvars.copy_context()  # structlog's bound context goes with the unit
        unit = self._thread.submit(context.run, self._timed, work, *args, **kwargs)
        outcome = asyncio.wrap_future(unit)
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(outcome)
                break
            except asyncio.CancelledError:
                if unit.cancel():  # still queued: dropped, nothing of it was written
                    raise
                cancelled = True  # running: it commits or rolls back whole; wait for its outcome
            except BaseException:
                if cancelled:
                    _cancel_again()
                raise
        if cancelled:
            _cancel_again()
        return result

    def _timed(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started = time.thread_time()
        try:
            return work(*args, **kwargs)
        finally:
            self.cpu_seconds += time.thread_time() - started  # only this thread writes it
            self.units += 1


def _cancel_again() -> None:
    """Deliver again, at the caller's next ``await``, the cancellation that arrived while its unit ran."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
        task.cancel()
