"""The sync engine: each configured démarche mirrored into SQLite, page by page, crash-safe.

Démarches are synced concurrently (``[sync] concurrency`` at a time), sharing one ``DsClient`` and
its request budget. There is ONE SQLite connection, on the writer's thread
(``connector.store.writer``): the event loop hands it whole units of work and awaits them, and each
commit (a page and its stream's cursor) is one such unit, so commits are serialised by
construction, no transaction ever spans a request to DS, and a cancelled task never leaves one open.
While a page commits (SQLite releases the GIL), the loop receives and decodes the next ones.

Per démarche (``DemarcheSync``), in this order:

1. the descriptor (groupes, instructeurs, champ descriptors) when unknown, older than a day, or
   ``--full``; the dossier pages also prove the token covers the démarche, so an incremental sync
   with nothing new costs 3 requests: one page of each stream;
2. **dossiers**: ``updatedSince = watermark − overlap`` (the watermark is the greatest
   ``dateDerniereModification`` of the last completed pass: DS's clock only), always in the
   ``(updated_at, id)`` order, so a dossier changed during the pass comes again later in it;
3. **deleted** (purges: rows and files go, a tombstone stays), read back to the oldest usager
   deletion still in the trash because DS backdates their purge, and **pending_deleted** (the
   trash: dossiers flagged, they may return); ``--full`` reads both lists whole. Both lists are
   read while the dossier pages are (three streams of the démarche at once, each with its own
   cursor and commits: no tail of list requests after the last dossier page);
4. with ``full``: the reconciliation (``reconcile.decide`` says what to do, ``reconcile`` here
   does it), quarantined dossiers retried;
5. attachments the policy wants: downloaded in the background (bounded) right after the page that
   listed them, while the next pages come; at the end the ones whose URL expired or whose virus
   scan was still pending (their dossiers are re-read).

Every stream is read one page ahead (``pages.prefetched``): page N+1 is on its way while page N is
stored. Every page and its stream's cursor commit in one transaction, in the stream's order; a
killed sync resumes from the last committed page with the filter that minted its cursor. Savers
skip what did not change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils
import structlog

from connector.config import Config, select_demarches
from connector.ds.client import DsClient
from connector.errors import (
    EX_CANTCREAT,
    EX_DATAERR,
    EX_SOFTWARE,
    ApiError,
    BadToken,
    ConfigError,
    ConnectorError,
    DemarcheNotFound,
    DemarcheUnauthorized,
    DsUnreachable,
    PageFailed,
    Stopped,
    TokenExpired,
)
from connector.logs import get_logger
from connector.store import (
    clear_pending,
    clear_unnamed_quarantine,
    confirm_vanished,
    finish_run,
    finish_stream,
    get_bookmark,
    quarantine,
    save_deleted,
    save_demarche,
    save_pending_deleted,
    set_bookmark,
    start_run,
)
from connector.store.door import Entry, enter, machine_fault
from connector.store.mirror import (
    checkpoint,
    descriptor_synced_at,
    dossier_numbers,
    held,
    known_dossiers,
    trashed_by_usager,
    tune_for_sync,
)
from connector.store.values import instant
from connector.store.writer import Writer
from connector.sync.attachments import Downloader, remove_local, sweep
from connector.sync.pages import (
    DELETED,
    DOSSIERS,
    LISTING,
    PENDING_DELETED,
    PAGE_SIZES,
    Page,
    Stream,
    failed_answer,
    pages,
    prefetched,
)
from connector.sync.reconcile import decide

log = get_logger(__name__)

FIRST_PASS_SINCE = "2000-01-01T00:00:00+00:00"  # before any DS dossier: the whole démarche
DELETED_LOOKBACK = timedelta(days=15)  # DS backdates usager deletions by ~2 weeks (docs/ds-api.md §6)
PENDING_SCAN_PATIENCE = timedelta(hours=24)  # a scan still pending after that is stuck: --full only
DESCRIPTOR_MAX_AGE = timedelta(hours=24)
PENDING_SCAN_RECHECK = timedelta(minutes=5)
MAX_REREADS = 20  # dossier re-reads per démarche and run for fresh URLs or finished scans
DOWNLOADS_PER_DEMARCHE = 8  # attachment downloads in flight per démarche

ProgressFn = Callable[["DemarcheReport"], None]


class DemarcheCrashed(ConnectorError):
    """A démarche's sync raised what the connector does not expect (a bug): that démarche is
    reported failed with the error, the others go on. Exit 70 (EX_SOFTWARE)."""

    exit_code = EX_SOFTWARE


class SyncHooks:
    """What the layers above the mirror plug into a sync (form evaluation, convention deadlines).
    The commands layer passes one; the engine knows nothing of what they do. Default: nothing.

    ``descriptor_saved`` runs inside the descriptor's transaction, in a savepoint of its own: a hook
    that raises loses its own writes, is logged (``sync.hook_failed``), and the mirror goes on.
    ``dossiers_changed`` runs through the door (``connector.store.door.enter``) inside the page's
    transaction: a hook that raises for a dossier gets that dossier quarantined with the error (its
    rows and the hook's rolled back together), and the page goes on. Purged dossiers take their
    derived rows with them through foreign keys (``ON DELETE CASCADE`` on ``dossiers.number``).
    ``demarche_done`` runs once a démarche's streams are done, outside any transaction, unguarded: one
    that raises is that démarche's bug (reported failed, exit 70; the other démarches go on). Each
    call is guarded once, here or by the door, never again by the hooks themselves. All three run on
    the SQLite writer's thread (``connector.store.writer``), each inside a unit of work, with the sync's
    one connection: they must not touch the event loop."""

    def descriptor_saved(self, db: sqlite_utils.Database, demarche: int) -> None:
        """The démarche's descriptor (champ descriptors, groupes) was just saved."""

    def dossiers_changed(self, db: sqlite_utils.Database, demarche: int, numbers: list[int]) -> None:
        """These dossiers (new or changed) were just saved."""

    def demarche_done(self, db: sqlite_utils.Database, demarche: int, report: DemarcheReport) -> None:
        """The démarche's sync is done (not called when it failed or was stopped)."""


@dataclass
class DemarcheReport:
    number: int
    label: str | None = None
    pages: int = 0
    dossiers: int = 0  # dossier nodes received
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # local dossiers purged (deleted by DS or vanished)
    pending: int = 0  # local dossiers newly flagged as in DS's trash
    quarantined: int = 0
    rereads: int = 0
    files: int = 0
    file_bytes: int = 0
    files_failed: int = 0
    files_failed_local: int = 0  # fetched but not written here: disk full, permission, name refused
    started: float = field(default_factory=time.monotonic)
    error: ConnectorError | None = None
    # What a progress display shows (not recorded): the phase (descriptor, dossiers, deletions,
    # reconciliation, attachments, done), how far it is when that is known, and the files queued.
    phase: str = "waiting"
    step_done: int = 0
    step_total: int | None = None
    files_queued: int = 0


@dataclass
class SyncReport:
    run_id: int
    full: bool
    demarches: list[DemarcheReport]
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    stopped: bool = False  # asked to stop (SIGTERM) before the end: what was committed stays

    def total(self, name: str) -> int:
        return sum(getattr(d, name) for d in self.demarches)

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.stopped:
            return "stopped"
        failed = [d for d in self.demarches if d.error is not None]
        if not failed:
            return "partial" if self.incomplete else "ok"  # a dossier or file left out is not ok
        return "failed" if len(failed) == len(self.demarches) else "partial"

    @property
    def demarches_done(self) -> bool:
        """Every démarche went through (none failed, nothing left unwritten here, not stopped): what
        comes after a sync (the follow-up) may run, even if some dossiers were quarantined or some
        files failed ("partial", exit 65: those stay out until they can come in)."""
        return (not self.interrupted and not self.stopped and all(d.error is None for d in self.demarches)
                and not self.total("files_failed_local"))

    @property
    def incomplete(self) -> bool:
        """Something DS sent is not in the mirror: a dossier quarantined, a file that failed."""
        return bool(self.total("files_failed_local") or self.total("quarantined") or self.total("files_failed"))

    @property
    def exit_code(self) -> int:
        """The highest of: 65 (EX_DATAERR) dossiers quarantined or files failed; 70 a démarche's
        bug; 73 files not written here; 75 DS unavailable; 78 config or token."""
        codes = [d.error.exit_code for d in self.demarches if d.error is not None]
        if self.total("quarantined") or self.total("files_failed"):
            codes.append(EX_DATAERR)
        if self.total("files_failed_local"):
            codes.append(EX_CANTCREAT)  # below 75 and 78: DS unavailable or a bad config says more
        return max(codes, default=0)

    def summary(self, indent: str = "  ") -> str:
        """Two lines on purpose, each within 100 columns (5-digit counts included): the verdict and
        its cost, then the dossiers and files; a third when a file could not be written here."""
        kind = "full sync" if self.full else "sync"
        count = len(self.demarches)
        lines = [
            f"{kind} {self.status}: {count} démarche{'s' if count > 1 else ''}, {self.requests} requests, "
            f"{self.seconds:.1f} s",
            f"{indent}{self.total('new')} new, {self.total('updated')} updated, {self.total('deleted')} deleted, "
            f"{self.total('pending')} to the trash, {self.total('quarantined')} quarantined, "
            f"{self.total('files')} files",
        ]
        if self.total("quarantined"):
            lines.append(f"{indent}{self.total('quarantined')} dossier(s) quarantined (see `status` and the "
                         "quarantine table): tried again by the next --full")
        if self.total("files_failed"):
            lines.append(f"{indent}{self.total('files_failed')} file(s) failed (checksum, size, DS refused: see "
                         "sync.file_failed): tried again later with a backoff")
        if self.total("files_failed_local"):
            lines.append(f"{indent}{self.total('files_failed_local')} file(s) NOT written here (disk full, permission "
                         "or name refused): tried again next sync")
        return "\n".join(lines)


async def run_sync(
    config: Config,
    client: DsClient,
    *,
    demarches: list[int] | None = None,
    full: bool = False,
    kind: str = "once",
    progress: ProgressFn | None = None,
    hooks: SyncHooks | None = None,
    stop: asyncio.Event | None = None,
) -> SyncReport:
    """Sync the configured démarches (or the listed ones), ``[sync] concurrency`` at a time.
    Per-démarche failures (unauthorized, DS unavailable) are reported and the other démarches go
    on; a bad or expired token, or DS not reachable at all (DsUnreachable: refused, DNS, TLS),
    stops the run (the other démarches are cancelled between two commits) and raises. ``stop`` set (SIGTERM) ends the run after the pages being stored commit:
    no new request is sent and the report says "stopped". The caller holds the instance lock and
    opened ``client`` (``connector.service``: one per run, on the process's budget for the token);
    the report counts the requests this sync sent on it."""
    selected = select_demarches(config, demarches)
    started = time.monotonic()
    async with Writer(config.database.path) as store:
        return await _sync(store, config, client, selected, full=full, kind=kind, progress=progress,
                           hooks=hooks, stop=stop, started=started)


async def _sync(store: Writer, config: Config, client: DsClient, selected: list[Any], *, full: bool, kind: str,
                progress: ProgressFn | None, hooks: SyncHooks | None, stop: asyncio.Event | None,
                started: float) -> SyncReport:
    await store(tune_for_sync)
    run_id = await store(start_run, "full" if full else kind, [d.number for d in selected])
    await store(sweep, config.sync.download_dir)  # leftovers of a run killed between a commit and an unlink
    report = SyncReport(run_id, full, [])
    before = replace(client.stats)
    fatal: BaseException | None = None
    try:
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            log.info("sync.started", demarches=[d.number for d in selected], full=full,
                     concurrency=config.sync.concurrency)
            async with Downloader(config.sync.attachments, config.sync.download_dir) as downloader:
                run = _Run(store, client, downloader, config, report, progress, full, hooks or SyncHooks(), stop)
                await run.all(selected)
    except BaseException as exc:
        fatal = exc
        if not isinstance(exc, ConnectorError):
            report.interrupted = True
        raise
    finally:
        report.requests = client.stats.requests - before.requests
        report.retries = client.stats.retries - before.retries
        report.rate_limited = client.stats.rate_limited - before.rate_limited
        report.seconds = time.monotonic() - started
        status = report.status if fatal is None or report.interrupted else "failed"
        await store(
            finish_run, run_id, status=status, requests=report.requests, pages=report.total("pages"),
            dossiers=report.total("dossiers"), new=report.total("new"), updated=report.total("updated"),
            deleted=report.total("deleted"), quarantined=report.total("quarantined"),
            errors=sum(d.error is not None for d in report.demarches) + (fatal is not None),
        )
        if fatal is None:
            await store(checkpoint)
        log.info("sync.finished", status=status, requests=report.requests, writer_units=store.units,
                 writer_cpu_seconds=round(store.cpu_seconds, 2), process_cpu_seconds=round(time.process_time(), 2),
                 seconds=round(report.seconds, 2), new=report.total("new"), updated=report.total("updated"),
                 deleted=report.total("deleted"), quarantined=report.total("quarantined"))
    return report


@dataclass
class _Run:
    """The démarches of one run, each in a task of its own, ``concurrency`` at a time."""

    store: Writer
    client: DsClient
    downloader: Downloader
    config: Config
    report: SyncReport
    progress: ProgressFn | None
    full: bool
    hooks: SyncHooks
    stop: asyncio.Event | None
    unknown_types: set[str] = field(default_factory=set)  # champ types warned about in this run

    async def all(self, selected: list[Any]) -> None:
        slots = asyncio.Semaphore(self.config.sync.concurrency)
        tasks = [asyncio.create_task(self.one(demarche, slots)) for demarche in selected]
        try:
            await asyncio.gather(*tasks)  # only a token or config error comes out of one()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            order = [d.number for d in selected]
            self.report.demarches.sort(key=lambda r: order.index(r.number))

    async def one(self, demarche: Any, slots: asyncio.Semaphore) -> None:
        async with slots:
            if self.stop is not None and self.stop.is_set():  # not started: nothing to say about it
                self.report.stopped = True
                return
            result = DemarcheReport(demarche.number, demarche.label)
            self.report.demarches.append(result)
            # contextvars are per task: this binding is this démarche's only.
            with structlog.contextvars.bound_contextvars(demarche=demarche.number):
                job = DemarcheSync(self.store, self.client, self.downloader, self.config, result, self.progress,
                                   full=self.full, hooks=self.hooks, stop=self.stop,
                                   unknown_types=self.unknown_types)
                try:
                    await job.run()
                except Stopped:
                    self.report.stopped = True
                    log.info("sync.stopped")
                    return
                except (DemarcheUnauthorized, DemarcheNotFound) as exc:
                    result.error = exc
                    log.error("sync.demarche_refused", error=str(exc))
                except (ConfigError, BadToken, TokenExpired, DsUnreachable) as exc:  # every démarche: stop
                    result.error = exc
                    raise
                except ApiError as exc:
                    result.error = exc
                    log.error("sync.demarche_failed", error=str(exc), error_class=type(exc).__name__)
                except Exception as exc:  # noqa: BLE001 - one démarche's bug never stops the others
                    if isinstance(exc, ConnectorError) or machine_fault(exc):
                        raise  # the machine's fault (disk full...) is every démarche's
                    result.error = DemarcheCrashed(f"démarche {demarche.number}: {type(exc).__name__}: {exc}")
                    log.exception("sync.demarche_crashed", error=f"{type(exc).__name__}: {exc}")
                log.info("sync.demarche_done", **_figures(result))


class _Background:
    """A démarche's attachment downloads, running while its pages go on."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        self._tasks.add(asyncio.ensure_future(work))

    async def drain(self) -> None:
        """Wait for every download started so far; the first failure (a token refused during a
        re-read, DS unavailable) is the démarche's."""
        while self._tasks:
            tasks, self._tasks = self._tasks, set()
            await asyncio.gather(*tasks)

    async def cancel(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class DemarcheSync:
    """One démarche's streams, in the order of the module docstring."""

    def __init__(self, store: Writer, client: DsClient, downloader: Downloader,
                 config: Config, report: DemarcheReport, progress: ProgressFn | None, *, full: bool,
                 hooks: SyncHooks | None = None, stop: asyncio.Event | None = None,
                 unknown_types: set[str] | None = None):
        self.store = store  # the mirror: every read and write is a unit of work on the writer's thread
        self.hooks = hooks or SyncHooks()
        self.stop = stop
        self.client = client
        self.downloader = downloader
        self.number = report.number
        self.page_size = config.sync.page_size
        self.overlap = timedelta(minutes=config.sync.overlap_minutes)
        self.report = report
        self.progress = progress
        self.full = full  # --full: descriptor, whole deletion lists, reconciliation
        self.url_rereads = 0
        self.unknown_types: set[str] = set() if unknown_types is None else unknown_types
        self.background = _Background()
        self.download_slots = asyncio.Semaphore(DOWNLOADS_PER_DEMARCHE)

    async def run(self) -> None:
        self.check_stop()
        try:
            if self.full or await self._descriptor_stale():
                self.check_stop()  # the stop may have come while the writer answered
                self._phase("descriptor")
                await self.descriptor()
                self.check_stop()
            self._phase("dossiers")
            # The deletion lists are read while the dossier pages are (no tail after the last page);
            # once the pages are in, what is left is named "deletions".
            await _together(self._dossiers_then_deletions(), self.deletions(DELETED), self.deletions(PENDING_DELETED))
            if self.full:
                await self.reconcile()
            self._phase("attachments", done=self._files_done(), total=self.report.files_queued)
            await self.background.drain()
            self.check_stop()
            await self.files_left()
        finally:
            await self.background.cancel()  # stopped or failed: what was not recorded comes next time
        self._phase("done")
        await self.store(self.hooks.demarche_done, self.number, self.report)

    def _phase(self, name: str, *, done: int = 0, total: int | None = None) -> None:
        """Tell the progress display (if any) what this démarche is doing now, and how far it is."""
        self.report.phase, self.report.step_done, self.report.step_total = name, done, total
        if self.progress:
            self.progress(self.report)

    def _step(self, done: int, total: int | None = None) -> None:
        self.report.step_done = done
        if total is not None:
            self.report.step_total = total
        if self.progress:
            self.progress(self.report)

    def _files_done(self) -> int:
        return self.report.files + self.report.files_failed + self.report.files_failed_local

    def check_stop(self) -> None:
        """After a commit: stop here (before the next page is asked) when asked to."""
        if not self._may_go_on():
            raise Stopped()

    def _may_go_on(self) -> bool:
        return self.stop is None or not self.stop.is_set()

    async def _follow(self, stream: Stream, store: Callable[[Page], Coroutine[Any, Any, None]], *,
                      since: str | None, after: str | None) -> None:
        """Read a stream one page ahead and store each page (one commit each, in order). The stop
        check after each commit also keeps a listing cut short by a stop from looking complete; the
        one before the first request is there because the stream may start after a stop (it waited
        for its bookmark behind another stream's commit)."""
        self.check_stop()
        source = pages(self.client, self.number, stream, since=since, after=after, page_size=self.page_size,
                       go_on=self._may_go_on)
        async for page in prefetched(source, self._may_go_on):
            await store(page)
            self.check_stop()

    # -- the démarche ------------------------------------------------------------------------

    async def _descriptor_stale(self) -> bool:
        synced_at = await self.store(descriptor_synced_at, self.number)
        return synced_at is None or datetime.now(timezone.utc) - instant(synced_at) > DESCRIPTOR_MAX_AGE

    async def _dossiers_then_deletions(self) -> None:
        await self.dossiers()
        self._phase("deletions")

    async def descriptor(self) -> None:
        result = await self.client.query("demarche_descriptor", {"demarcheNumber": self.number},
                                         go_on=self._may_go_on)
        demarche = (result.data or {}).get("demarche")
        if not isinstance(demarche, dict) or "number" not in demarche:
            raise ApiError(f"DS answered the descriptor of démarche {self.number} without the démarche")

        def save(db: sqlite_utils.Database) -> None:
            with db.atomic():
                save_demarche(db, demarche)
                self._hook(db, "descriptor_saved", self.hooks.descriptor_saved, db, self.number)

        await self.store(save)
        log.info("sync.descriptor_saved", revision=(demarche.get("activeRevision") or {}).get("id"))

    # -- dossiers ----------------------------------------------------------------------------

    async def dossiers(self, since: str | None = None) -> None:
        """The dossiers stream: resume an interrupted pass, else start one at ``since`` (default:
        the watermark minus the overlap, or the whole démarche the first time)."""
        bookmark = await self.store(get_bookmark, self.number, "dossiers")
        after = None
        if since is None and bookmark and bookmark.after_cursor:
            since, after = bookmark.cursor_since, bookmark.after_cursor
            log.info("sync.stream_resumed", stream="dossiers", since=since)
        elif since is None:
            since = _shift(bookmark.updated_since, -self.overlap) if bookmark and bookmark.updated_since \
                else FIRST_PASS_SINCE
        await self._follow(DOSSIERS, self._store_dossiers, since=since, after=after)

    async def _store_dossiers(self, page: Page) -> None:
        """One page of dossiers and its cursor in one transaction, through the door (a dossier that
        fails, whatever the reason, is quarantined and the page commits); then its attachments start."""
        dates = [n["dateDerniereModification"] for n in page.nodes
                 if isinstance(n, dict) and isinstance(n.get("dateDerniereModification"), str)]
        dates = [d for d in dates if _readable(d)]
        if page.poison and page.poison.date_derniere_modification:
            dates.append(page.poison.date_derniere_modification)

        numbers = {int(n["number"]) for n in page.nodes if isinstance(n, dict) and n.get("number") is not None
                   and str(n["number"]).isdigit()}
        wanted: list[dict] = []

        def then(db: sqlite_utils.Database) -> None:
            if page.poison:
                quarantine(db, self.number, page.poison.number, page.poison.error, page.poison.raw)
            set_bookmark(db, self.number, "dossiers", after_cursor=page.end_cursor,
                         cursor_since=page.since, max_seen=max(dates, key=instant) if dates else None)
            if not page.has_next:
                finish_stream(db, self.number, "dossiers")
            # The files the policy wants of the page's stored dossiers (a quarantined one's rows are
            # not there), read in the same unit: the downloads start without another trip to the writer.
            wanted[:] = self.downloader.wanted(db, self.number, numbers) if numbers else []

        entry = await self._enter(page.nodes, then=then)
        if page.poison:
            self._quarantined(page.poison.number, page.poison.error)
        counts = entry.counts
        self.report.pages += 1
        self.report.dossiers += len(page.nodes)
        for warning in page.warnings:
            log.warning("sync.page_warning", error=warning)
        log.info("sync.page_committed", stream="dossiers", size=page.size, nodes=len(page.nodes),
                 new=counts.new, updated=counts.updated,
                 quarantined=len(entry.quarantined) + bool(page.poison), last=not page.has_next)
        if self.progress:
            self.progress(self.report)
        held_back = {n for n, _ in entry.quarantined}  # an older copy of theirs may be in the mirror: not now
        wanted = [row for row in wanted if row["dossier_number"] not in held_back]
        if wanted and self._may_go_on():
            self.background.start(self._download_rows(wanted, reread=True))

    async def _enter(self, nodes: list[Any], then: Callable[[sqlite_utils.Database], None] | None = None) -> Entry:
        """Nodes into the mirror through the door (``connector.store.door.enter``, one unit of work on
        the writer's thread: rows, hooks and ``then`` in one transaction), the hooks' forms and
        deadlines run on the changed ones; counted, quarantines logged, removed files unlinked."""
        entry = await self.store(enter, self.number, nodes, hook=self.hooks.dossiers_changed, then=then,
                                 unknown_types=self.unknown_types)
        remove_local(entry.counts.removed_files)
        for number, error in entry.quarantined:
            self._quarantined(number, error)
        self.report.new += entry.counts.new
        self.report.updated += entry.counts.updated
        self.report.unchanged += entry.counts.unchanged
        return entry

    @staticmethod
    def _hook(db: sqlite_utils.Database, name: str, hook: Callable[..., None], *args: Any) -> None:
        """The one guard around ``descriptor_saved``, inside the descriptor's transaction, in a
        savepoint: a hook that fails loses its own writes only, is logged, and the mirror goes on,
        unless the fault is the machine's (disk full...), which stops the run."""
        try:
            with db.atomic():
                hook(*args)
        except Exception as exc:  # noqa: BLE001 - a hook never stops the mirror
            if machine_fault(exc):
                raise
            log.exception("sync.hook_failed", hook=name, error=f"{type(exc).__name__}: {exc}")

    def _quarantined(self, number: int | None, error: str) -> None:
        """A dossier (or an unnamed one) went to the quarantine: counted and logged."""
        self.report.quarantined += 1
        log.error("sync.dossier_quarantined", dossier=number, error=error)

    async def _quarantine(self, number: int | None, error: str, raw: str | None) -> None:
        """A dossier DS could not serve goes to the quarantine, counted and logged."""
        await self.store(quarantine, self.number, number, error, raw)
        self._quarantined(number, error)

    async def reread(self, number: int) -> str:
        """Read one dossier by number and save it: "saved", "not_found", or "failed" (quarantined)."""
        self.check_stop()  # a re-read is a request: none once asked to stop
        self.report.rereads += 1
        try:
            result = await self.client.query("dossier", {"dossierNumber": number}, go_on=self._may_go_on)
        except PageFailed as exc:
            await self._quarantine(number, str(exc), failed_answer(exc))
            return "failed"
        node = (result.data or {}).get("dossier")
        if node is None:
            if "not_found" in result.error_codes():
                return "not_found"
            await self._quarantine(number, "dossier(number:) answered null",
                             json.dumps({"number": number, "errors": result.errors}, ensure_ascii=False, default=str))
            return "failed"
        if isinstance(node, dict):
            node = {k: v for k, v in node.items() if k != "demarche"}
        entry = await self._enter([node])
        if entry.quarantined:
            return "failed"
        # Its files, on the URLs just given: one refused now is a failed file, not another re-read.
        await self._download_rows(await self.store(self.downloader.wanted, self.number, {number}), reread=False,
                                  after_reread=True)
        return "saved"

    # -- deletions ---------------------------------------------------------------------------

    async def deletions(self, stream: Stream) -> None:
        bookmark = await self.store(get_bookmark, self.number, stream.name)
        since, after = None, None
        if bookmark and bookmark.after_cursor:
            since, after = bookmark.cursor_since, bookmark.after_cursor
        elif not self.full and bookmark and bookmark.updated_since:
            since = _shift(bookmark.updated_since, -self.overlap)
            if stream is DELETED:
                since = await self._backdated(bookmark.updated_since, since)
        await self._follow(stream, lambda page: self._store_deletions(stream, page), since=since, after=after)

    async def _store_deletions(self, stream: Stream, page: Page) -> None:
        nodes = [n for n in page.nodes if isinstance(n, dict) and n.get("number") is not None]
        dates = [n["dateSupression"] for n in nodes if n.get("dateSupression")]

        def write(db: sqlite_utils.Database) -> tuple[int, int, list[Any]]:
            """The page and its cursor, one transaction: (dossiers purged, newly in the trash, files)."""
            purged, trashed, paths = 0, 0, []
            with db.atomic():
                if stream is DELETED:
                    purged = known_dossiers(db, [int(n["number"]) for n in nodes])
                    paths = save_deleted(db, self.number, nodes)
                else:
                    trashed = save_pending_deleted(db, self.number, nodes)
                set_bookmark(db, self.number, stream.name, after_cursor=page.end_cursor,
                             cursor_since=page.since, max_seen=max(dates, key=instant) if dates else None)
                if not page.has_next:
                    finish_stream(db, self.number, stream.name)
            return purged, trashed, paths

        purged, trashed, paths = await self.store(write)
        self.report.deleted += purged
        self.report.pending += trashed
        remove_local(paths)
        self.report.pages += 1
        log.info("sync.page_committed", stream=stream.name, nodes=len(nodes), last=not page.has_next)

    async def _backdated(self, watermark: str, since: str) -> str:
        """DS dates the purge of an en_construction dossier its usager deleted back to that deletion,
        about two weeks earlier (docs/ds-api.md §6), so its row lands behind the watermark. Those dossiers
        sat in the trash meanwhile: read the deleted list back to the oldest of them (within 15
        days). One deleted and purged between two syncs is caught by the daily full pass."""
        floor = instant(watermark) - DELETED_LOOKBACK
        dates = [instant(d) for d in await self.store(trashed_by_usager, self.number) if instant(d) >= floor]
        return min([instant(since), *dates]).isoformat()

    # -- reconciliation ----------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Carry out ``reconcile.decide``'s plan (see reconcile.py)."""
        remote: dict[int, str] = {}
        self._phase("reconciliation", total=len(await self.store(dossier_numbers, self.number)))  # about that many

        def listed(page: Page) -> None:
            for node in page.nodes:
                remote[int(node["number"])] = node["dateDerniereModification"]
            self._step(len(remote), max(len(remote), self.report.step_total or 0))

        self.check_stop()
        source = pages(self.client, self.number, LISTING, page_size=PAGE_SIZES[0],  # lean: a full page is cheap
                       go_on=self._may_go_on)
        async for page in prefetched(source, self._may_go_on):
            listed(page)
            self.check_stop()  # a listing cut short must never be taken for the whole démarche
        mirror = await self.store(held, self.number)
        plan = decide(remote, mirror, overlap=self.overlap, page_size=self.page_size)
        log.info("sync.reconcile_listed", remote=len(remote), local=len(mirror.dates), differ=len(plan.refetch),
                 missing=len(plan.check_vanished), quarantined=len(mirror.quarantined))
        if plan.unflag:
            await self.store(clear_pending, plan.unflag)
        rereads = (0 if plan.refetch_since is not None else len(plan.refetch)) + len(plan.check_vanished) \
            + len(plan.retry)
        self._phase("reconciliation", total=rereads)  # now the re-reads: their number is known
        if plan.refetch_since is not None:
            await self.dossiers(since=plan.refetch_since)
        else:
            for done, number in enumerate(plan.refetch, 1):
                await self.reread(number)
                self._step(done)
        vanished = 0
        for done, number in enumerate(plan.check_vanished, self.report.step_done + 1):
            if await self.reread(number) == "not_found":
                remove_local(await self.store(confirm_vanished, number))
                vanished += 1
            self._step(done)
        self.report.deleted += vanished
        for done, number in enumerate(plan.retry, self.report.step_done + 1):
            await self.reread(number)
            self._step(done)
        if set(remote) <= await self.store(dossier_numbers, self.number):  # what could not be named is in now
            await self.store(clear_unnamed_quarantine, self.number)
        await self.store(_finish_listing, self.number)
        log.info("sync.reconciled", refetched=len(plan.refetch), vanished=vanished,
                 retried=len(mirror.quarantined))

    # -- attachments -------------------------------------------------------------------------

    async def _download_rows(self, rows: list[dict], *, reread: bool, after_reread: bool = False) -> list[int]:
        """Download these ``Downloader.wanted`` rows; with ``reread``, re-read (once) the dossiers whose
        URLs expired. ``after_reread``: the dossiers were just re-read, so an URL refused now is a failed
        file. Returns the dossiers still waiting for fresh URLs."""
        if not rows:
            return []
        self.report.files_queued += len(rows)
        if self.report.phase == "attachments":
            self._step(self._files_done(), self.report.files_queued)
        stats = await self.downloader.download(self.store, rows, self.download_slots, after_reread=after_reread)
        self.report.files += stats.downloaded
        self.report.file_bytes += stats.bytes
        self.report.files_failed += stats.failed
        self.report.files_failed_local += stats.failed_local
        self.report.files_queued -= len(rows) - (stats.downloaded + stats.failed + stats.failed_local)  # not tried
        if self.report.phase == "attachments":
            self._step(self._files_done(), self.report.files_queued)
        expired = stats.expired
        if reread:
            for number in self._url_rereads(expired):
                await self.reread(number)
        return expired

    def _url_rereads(self, numbers: list[int]) -> list[int]:
        """At most MAX_REREADS dossier re-reads for file URLs per démarche and run; the rest wait."""
        allowed = numbers[: max(MAX_REREADS - self.url_rereads, 0)]
        self.url_rereads += len(allowed)
        if len(allowed) < len(numbers):
            log.info("sync.file_rereads_deferred", dossiers=len(numbers) - len(allowed))
        return allowed

    async def files_left(self) -> None:
        """Files the policy wants that earlier pages could not fetch: retry fresh URLs, re-read the
        dossiers of expired URLs and of scans pending for a while (a scan does not bump a dossier)."""
        rows = await self.store(self.downloader.wanted, self.number)
        if not rows:
            return
        expired = await self._download_rows(rows, reread=False)
        scans = await self._scans_to_check(rows)
        for number in self._url_rereads(expired + [n for n in scans if n not in expired]):
            await self.reread(number)

    async def _scans_to_check(self, rows: list[dict]) -> list[int]:
        """Dossiers with a file whose virus scan was pending when last read (5 minutes ago or more),
        least recently read first. DS's scans take minutes; one still pending a day after the
        file's creation (DS's clock: the dossiers watermark) is left to the full pass."""
        now = datetime.now(timezone.utc)
        bookmark = await self.store(get_bookmark, self.number, "dossiers")
        recent = None
        if not self.full and bookmark and bookmark.updated_since:
            recent = instant(bookmark.updated_since) - PENDING_SCAN_PATIENCE
        pending = sorted(
            (r["url_seen_at"], r["dossier_number"]) for r in rows
            if r["virus_scan"] == "pending" and r["url_seen_at"]
            and now - instant(r["url_seen_at"]) > PENDING_SCAN_RECHECK
            and (recent is None or (r["created_at"] and instant(r["created_at"]) >= recent))
        )
        return list(dict.fromkeys(number for _, number in pending))


async def _together(*work: Coroutine[Any, Any, None]) -> None:
    """Run these streams concurrently; the first that raises (a stop, a refusal, DS unavailable)
    cancels the others (each between two commits: no transaction is ever open across an await)
    and comes out as itself, not wrapped in an ExceptionGroup."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _finish_listing(db: sqlite_utils.Database, demarche: int) -> None:
    with db.atomic():
        finish_stream(db, demarche, "listing")


def _readable(value: str) -> bool:
    try:
        instant(value)
    except ValueError:
        return False
    return True


def _shift(value: str, delta: timedelta) -> str:
    return (instant(value) + delta).isoformat()


def _figures(report: DemarcheReport) -> dict[str, Any]:
    return {k: getattr(report, k) for k in ("pages", "dossiers", "new", "updated", "unchanged", "deleted",
                                           "pending", "quarantined", "rereads", "files",
                                           "files_failed_local")}

