"""One run, for every entry point: ``sync``, the daemon's jobs, ``actions run`` and ``demo`` call
:func:`run`; ``actions plan`` calls :func:`plan`.

A run is, in this order: the logging set up for its kind (:func:`configure_logging`, by the entry
point, before it waits for the lock), then under the instance lock (:func:`hold_lock` or
``InstanceLock.acquire_async``; :func:`run` refuses to start without it):

1. one ``DsClient`` (:func:`client`) on the process's one ``RequestBudget`` for the token
   (:func:`budget`: a registry keyed by DS's URL and the token, so the daemon's cycles, each run's
   démarches and its follow-up all draw from the same ``requests_per_minute``);
2. the sync (:func:`connector.sync.run_sync`, on that client);
3. the after-sync follow-up (the deadline statuses at DS's clock and the enabled actions, the
   renewals' table and reminders), when every démarche went through; ``actions run`` is this step
   alone, with its actions on;
4. the run's report: ``run_reports`` (errors, retries, 429s) and, on ``sync_runs``, the requests DS
   received during the whole run (follow-up included) and DS's clock.

DS's clock is the ``Date`` header of the run's latest answer (``ClientStats.server_date``): a sync
with nothing new costs DS 3 requests per démarche, follow-up included. The writer connection is
opened only under the lock, and no transaction spans a request to DS.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

import click

from connector import logs
from connector.config import Config, select_demarches
from connector.credentials import ApiToken
from connector.ds.budget import RequestBudget
from connector.ds.client import DsClient
from connector.ds.verdicts import FILE_NAME as VERDICTS_FILE
from connector.errors import ConnectorError, LockHeld
from connector.followup import actions as followup
from connector.followup import renewal_reminders
from connector.followup.renewal_refresh import pairs as renewal_pairs
from connector.lock import InstanceLock, read_holder
from connector.store import open_db
from connector.store.runs import finish_followup
from connector.store.status import record_run_report
from connector.sync import SyncHooks, SyncReport, run_sync

log = logs.get_logger(__name__)

KINDS = ("once", "daemon", "demo", "actions")
_budgets: dict[tuple[str, str], RequestBudget] = {}  # (DS's URL, the token's digest) -> the budget


# --- 0. logging, the lock ------------------------------------------------------------------------


def configure_logging(config: Config | None, kind: str, *, verbose: bool = False, stream: TextIO | None = None) -> None:
    """The logging of a run of ``kind``. ``daemon``: JSON lines on standard output for journald (the
    console on a terminal). ``once`` (``sync``): on a terminal, warnings (``verbose``: the configured
    level) through ``stream``, the progress display's lines; else every line on standard output, like
    the daemon. ``actions``: standard error (standard output is the command's answer), warnings only
    on a terminal unless ``verbose``. ``demo``: warnings on standard error."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of run {kind!r}: one of {', '.join(KINDS)}")
    tty = sys.stderr.isatty()
    if kind == "demo" or config is None:
        logs.configure(level="warning", json=False, stream=stream or sys.stderr)
    elif kind == "daemon":
        logs.configure(level=config.log.level, json=config.log.json, stream=sys.stdout)
    elif kind == "once" and tty and sys.stdout.isatty():  # the progress display's terminal
        logs.configure(level=config.log.level if verbose else "warning", json=config.log.json or False,
                       stream=stream or sys.stderr)
    elif kind == "once":
        logs.configure(level=config.log.level, json=config.log.json, stream=sys.stdout)
    elif tty:
        logs.configure(level=config.log.level if verbose else "warning", json=config.log.json or False,
                       stream=sys.stderr)
    else:
        logs.configure(level=config.log.level, json=config.log.json, stream=sys.stderr)


def hold_lock(config: Config, holder: str, *, wait: bool) -> InstanceLock:
    """The instance lock for a one-shot command (``with hold_lock(...):``): taken at once, or, with
    ``wait``, after the holder (the daemon's run, a sync) lets it go, saying so on standard error;
    without ``wait`` a held lock is LockHeld (exit 75)."""
    lock = InstanceLock(config.state_dir, holder=holder)
    try:
        lock.acquire()
    except LockHeld:
        if not wait:
            raise
        owner = read_holder(config.state_dir)
        click.echo(f"ds-connector: waiting for pid {owner.pid or 'unknown'} ({owner.what or 'another sync'}) "
                   "to finish its run…", err=True)
        lock.acquire(wait=True)
    return lock


