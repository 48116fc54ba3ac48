"""The reconciliation pass (``sync --full``; daily in the daemon): what ``updatedSince`` cannot see.

The lean listing (number, ``dateDerniereModification``, state of every visible dossier, 100 a
request) is compared with the mirror (NOTES.md rule 7):

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
from typing import TYPE_CHECKING

from connector.logs import get_logger
from connector.store import clear_pending, clear_unnamed_quarantine, confirm_vanished, finish_stream
from connector.store.values import instant
from connector.sync.attachments import remove_local
from connector.sync.pages import PAGE_SIZES, listing

if TYPE_CHECKING:
    from connector.sync.engine import DemarcheSync

log = get_logger(__name__)


async def reconcile(job: DemarcheSync) -> None:
    db, number = job.db, job.number
    remote: dict[int, str] = {}
    async for nodes in listing(job.client, number, PAGE_SIZES[0]):  # lean: a full page is cheap
        for node in nodes:
            remote[int(node["number"])] = node["dateDerniereModification"]
    local = dict(db.execute(
        "SELECT number, date_derniere_modification FROM dossiers WHERE demarche_number = ?", [number]
    ).fetchall())
    in_trash = {n for (n,) in db.execute(
        "SELECT number FROM dossiers WHERE demarche_number = ? AND pending_deletion = 1", [number])}
    back = sorted(in_trash & set(remote))  # listed again, so out of the trash, even if not re-dated
    if back:
        clear_pending(db, back)
        in_trash -= set(back)
    differ = sorted(n for n, date in remote.items()
                    if n not in local or instant(date) != instant(local[n]))
    missing = sorted(set(local) - set(remote) - in_trash)
    quarantined = {n for (n,) in db.execute(
        "SELECT dossier_number FROM quarantine WHERE demarche_number = ? AND dossier_number IS NOT NULL",
        [number])}
    log.info("sync.reconcile_listed", remote=len(remote), local=len(local), differ=len(differ),
             missing=len(missing), quarantined=len(quarantined))

    if differ:
        oldest = min((remote[n] for n in differ), key=instant)
        since = instant(oldest) - job.overlap
        pass_cost = math.ceil(sum(instant(d) >= since for d in remote.values()) / job.page_size)
        if pass_cost < len(differ):
            await job.dossiers(since=since.isoformat())
        else:
            for n in differ:
                await job.reread(n)

    vanished = 0
    for n in missing:
        if await job.reread(n) == "not_found":
            remove_local(confirm_vanished(db, n))
            vanished += 1
    job.report.deleted += vanished

    for n in sorted(quarantined - set(differ)):
        await job.reread(n)
    mirrored = {n for (n,) in db.execute("SELECT number FROM dossiers WHERE demarche_number = ?", [number])}
    if set(remote) <= mirrored:  # whatever could not be named before is in the mirror now
        clear_unnamed_quarantine(db, number)

    with db.atomic():
        finish_stream(db, number, "listing")
    log.info("sync.reconciled", refetched=len(differ), vanished=vanished, retried=len(quarantined))
