"""When the follow-up after a sync may pass over a deadline démarche (issue 18): pure, no I/O.

Each completed planning of a démarche (``actions.Runner.run_demarche``, or the statuses alone when no
action is enabled) leaves a :class:`Mark` (table ``followup_plans``). The follow-up after a sync skips
the démarche only when **all** of these hold (:func:`why_plan` returns None), and plans it otherwise:

1. its mirror generation is the one the planning read before it started (``mirror_generations``:
   bumped by triggers, in the writing transaction, on every write to the démarche's dossiers (new,
   updated, purged, trash and quarantine flags), its trash, quarantine and tombstone lists, its
   descriptor (when its JSON changed) and its actions journal; the follow-up's own re-reads and sends
   included, so the run after one that acted plans again);
2. DS's clock is at or after the planning's (a clock that went back plans) and before ``until``: the
   first instant at which time alone changes a status, a next step, a due reminder or a due closure
   of one of its dossiers (``conventions.next_change``), :data:`NEVER` when none does, unknown (None)
   when it could not be computed: then it always plans;
3. the démarche's effective config (deadline settings, actions on or off, templates, profile and
   roles, fee, renewal, the resolved follow-up profile, ``instructeur_email``, whether the run acts)
   has the digest the planning recorded (:func:`digest`);
4. none of its journal rows is open (planned, sending, unknown: waiting for the sending window, for a
   read-back, or to be sent): those always plan;
5. the code is the same version (:func:`code_version`: the package's version and
   :data:`PLANNER_VERSION`), so an upgrade plans everything again.

Why a skipped démarche's ``conventions`` rows (what ``status`` and the web show) are still exactly
right at the new DS clock: a planning recomputes them from the mirror, the journal, the config and DS's
clock alone; rules 1, 3 and 5 say the first three are those of the last planning, and rule 2 that no
status or next step computed from that clock changes before ``until``. The sending window and the
settle delay matter only to open journal rows (rule 4).

``actions run`` and ``actions plan`` never skip: an operator asking gets a full planning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from connector import __version__

NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)  # nothing changes with time alone
PLANNER_VERSION = 1  # bump with any change to what the planning decides: every démarche plans again


def code_version() -> str:
    return f"{__version__}+planner{PLANNER_VERSION}"


def digest(demarche: Any, profile: Any, instructeur_email: str | None, act: bool) -> str:
    """The digest of what the planning of a démarche reads from the config: its effective
    ``DemarcheConfig`` (a superseded campaign's has its actions off), the resolved ``FollowupProfile``,
    the instructeur the actions are sent as, and whether the run acts or refreshes the statuses only."""
    facts = {"demarche": dataclasses.asdict(demarche), "profile": dataclasses.asdict(profile) if profile else None,
             "instructeur_email": instructeur_email, "act": act}
    text = json.dumps(facts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Mark:
    """What a démarche's last completed planning left (a ``followup_plans`` row)."""

    generation: int
    planned_at: datetime  # DS's clock the statuses were computed at
    until: datetime | None  # the first instant time alone changes something; None: unknown
    digest: str
    version: str

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> Mark | None:
        if row is None:
            return None
        until = row["until"]
        return cls(row["generation"], datetime.fromisoformat(row["planned_at"]),
                   datetime.fromisoformat(until) if until else None, row["config_digest"], row["code_version"])

    def row(self) -> dict[str, Any]:
        """The ``store.save_followup_plan`` arguments."""
        return {"generation": self.generation, "planned_at": _iso(self.planned_at),
                "until": _iso(self.until) if self.until else None, "config_digest": self.digest,
                "code_version": self.version}


@dataclass(frozen=True)
class Current:
    """What holds now, for the same démarche."""

    generation: int
    clock: datetime  # DS's clock
    digest: str
    version: str
    open_actions: int


def why_plan(mark: Mark | None, now: Current) -> str | None:
    """Why the démarche must be planned now, or None: it may be skipped (see the module docstring)."""
    if mark is None:
        return "no completed planning recorded"
    if mark.version != now.version:
        return f"the code changed ({mark.version} → {now.version})"
    if mark.digest != now.digest:
        return "its config changed"
    if now.open_actions:
        return f"{now.open_actions} action(s) of its journal not final"
    if mark.generation != now.generation:
        return "its mirror or journal changed"
    if mark.until is None:
        return "the next change is unknown"
    if now.clock < mark.planned_at:
        return "DS's clock is before the last planning's"
    if now.clock >= mark.until:
        return f"DS's clock reached {_iso(mark.until)}"
    return None


def until_text(until: datetime | None) -> str:
    """``until`` for a log line: an ISO instant, ``never`` or ``unknown``."""
    return "unknown" if until is None else "never" if until >= NEVER else _iso(until)


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="seconds")
