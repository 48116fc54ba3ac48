"""The daemon: APScheduler 3.x jobs in the process's event loop, spoken to systemd.

Jobs (``AsyncIOScheduler``): ``sync`` every ``interval_minutes`` (the first at start) and
``reconcile`` (the full pass) daily at ``reconcile_at``. They never overlap: one job at a time in
the process (an asyncio lock; ``max_instances=1`` per job, ``coalesce``, no misfire limit, so runs
missed during a suspend are run once, late, not N times), and the instance lock, taken for the run
only, against an operator's one-shot sync (the job waits for it). Each job is one run of the run
service (:mod:`connector.service`): the sync, its follow-up (deadlines, actions, renewals) and its
report, all under that lock, on the process's one request budget for the token.

DS outages are survived: the run reports them, the next run comes sooner (1, 2, 4 ... minutes, never
later than the interval). A permanent error (bad token, expired token, bad config) ends the daemon
with exit 78, which the unit's ``RestartPreventExitStatus=78 243`` does not restart. DS not reachable at
all (refused, DNS, TLS) fails a run after about 15 s, like any outage: the backoff above retries it.
A fault of the machine (disk full, read-only) fails the run with one line, no traceback.

Signals: SIGTERM (and SIGINT) → ``STOPPING=1``, no new page is asked, the page being stored commits,
exit 0 within the drain timeout. SIGHUP → the config file is read again: a valid one replaces the
old (jobs rescheduled: a new ``interval_minutes`` counts from the latest sync's start, so a shorter one
brings the next sync forward), an invalid one is logged with every problem and the old one kept.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector import logs, service
from connector.config import Config, load_config
from connector.credentials import ApiToken, load_token
from connector.daemon.heartbeat import HEARTBEAT_SECONDS, Heartbeat, write_heartbeat
from connector.daemon.notify import Notifier
from connector.errors import EX_CONFIG, EX_OK, ConnectorError, LockHeld, machine_fault
from connector.lock import InstanceLock
from connector.store import open_db
from connector.store.values import paris_day
from connector.sync.engine import SyncHooks, SyncReport

log = logs.get_logger(__name__)

DRAIN_SECONDS = 60.0  # under the unit's TimeoutStopSec=90s
TOKEN_WARNING_DAYS = 30
BACKOFF_FIRST_SECONDS = 60.0
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}

HooksFactory = Callable[[Config], SyncHooks]


def _hhmm(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%H:%M") if moment else "?"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


def result_line(report: SyncReport, at: datetime) -> str:
    """"sync ok 10:42, 4 démarches, 3 new" (the STATUS= text and the heartbeat's last result)."""
    kind = "full sync" if report.full else "sync"
    line = f"{kind} {report.status} {_hhmm(at)}, {len(report.demarches)} démarches, {report.total('new')} new"
    failed = [d.number for d in report.demarches if d.error is not None]
    if failed:
        line += f", failed: {', '.join(map(str, failed))}"
    return line


def token_days_left(config: Config, today: date | None = None) -> int | None:
    expires = config.ds.token_expires_on
    if expires is None:
        return None
    return (expires - (today or paris_day(datetime.now(timezone.utc)))).days


class Daemon:
    def __init__(self, config: Config, token: ApiToken, *, hooks: HooksFactory,
                 notifier: Notifier | None = None, interval_seconds: float | None = None,
                 drain_seconds: float = DRAIN_SECONDS):
        self.config = config
        self.token = token
        self.hooks = hooks
        self.notifier = notifier or Notifier()
        self.interval_override = interval_seconds  # tests: sub-minute intervals
        self.drain_seconds = drain_seconds
        self.stop = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.mutex = asyncio.Lock()
        self.exit_code = EX_OK
        self.failures = 0
        self.last_result: str | None = None
        self.token_warned_on: date | None = None
        self.last_sync_at: datetime | None = None  # when the latest interval sync started
        self.beat = Heartbeat(started_at=_iso(datetime.now(timezone.utc)) or "",
                              interval_minutes=config.sync.interval_minutes)
        self.scheduler: AsyncIOScheduler | None = None

    # -- life cycle --------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        return self.interval_override or self.config.sync.interval_minutes * 60.0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.terminate, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.prepare_database()
        self.scheduler = AsyncIOScheduler(event_loop=loop, job_defaults=JOB_DEFAULTS)
        self.scheduler.add_listener(self._job_event, EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self.schedule(first_sync=datetime.now().astimezone())
        self.scheduler.start()
        ticker = asyncio.create_task(self.tick(), name="watchdog")
        self.check_token()
        self.beat.state = "idle"
        self.heartbeat()
        log.info("daemon.ready", interval_seconds=self.interval, reconcile_at=f"{self.config.sync.reconcile_at:%H:%M}",
                 demarches=[d.number for d in self.config.demarches], watchdog=self.notifier.watchdog_interval)
        self.notifier.send("READY=1", f"STATUS=started; next sync {_hhmm(self.next_run('sync'))}",
                           f"MAINPID={self.beat.pid}")
        try:
            await self.stop.wait()
            await self.drain()
        finally:
            ticker.cancel()
            self.beat.state = "stopped"
            self.beat.next_run_at = self.beat.next_reconcile_at = None
            self.heartbeat()
            self.notifier.close()
        log.info("daemon.stopped", exit_code=self.exit_code)
        return self.exit_code

    def prepare_database(self) -> None:
        """Create or migrate the database before READY=1 (under the lock; if a sync holds it, that
        sync migrates it)."""
        lock = InstanceLock(self.config.state_dir, holder="daemon")
        try:
            lock.acquire()
        except LockHeld:
            log.info("daemon.database_busy", hint="a one-shot sync holds the lock; it prepares the database")
            return
        try:
            open_db(self.config.database.path).close()
        finally:
            lock.release()

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.stop.is_set():
            return
        log.info("daemon.stopping", signal=signal.Signals(sig).name, running=not self.idle.is_set())
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        self.beat.state = "stopping"
        self.stop.set()

    async def drain(self) -> None:
        """Stop scheduling, let the running job store its page and end, shut the scheduler."""
        assert self.scheduler is not None
        self.scheduler.pause()
        try:
            await asyncio.wait_for(self.idle.wait(), self.drain_seconds)
        except asyncio.TimeoutError:
            log.error("daemon.drain_timeout", seconds=self.drain_seconds)
        self.scheduler.shutdown(wait=False)

    def fatal(self, exc: ConnectorError) -> None:
        """A permanent error: exit 78 so that systemd does not restart the daemon in a loop."""
        log.error("daemon.permanent_error", error=str(exc), error_class=type(exc).__name__, exit_code=EX_CONFIG)
        self.notifier.status(f"stopped: {exc.message}"[:200])
        self.exit_code = EX_CONFIG
        self.stop.set()

    # -- scheduling --------------------------------------------------------------------------

    def schedule(self, first_sync: datetime | None = None) -> None:
        assert self.scheduler is not None
        at = self.config.sync.reconcile_at
        sync_next = first_sync or self.next_run("sync") or datetime.now().astimezone()
        self.scheduler.add_job(self.job, IntervalTrigger(seconds=self.interval), args=["sync", False], id="sync",
                               name="sync", next_run_time=sync_next, replace_existing=True)
        self.scheduler.add_job(self.job, CronTrigger(hour=at.hour, minute=at.minute), args=["reconcile", True],
                               id="reconcile", name="reconcile", replace_existing=True)

    def rescheduled_sync(self) -> datetime | None:
        """The next sync once ``interval_minutes`` changed: one new interval after the latest sync
        started (now if that is past), so a shorter interval takes effect at once and a longer one
        is not waited twice. Kept as it is before the first sync, and when a retry after a failure
        comes sooner."""
        current = self.next_run("sync")
        if self.last_sync_at is None:
            return current
        now = datetime.now().astimezone()
        due = max(now, self.last_sync_at + timedelta(seconds=self.interval))
        if current is not None and self.failures and current < due:
            return current
        return due

    def next_run(self, job_id: str) -> datetime | None:
        job = self.scheduler.get_job(job_id) if self.scheduler else None
        return job.next_run_time if job else None

    def _job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("daemon.job_skipped", job=event.job_id, why="the previous run is still going")
        elif event.code == EVENT_JOB_MISSED:
            log.warning("daemon.job_missed", job=event.job_id)
        elif event.code == EVENT_JOB_ERROR:  # job() catches everything: only a bug lands here
            log.error("daemon.job_crashed", job=event.job_id, error=repr(getattr(event, "exception", None)))

    # -- one job -----------------------------------------------------------------------------

    async def job(self, name: str, full: bool) -> None:
        if self.stop.is_set():
            return
        async with self.mutex:
            if self.stop.is_set():
                return
            self.idle.clear()
            try:
                with structlog.contextvars.bound_contextvars(job=name):
                    await self._run_job(name, full)
            finally:
                self.beat.state = "stopping" if self.stop.is_set() else "idle"
                self.beat.job = None
                self.heartbeat()
                self.idle.set()

    async def _run_job(self, name: str, full: bool) -> None:
        config, token = self.config, self.token
        self.beat.state, self.beat.job = "waiting", name
        self.heartbeat()
        lock = InstanceLock(config.state_dir, holder="daemon")

        def waiting(holder: Any) -> None:
            log.info("daemon.waiting_for_lock", holder_pid=holder.pid, holder=holder.what)
            self.notifier.status(f"waiting for pid {holder.pid} ({holder.what or 'sync'}) to finish")

        if not await lock.acquire_async(self.stop, on_wait=waiting):
            return  # stopped while waiting
        if name == "sync":
            self.last_sync_at = datetime.now().astimezone()
        report: SyncReport | None = None
        try:
            self.beat.state = "syncing"
            self.heartbeat()
            self.notifier.status(f"{'full sync' if full else 'sync'} running since {_hhmm(datetime.now())}"
                                 + (f"; last: {self.last_result}" if self.last_result else ""))
            log.info("daemon.job_started", full=full)
            outcome = await service.run(config, token, lock, kind="daemon", full=full, hooks=self.hooks(config),
                                        stop=self.stop)
            report = outcome.sync
        except ConnectorError as exc:
            if exc.exit_code == EX_CONFIG:
                self.fatal(exc)
                return
            self.failed(f"{name} failed {_hhmm(datetime.now())}: {exc.message}")
            log.error("daemon.job_failed", error=str(exc), error_class=type(exc).__name__)
            return
        except Exception as exc:  # noqa: BLE001 - a bug: logged with its traceback, the daemon goes on
            if (fault := machine_fault(exc, config.database.path)) is not None:  # disk full...: no traceback
                self.failed(f"{name} failed {_hhmm(datetime.now())}: {fault.message}")
                log.error("daemon.job_failed", error=fault.message, error_class=type(fault).__name__)
                return
            log.exception("daemon.job_crashed", error_class=type(exc).__name__)
            self.failed(f"{name} crashed {_hhmm(datetime.now())}: {type(exc).__name__}")
            return
        finally:
            lock.release()
        now = datetime.now().astimezone()
        line = result_line(report, now)
        log.info("daemon.job_done", status=report.status, new=report.total("new"), updated=report.total("updated"))
        assert report is not None
        if report.status == "ok" or report.demarches_done:  # dossiers quarantined: the others go on
            self.failures = 0
            self.last_result = line
            self.announce()
        elif report.status in ("failed", "partial"):
            self.failed(line)
        else:  # stopped
            self.last_result = line
        self.check_token()

    def failed(self, line: str) -> None:
        """A run that failed (DS unavailable...): the next one sooner, backing off to the interval."""
        self.failures += 1
        self.last_result = line
        delay = min(self.interval, BACKOFF_FIRST_SECONDS * 2 ** (self.failures - 1))
        job = self.scheduler.get_job("sync") if self.scheduler else None
        if job is not None and not self.stop.is_set():
            at = datetime.now().astimezone() + timedelta(seconds=delay)
            if job.next_run_time is None or at < job.next_run_time:
                job.modify(next_run_time=at)
        log.warning("daemon.backoff", failures=self.failures, retry_in_seconds=delay)
        self.announce()

    def announce(self) -> None:
        line = f"{self.last_result}; next {_hhmm(self.next_run('sync'))}"
        self.notifier.status(line)
        self.beat.last_result = self.last_result
        self.beat.consecutive_failures = self.failures
        self.heartbeat()

    # -- watchdog, heartbeat, token, reload --------------------------------------------------

    async def tick(self) -> None:
        """WATCHDOG=1 at half of WATCHDOG_USEC and the heartbeat file, from the event loop: a blocked
        loop stops both, and systemd restarts the service. Never tied to sync success."""
        period = min(HEARTBEAT_SECONDS, self.notifier.watchdog_interval or HEARTBEAT_SECONDS)
        while True:
            if self.notifier.watchdog_interval:
                self.notifier.send("WATCHDOG=1")
            self.heartbeat()
            await asyncio.sleep(period)

    def heartbeat(self) -> None:
        self.beat.beat_at = _iso(datetime.now(timezone.utc)) or ""
        if self.scheduler is not None and self.scheduler.running and not self.stop.is_set():
            self.beat.next_run_at = _iso(self.next_run("sync"))
            self.beat.next_reconcile_at = _iso(self.next_run("reconcile"))
        self.beat.interval_minutes = self.config.sync.interval_minutes
        try:
            write_heartbeat(self.config.state_dir, self.beat)
        except OSError as exc:
            log.warning("daemon.heartbeat_failed", error=exc.strerror or str(exc))

    def check_token(self) -> None:
        """Warn (once a day) when the token expires within 30 days."""
        days = token_days_left(self.config)
        today = paris_day(datetime.now(timezone.utc))
        if days is None or days > TOKEN_WARNING_DAYS or self.token_warned_on == today:
            return
        self.token_warned_on = today
        expires = self.config.ds.token_expires_on.isoformat()  # type: ignore[union-attr]
        if days < 0:
            log.error("daemon.token_expired", expires_on=expires,
                      hint="create a new token on DS and replace the credential file")
        else:
            log.warning("daemon.token_expiring", expires_on=expires, days_left=days,
                        hint="create a new token on DS and replace the credential file")

    def reload(self) -> None:
        """SIGHUP: read the config file again; keep the old one if the new one is invalid."""
        path = self.config.path
        try:
            config = load_config(Path(path))
            token = load_token(config)
        except ConnectorError as exc:
            log.error("daemon.config_invalid", config=str(path), error=exc.message, problems=exc.problems,
                      kept="the previous configuration")
            self.notifier.status(f"config reload failed ({len(exc.problems) or 1} problem(s)), old config kept")
            return
        if config.database.path != self.config.database.path:
            log.error("daemon.config_invalid", config=str(path), error="[database] path changed",
                      problems=["[database] path cannot change while the daemon runs: restart it"],
                      kept="the previous configuration")
            return
        old, self.config, self.token = self.config, config, token
        service.configure_logging(config, "daemon")
        if old.sync.interval_minutes != config.sync.interval_minutes:
            self.schedule(first_sync=self.rescheduled_sync())
        elif old.sync.reconcile_at != config.sync.reconcile_at:
            self.schedule()
        log.info("daemon.config_reloaded", config=str(path), demarches=[d.number for d in config.demarches],
                 interval_minutes=config.sync.interval_minutes, next_sync_at=_iso(self.next_run("sync")))
        self.notifier.status(f"config reloaded; next sync {_hhmm(self.next_run('sync'))}")
        self.token_warned_on = None
        self.check_token()
        self.heartbeat()