# --- 1. one client, one budget per process and token ----------------------------------------------


def budget(config: Config, token: ApiToken) -> RequestBudget:
    """The process's one budget for this token on this DS: every run, démarche and follow-up of the
    process draws from it, so ``requests_per_minute`` holds per token, not per client. A reloaded
    config with another ``requests_per_minute`` resizes it; the requests already sent still count."""
    key = (config.ds.url, hashlib.sha256(token.reveal().encode()).hexdigest())
    found = _budgets.get(key)
    if found is None:
        found = _budgets[key] = RequestBudget(per_minute=config.ds.requests_per_minute)
    else:
        found.resize(config.ds.requests_per_minute)
    return found


def client(config: Config, token: ApiToken) -> DsClient:
    """A client for one run (``async with``), on the process's budget for the token."""
    return DsClient(config.ds.url, token, budget=budget(config, token),
                    connect_timeout=config.ds.connect_timeout_seconds, read_timeout=config.ds.read_timeout_seconds,
                    verdicts=config.state_dir / VERDICTS_FILE)


# --- one run -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run did: the sync's report (None for ``actions run``), the follow-up's (None when it
    did not run or failed: logged), and what DS received."""

    sync: SyncReport | None
    followup: followup.RunReport | None
    requests: int  # every request DS received during the run, follow-up included

    def summary(self) -> str:
        if self.sync is not None:
            return self.sync.summary()
        return (self.followup.summary() if self.followup else "actions: none") + f", {self.requests} requests"


async def run(config: Config, token: ApiToken, lock: InstanceLock, *, kind: str, hooks: SyncHooks,
              demarches: list[int] | None = None, full: bool = False, sync: bool = True,
              settle: timedelta = timedelta(seconds=60), stop: asyncio.Event | None = None,
              progress: Any = None) -> Outcome:
    """One run under ``lock`` (held by the caller): the sync, then the follow-up, then the report.
    ``sync=False`` (``actions run``): the follow-up alone, its actions on. After a sync the follow-up
    runs when every démarche went through (quarantined dossiers do not hold it back): the statuses
    at DS's clock and the actions the config enables; its failures are logged, never raised (the
    sync succeeded). A fatal ConnectorError of the sync (bad token...) is recorded against the run it
    ended, then raised."""
    if not lock.held:
        raise RuntimeError("a run needs the instance lock: only its holder opens the writer")
    if kind not in KINDS:
        raise ValueError(f"unknown kind of run {kind!r}: one of {', '.join(KINDS)}")
    selected = [d.number for d in select_demarches(config, demarches)] if demarches else None
    async with client(config, token) as ds:
        if not sync:
            report = await _followup(config, ds, hooks, act=True, demarches=selected, settle=settle)
            log.info("followup.finished", summary=report.summary(), requests=ds.stats.requests)
            return Outcome(None, report, ds.stats.requests)
        before = _latest_run(config)
        try:
            report_ = await run_sync(config, ds, demarches=selected, full=full, kind=kind, hooks=hooks,
                                     stop=stop, progress=progress)
        except ConnectorError as exc:
            if _latest_run(config) > before:  # the run had started: it is the latest
                _record(config, None, ds, error=f"{type(exc).__name__}: {exc.message}")
            raise
        after = None
        if report_.demarches_done:
            if hasattr(progress, "stage"):  # a progress display that shows the run's stages
                progress.stage("follow-up")
            after = await _after_sync(config, ds, hooks, selected)
        report_.requests = ds.stats.requests
        report_.retries, report_.rate_limited = ds.stats.retries, ds.stats.rate_limited
        _record(config, report_.run_id, ds, retries=report_.retries, rate_limited=report_.rate_limited,
                errors={d.number: f"{type(d.error).__name__}: {d.error}"
                        for d in report_.demarches if d.error is not None})
        return Outcome(report_, after, ds.stats.requests)


async def _after_sync(config: Config, ds: DsClient, hooks: SyncHooks,
                      demarches: list[int] | None) -> followup.RunReport | None:
    """The follow-up after a sync, on the démarches it synced (``demarches``; None: every configured
    one; a renewal pair when it names one of them): the actions when the config enables some, else the
    statuses and the renewals' table at DS's clock (nothing written to DS). A deadline démarche where
    nothing can have changed since its last completed planning is skipped (``connector.followup.skip``)."""
    enabled = (any(d.deadline.reminders or d.deadline.classer_sans_suite for d in config.demarches)
               or renewal_reminders.reminders_on(config))
    started = time.perf_counter()
    try:
        report = await _followup(config, ds, hooks, act=enabled, demarches=demarches,
                                 settle=timedelta(seconds=60), after_sync=True)
        log.debug("followup.after_sync_finished", seconds=round(time.perf_counter() - started, 3),
                 planned=[p.demarche for p in report.plans], skipped=report.skipped, summary=report.summary())
        return report
    except ConnectorError as exc:
        log.warning("followup.after_sync_failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug of the follow-up never fails the sync it follows
        log.exception("followup.after_sync_crashed", error=f"{type(exc).__name__}: {exc}")
    return None


async def _followup(config: Config, ds: DsClient, hooks: SyncHooks, *, act: bool, demarches: list[int] | None,
                    settle: timedelta, after_sync: bool = False) -> followup.RunReport:
    """The deadline follow-up, then the renewal's (its table refreshed at DS's clock, its reminders
    when ``act`` and enabled); ``report.renewals`` holds the renewal plans. Each transaction is
    committed before the next request (``followup.Runner``). ``after_sync``: the deadline démarches
    where nothing can have changed since their last completed planning are skipped
    (``connector.followup.skip``; ``report.skipped``); ``actions run`` plans them all."""
    db = open_db(config.database.path)  # synchronous=FULL: the journal's commits are on disk
    try:
        if act:
            report = await followup.run(config, ds, db, demarches=demarches, settle=settle,
                                        hook=hooks.dossiers_changed, after_sync=after_sync)
        else:
            targets = followup.deadline_demarches(db, config)
            if not targets and not renewal_pairs(config):
                return followup.RunReport()
            report = await followup.plan_only(config, ds, db, demarches=demarches, targets=targets,
                                              after_sync=after_sync)
        if not report.stopped:
            runner = followup.Runner(db, ds, config, report, settle, hooks.dossiers_changed)
            report.renewals = await renewal_reminders.run(config, runner, act=act, demarches=demarches)
    finally:
        db.conn.close()
    return report


async def plan(config: Config, token: ApiToken, lock: InstanceLock, hooks: SyncHooks,
               demarches: list[int] | None = None, *, act: bool = False) -> followup.RunReport:
    """``actions plan`` (``act``: with the config's actions as they are): what a run would do now, and
    why, at DS's clock; nothing is kept. DS is asked its clock first (one request, before any
    transaction); then the plans are computed in one write transaction that never waits on DS and
    is rolled back."""
    if not lock.held:
        raise RuntimeError("actions plan needs the instance lock: only its holder opens the writer")
    selected = [d.number for d in select_demarches(config, demarches)] if demarches else None
    first = (selected or [d.number for d in config.demarches])[0]
    async with client(config, token) as ds:
        await followup.ds_clock(ds, first)  # the only request: from here on the clock is known
        db = open_db(config.database.path)
        try:
            db.conn.execute("BEGIN")
            try:
                report = await followup.plan_only(config, ds, db, demarches=selected)
                runner = followup.Runner(db, ds, config, report, timedelta(), hooks.dossiers_changed)
                report.renewals = await renewal_reminders.run(config, runner, act=False, demarches=selected)
            finally:
                db.conn.rollback()
        finally:
            db.conn.close()
    return report


# --- 4. the run's report -----------------------------------------------------------------------


def _latest_run(config: Config) -> int:
    db = open_db(config.database.path)
    try:
        return db.execute("SELECT coalesce(max(id), 0) FROM sync_runs").fetchone()[0]
    finally:
        db.close()


def _record(config: Config, run_id: int | None, ds: DsClient, **fields: Any) -> None:
    """The run's ``run_reports`` row, and on its ``sync_runs`` row the requests of the whole run and
    DS's clock. Never raises: a report that cannot be written is logged."""
    try:
        db = open_db(config.database.path)
    except ConnectorError as exc:
        log.error("sync.report_not_recorded", error=str(exc))
        return
    try:
        record_run_report(db, run_id, **fields)
        if run_id is None:
            run_id = db.execute("SELECT max(id) FROM sync_runs").fetchone()[0]
        if run_id is not None:
            clock = ds.stats.server_date
            finish_followup(db, run_id, requests=ds.stats.requests,
                            ds_clock=clock.isoformat(timespec="seconds") if clock else None)
    finally:
        db.close()
