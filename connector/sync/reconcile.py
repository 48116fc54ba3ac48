"""The reconciliation pass (``sync --full``; daily in the daemon): what ``updatedSince`` cannot see.

The lean listing (number, ``dateDerniereModification``, state of every visible dossier, 100 a
request) is compared with the mirror (docs/ds-api.md rule 7) by ``decide``, a pure function; the engine
carries out its ``Plan`` (``DemarcheSync.reconcile``):

- dossiers missing locally or dated differently are fetched again: one by one when they are few,
  else by a dossiers pass from the oldest of them (whichever costs fewer requests);
- local dossiers DS no longer lists, and that are not in its trash, are read by number: DS's
  ``not_found`` confirms they vanished (auto-expired dossiers sit in no deleted list for about two
  weeks), and they are purged and tombstoned like deleted ones;
- local dossiers flagged as in DS's trash that DS lists again are unflagged;
- quarantined dossiers are tried again; quarantine entries without a number (dossiers DS could
  not even name) go once every dossier DS lists is in the mirror.

It runs after the deleted and pending lists were read in full, so the trash flags are current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from connector.store.mirror import Held
from connector.store.values import instant


@dataclass(frozen=True)
class Plan:
    unflag: list[int]  # in the trash locally, yet listed: out of it
    refetch: list[int]  # missing locally or dated differently
    refetch_since: str | None  # when set, refetch by a dossiers pass from here (fewer requests)
    check_vanished: list[int]  # held, not listed, not in the trash: read by number
    retry: list[int]  # quarantined and not refetched anyway


def decide(remote: dict[int, str], held: Held, *, overlap: timedelta, page_size: int) -> Plan:
    """What to do, from what DS lists (``number -> dateDerniereModification``) and what we hold."""
    local = held.dates
    unflag = sorted(held.in_trash & set(remote))  # listed again, so out of the trash, even if not re-dated
    in_trash = held.in_trash - set(unflag)
    refetch = sorted(n for n, date in remote.items() if n not in local or instant(date) != instant(local[n]))
    since = None
    if refetch:
        start = min(instant(remote[n]) for n in refetch) - overlap
        pass_cost = math.ceil(sum(instant(d) >= start for d in remote.values()) / page_size)
        if pass_cost < len(refetch):
            since = start.isoformat()
    return Plan(
        unflag=unflag,
        refetch=refetch,
        refetch_since=since,
        check_vanished=sorted(set(local) - set(remote) - in_trash),
        retry=sorted(held.quarantined - set(refetch)),
    )
