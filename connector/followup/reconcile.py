"""Read-back of an action whose outcome is not known (``sending`` after a crash, ``unknown`` after a
timeout): the dossier has just been re-read from DS into the mirror; does it show the effect?

- a message: one in the messagerie from that instructeur's e-mail, with that exact body, created at
  or after DS's clock when the request was claimed (minus a small skew);
- annotations: each has the value sent;
- a state change: the dossier is in (or past) the target state.

``happened`` answers True (mark ``sent``), or False (DS shows it did not happen: safe to send again).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlite_utils

from connector.followup import deadlines
from connector.store import followup as store

SKEW = timedelta(minutes=2)

TARGET_STATES = {
    "passer_en_instruction": ("en_instruction", "accepte", "refuse", "sans_suite"),
    "repasser_en_instruction": ("en_instruction", "sans_suite"),
    "classer_sans_suite": ("sans_suite",),
}


def _same_body(a: str | None, b: str | None) -> bool:
    return " ".join((a or "").split()) == " ".join((b or "").split())


def find_message(db: sqlite_utils.Database, action: store.Action) -> dict[str, Any] | None:
    since = deadlines.parse_ds(action.sending_ds_at)
    for m in store.messages_of(db, action.dossier_number):
        if (m["email"] or "").lower() != (action.instructeur_email or "").lower():
            continue
        if not _same_body(m["body"], action.payload.get("body")):
            continue
        at = deadlines.parse_ds(m["created_at"])
        if since is not None and at is not None and at < since - SKEW:
            continue
        return m
    return None


def annotation_values_match(db: sqlite_utils.Database, action: store.Action) -> bool:
    wanted = action.payload.get("annotations") or []
    ids = [a["id"] for a in wanted]
    found = store.annotation_values(db, [action.dossier_number], ids)[action.dossier_number]
    for item in wanted:
        row = found.get(item["id"])
        if row is None:
            return False
        (key, value), = item["value"].items()
        stored = row["value"]
        if key == "checkbox":
            if bool(stored) != bool(value):
                return False
        elif str(stored) != str(value):
            return False
    return True


def happened(db: sqlite_utils.Database, action: store.Action, state: str | None) -> tuple[bool, str | None]:
    """(did DS do it, the remote id or evidence)."""
    if action.kind in ("reminder", "closure_message", "renewal_reminder"):
        m = find_message(db, action)
        return (m is not None, m["id"] if m else None)
    if action.kind == "closure_annotations":
        return annotation_values_match(db, action), None
    return state in TARGET_STATES[action.kind], state
