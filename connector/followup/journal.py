"""The side-effect journal's state machine (docs/operations.md §5): every write on DS is a row of ``actions``.

::

    planned ──claim──▶ sending ──DS answered──▶ sent | failed
       ▲                  │ └──no clear answer (MutationOutcomeUnknown)──▶ unknown
       │                  └──certainly not sent (MutationNotSent, 429, auth)──▶ planned
       ├──────── read back: DS shows it did not happen ◀── sending | unknown (after a crash/timeout)
       │                   read back: DS shows it happened ──▶ sent
       └── retry (operator) ◀── failed | unknown          cancel (operator or rule) ◀── planned | failed | unknown

Each transition is a compare-and-set on the row, committed at once on the journal's own connection,
which runs ``synchronous=FULL`` (``open_db``'s default): the ``sending`` commit is on disk before the
request leaves, so after any crash the row says a request may have gone and it is read back, never
blindly sent again.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from connector.store import followup as store
from connector.store.sql import now_utc

TRANSITIONS: dict[str, tuple[str, ...]] = {  # to -> from
    "sending": ("planned",),
    "sent": ("sending", "unknown"),
    "failed": ("planned", "sending", "unknown"),  # planned: refused before sending (rights, config)
    "unknown": ("sending",),
    "planned": ("sending", "unknown"),
    "cancelled": ("planned", "failed", "unknown"),
}


class JournalError(Exception):
    """An operator asked for a transition the action's state does not allow."""


def _commit(db: sqlite_utils.Database) -> None:
    if db.conn.in_transaction:
        db.conn.commit()


def _answer(answer: Any) -> str | None:
    if answer is None or isinstance(answer, str):
        return answer
    return json.dumps(answer, ensure_ascii=False, sort_keys=True)


def claim(db: sqlite_utils.Database, action_id: int, ds_now: str) -> bool:
    ok = store.claim(db, action_id, ds_now)
    _commit(db)
    return ok


def _move(db: sqlite_utils.Database, action_id: int, state: str, **fields: Any) -> bool:
    """Compare-and-set the action to ``state`` from one of the states allowed to lead there; commit."""
    ok = store.transition(db, action_id, TRANSITIONS[state], state, **fields)
    _commit(db)
    return ok


def sent(db: sqlite_utils.Database, action_id: int, answer: Any, remote_id: str | None = None,
         note: str | None = None) -> bool:
    return _move(db, action_id, "sent", ds_answer=_answer(answer), remote_id=remote_id, sent_at=now_utc(),
                 last_error=note)


def failed(db: sqlite_utils.Database, action_id: int, reason: str, answer: Any = None) -> bool:
    return _move(db, action_id, "failed", ds_answer=_answer(answer), last_error=reason)


def unknown(db: sqlite_utils.Database, action_id: int, reason: str) -> bool:
    return _move(db, action_id, "unknown", last_error=reason)


def replan(db: sqlite_utils.Database, action_id: int, reason: str) -> bool:
    """Back to planned: certainly not sent, or DS shows it did not happen."""
    return _move(db, action_id, "planned", last_error=reason)


def cancel(db: sqlite_utils.Database, action_id: int, reason: str) -> bool:
    return _move(db, action_id, "cancelled", last_error=reason)


def operator_retry(db: sqlite_utils.Database, action_id: int) -> store.Action:
    """``actions retry ID``: a failed action goes back to planned. An unknown one too, but only through
    the read-back (the next run reconciles it first), never straight to a resend."""
    action = store.action(db, action_id)
    if action is None:
        raise JournalError(f"no action {action_id}")
    if action.state not in ("failed", "cancelled"):
        raise JournalError(f"action {action_id} is {action.state}: only a failed or cancelled action can be retried"
                           + (" (an unknown one is read back from DS at the next run)" if action.state == "unknown" else ""))
    moved = store.transition(db, action_id, ("failed", "cancelled"), "planned",
                             last_error=f"retry asked after: {action.last_error}")
    _commit(db)
    return _operator_outcome(db, action_id, moved)


def operator_cancel(db: sqlite_utils.Database, action_id: int) -> store.Action:
    action = store.action(db, action_id)
    if action is None:
        raise JournalError(f"no action {action_id}")
    if action.state not in TRANSITIONS["cancelled"]:
        raise JournalError(f"action {action_id} is {action.state}: only a planned, failed or unknown action can be "
                           "cancelled")
    return _operator_outcome(db, action_id, cancel(db, action_id, "cancelled by the operator"))


def _operator_outcome(db: sqlite_utils.Database, action_id: int, moved: bool) -> store.Action:
    """The action after an operator's move; a run that moved it first (the compare-and-set lost) is
    said, not reported as done."""
    action = store.action(db, action_id)
    if not moved:
        raise JournalError(f"action {action_id} changed meanwhile (it is {action.state if action else 'gone'} now, "
                           "a run is taking care of it): nothing done; look again with `actions list`")
    return action  # type: ignore[return-value]
