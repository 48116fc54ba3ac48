"""What the transaction in progress just wrote for a page of dossiers, kept in memory for its hooks.

``save_dossiers`` builds every row of the changed dossiers before writing them; the door
(``connector.store.door.enter``) hands those rows to ``remembered`` while the hooks run in the same
transaction, so that the forms' and the follow-up's reads of *those dossiers* (``dossier_rows``,
``champs_by_dossier``, ``dossier_facts``) are answered from the page's own rows instead of being
read back from SQLite. The rows are exactly what was just written, turned into what SQLite gives
back (a ``value`` column stores Python's ``True`` as 1, the dossier's pending-deletion flag was
just cleared): a reader sees the same thing either way. What is not on the page (older dossiers,
the démarche-wide rules, messages, files, the journal) is still read from the mirror, the one
source. Outside ``remembered``, or for a dossier not on the page, nothing is remembered.

One connection, one page at a time: the memo is keyed by the connection and cleared when the
hooks return (or raise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils


@dataclass
class Written:
    """Rows of the changed dossiers of one page, by dossier: the ``dossiers`` row (a dict of its
    columns) and the champ and annotation rows (tuples in ``save.CHAMP_COLUMNS`` order)."""

    dossiers: dict[int, dict[str, Any]] = field(default_factory=dict)
    champs: dict[int, list[tuple]] = field(default_factory=dict)
    annotations: dict[int, list[tuple]] = field(default_factory=dict)

    def covers(self, numbers: list[int]) -> bool:
        return bool(numbers) and all(n in self.dossiers for n in numbers)


_memo: dict[int, Written] = {}  # id(connection) -> the page whose hooks are running


@contextmanager
def remembered(db: sqlite_utils.Database, written: Written | None) -> Iterator[None]:
    """While the block runs (the hooks, inside the page's transaction), ``recall`` answers with
    ``written``. Nested use is refused: one page at a time per connection."""
    if written is None:
        yield
        return
    key = id(db.conn)
    if key in _memo:
        raise RuntimeError("remembered() is already in use on this connection")
    _memo[key] = written
    try:
        yield
    finally:
        _memo.pop(key, None)


def recall(db: sqlite_utils.Database, numbers: list[int]) -> Written | None:
    """The page's rows when every one of ``numbers`` is a dossier the page just wrote; else None
    (read the mirror)."""
    written = _memo.get(id(db.conn))
    return written if written is not None and written.covers(list(numbers)) else None
