"""The one door into the mirror: every dossier DS sends enters the database through ``enter``.

A page of the sync, a re-read by the ``--full`` reconciliation, a re-read for fresh file URLs, a
re-read by the follow-up before and after an action: all of them call ``enter``, which

1. validates each node (``dossier_problem``),
2. saves the valid ones (``save_dossiers``),
3. runs the caller's hook on the dossiers that changed (the forms' evaluation, the deadlines),
   which reads those dossiers' rows from the page in memory, not back from SQLite
   (``connector.store.written``),
4. runs the caller's ``then`` (the page's bookmark) in the same transaction,
5. and quarantines, with DS's raw answer and the error text, every dossier for which any of this
   raised, **whatever the exception** (an integrity error, a key error, a hook's bug): the other
   dossiers, the page and its bookmark still commit.

Two attempts, so that the common case pays for no savepoint (a savepoint per page made SQLite
journal every page it touched to a temporary file): first the whole batch in one transaction; if
anything raises, that transaction is rolled back and the batch is entered again dossier by dossier,
each in a savepoint of its own (its rows and its hook's rows go together or not at all), in one
transaction with ``then``. A dossier is thus never left with half its rows.

Faults of the machine (disk full, read-only file system, I/O error, database locked) are not the
dossier's: they propagate, the transaction rolls back, nothing is quarantined, and the next sync
completes the mirror.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from connector.errors import machine_fault
from connector.logs import get_logger
from connector.store.deletions import quarantine
from connector.store.save import SaveCounts, save_dossiers, split_dossiers
from connector.store.written import remembered

log = get_logger(__name__)

Hook = Callable[[sqlite_utils.Database, int, list[int]], None]  # (db, démarche, changed numbers)
Then = Callable[[sqlite_utils.Database], None]

# SQLite primary result codes that say "this machine", not "this dossier" (sqlite3.h).
_MACHINE_CODES = {
    3,   # SQLITE_PERM
    5,   # SQLITE_BUSY
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    8,   # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    26,  # SQLITE_NOTADB
}


def _not_the_dossiers(exc: BaseException) -> bool:
    """True when ``exc`` is this machine's fault (disk, permissions, memory, lock), not a dossier's:
    the faults :func:`connector.errors.machine_fault` words for people, and the other SQLite codes
    that say "this machine" (busy, locked, out of memory, corrupt)."""
    if machine_fault(exc) is not None or isinstance(exc, (OSError, MemoryError)):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _MACHINE_CODES


@dataclass
class Entry:
    """What ``enter`` did: the savers' counts, and the dossiers quarantined ``(number, error)``
    (number None when DS's node could not even be named)."""

    counts: SaveCounts = field(default_factory=SaveCounts)
    quarantined: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def saved(self) -> int:
        return self.counts.new + self.counts.updated + self.counts.unchanged


def enter(
    db: sqlite_utils.Database,
    demarche_number: int,
    nodes: list[Any],
    *,
    hook: Hook | None = None,
    then: Then | None = None,
    unknown_types: set[str] | None = None,
) -> Entry:
    """Enter these dossier nodes (DossierFragment, as DS sent them) into the mirror; see the module
    docstring. ``hook(db, démarche, numbers)`` runs on the new and changed dossiers inside the
    transaction; ``then(db)`` runs last in it (a page's bookmark). ``unknown_types``: the champ
    types already warned about in this run (see ``save_dossiers``). Opens and commits its own
    transaction: never call it inside one. The caller unlinks ``counts.removed_files`` (after the
    commit, which has happened when this returns)."""
    if db.conn.in_transaction:
        raise RuntimeError("enter() opens its own transaction: do not call it inside one")
    good, bad = split_dossiers(nodes)
    try:
        with db.atomic():
            counts = save_dossiers(db, demarche_number, good, unknown_types=unknown_types)
            if counts.changed and hook is not None:
                with remembered(db, counts.written):  # the hooks read the page's rows from memory
                    hook(db, demarche_number, counts.changed)
            entry = Entry(counts)
            for node, error in bad:
                entry.quarantined.append(_quarantine_node(db, demarche_number, node, error))
            if then is not None:
                then(db)
        return entry
    except Exception as exc:  # noqa: BLE001 - any dossier's fault: enter them one by one
        if _not_the_dossiers(exc):
            raise
        if len(good) <= 1 and not bad and then is None:
            # One dossier alone: no second attempt needed to know whose fault it is.
            entry = Entry()
            if good:
                entry.quarantined.append(_quarantine_node(db, demarche_number, good[0], _describe(exc)))
            return entry
        log.info("store.batch_retried_one_by_one", demarche=demarche_number, dossiers=len(good),
                 error=_describe(exc))
    entry = Entry()
    with db.atomic():
        for node in good:
            try:
                with db.atomic():  # a savepoint: this dossier's rows and its hook's, or nothing
                    counts = save_dossiers(db, demarche_number, [node], unknown_types=unknown_types)
                    if counts.changed and hook is not None:
                        with remembered(db, counts.written):
                            hook(db, demarche_number, counts.changed)
            except Exception as exc:  # noqa: BLE001 - whatever it is, this dossier alone
                if _not_the_dossiers(exc):
                    raise
                entry.quarantined.append(_quarantine_node(db, demarche_number, node, _describe(exc)))
                continue
            entry.counts.add(counts)
        for node, error in bad:
            entry.quarantined.append(_quarantine_node(db, demarche_number, node, error))
        if then is not None:
            then(db)
    return entry


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(exc, RuntimeError) and cause is not None:  # save_dossiers' wrapper: say what it wraps
        exc = cause
    return f"{type(exc).__name__}: {exc}"


def _quarantine_node(db: sqlite_utils.Database, demarche_number: int, node: Any,
                     error: str) -> tuple[int | None, str]:
    number = node.get("number") if isinstance(node, dict) else None
    try:
        number = int(number) if number is not None else None
    except (TypeError, ValueError):
        number = None
    quarantine(db, demarche_number, number, error, json.dumps(node, ensure_ascii=False, default=str))
    return number, error  # the caller logs it, under its own name (sync., followup.)
