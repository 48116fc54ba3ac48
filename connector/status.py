"""``ds-connector status``: is it working, and what is it about to do? (read-only)

:func:`gather` reads the database read-only (``open_db_readonly``: ``mode=ro`` + ``query_only``, WAL
snapshot, never "database is locked" while the daemon writes), the lock file (without locking it),
the daemon's heartbeat file and the config; it needs neither the token nor the lock. It returns the
documented, stable JSON shape (``STATUS_VERSION``; README "status"), health included:

- 0 OK;
- 1 WARNING: a démarche without success for 3 intervals, quarantine not empty, files that failed to
  download, token expiring within 30 days, the database (or its -wal/-shm, or the files directory)
  readable beyond its owner;
- 2 CRITICAL: a démarche without success for a day (or never), its last run failed, an action in
  ``unknown``, the token expired;
- 3 UNKNOWN: no database, or one status cannot read.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from connector.config import Config
from connector.daemon.heartbeat import STALE_AFTER_SECONDS, read_heartbeat
from connector.errors import ConnectorError
from connector.lock import pid_alive, read_holder
from connector.store import open_db_readonly
from connector.store import renewal as renewal_store
from connector.store import status as q
from connector.store.db import mirror_modes
from connector.store.runs import last_ds_clock
from connector.store.shape import ACTION_STATES, RENEWAL_STATUSES
from connector.store.values import instant, paris_day

STATUS_VERSION = 1
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
HEALTH_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
STALE_INTERVALS = 3
CRITICAL_AGE = timedelta(days=1)
TOKEN_WARNING_DAYS = 30
CONVENTION_SOON_DAYS = 15


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _age(then: str | None, now: datetime) -> int | None:
    if not then:
        return None
    try:
        return max(0, int((now - instant(then)).total_seconds()))
    except (TypeError, ValueError):
        return None


class _Health:
    def __init__(self) -> None:
        self.code = OK
        self.reasons: list[dict[str, Any]] = []

    def add(self, level: int, text: str) -> None:
        self.code = max(self.code, level)
        self.reasons.append({"level": HEALTH_NAMES[level], "reason": text})

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "state": HEALTH_NAMES[self.code], "reasons": self.reasons}


def _run(run: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    if run is None:
        return None
    report = run["report"] or {}
    return {
        "id": run["id"], "kind": run["kind"], "status": run["status"], "started_at": run["started_at"],
        "finished_at": run["finished_at"], "age_seconds": _age(run["finished_at"] or run["started_at"], now),
        "demarches": run["demarches"], "requests": run["requests"], "dossiers": run["dossiers"], "new": run["new"],
        "updated": run["updated"], "deleted": run["deleted"], "quarantined": run["quarantined"],
        "rate_limited": report.get("rate_limited"), "error": report.get("error"),
    }


def _daemon(config: Config, now: datetime) -> dict[str, Any]:
    beat = read_heartbeat(config.state_dir)
    if beat is None:
        return {"running": False, "seen": False, "pid": None, "state": None, "heartbeat_at": None,
                "heartbeat_age_seconds": None, "next_run_at": None, "next_reconcile_at": None,
                "last_result": None, "started_at": None}
    age = _age(beat.get("beat_at"), now)
    pid = beat.get("pid")
    alive = isinstance(pid, int) and pid_alive(pid)
    running = beat.get("state") != "stopped" and alive and age is not None and age <= STALE_AFTER_SECONDS
    return {
        "running": running, "seen": True, "pid": beat.get("pid"),
        "state": beat.get("state") if running else ("stopped" if beat.get("state") == "stopped" else "dead"),
        "heartbeat_at": beat.get("beat_at"), "heartbeat_age_seconds": age,
        "next_run_at": beat.get("next_run_at") if running else None,
        "next_reconcile_at": beat.get("next_reconcile_at") if running else None,
        "last_result": beat.get("last_result"), "started_at": beat.get("started_at"),
    }


def gather(config: Config, now: datetime | None = None) -> dict[str, Any]:
    """The whole status (see the module docstring and the README for the shape)."""
    now = now or datetime.now(timezone.utc)
    health = _Health()
    holder = read_holder(config.state_dir)
    expires = config.ds.token_expires_on
    days_left = (expires - paris_day(now)).days if expires else None
    out: dict[str, Any] = {
        "version": STATUS_VERSION,
        "generated_at": _iso(now),
        "config": str(config.path),
        "database": {"path": str(config.database.path), "readable": False, "error": None},
        "daemon": _daemon(config, now),
        "lock": {"held": holder.held, "pid": holder.pid if holder.held else None,
                 "holder": holder.what if holder.held else None, "stale": holder.stale,
                 "stale_pid": holder.pid if holder.stale else None},
        "token": {"expires_on": expires.isoformat() if expires else None, "days_left": days_left},
        "interval_minutes": config.sync.interval_minutes,
        "running_run": None, "last_run": None, "rate_limited_requests": 0, "ds_clock": None,
        "demarches": [], "renewals": [],
    }
    if days_left is not None:
        if days_left < 0:
            health.add(CRITICAL, f"the API token expired on {expires}")
        elif days_left <= TOKEN_WARNING_DAYS:
            health.add(WARNING, f"the API token expires on {expires} ({days_left} days left)")
    for line in mirror_modes(config):
        health.add(WARNING, line)
    try:
        db = open_db_readonly(config.database.path)
    except ConnectorError as exc:
        out["database"]["error"] = exc.message
        health.add(UNKNOWN, exc.message)
        out["health"] = health.as_dict()
        return out
    try:
        _read_database(db, config, now, out, health)
    finally:
        db.close()
    out["health"] = health.as_dict()
    return out


def _read_database(db: Any, config: Config, now: datetime, out: dict[str, Any], health: _Health) -> None:
    out["database"]["readable"] = True
    with db.conn:  # one read transaction: every figure from the same WAL snapshot
        db.execute("BEGIN")
        present = q.tables(db)
        runs = q.recent_runs(db)
        by_state = q.count_by_state(db, "dossiers")
        new_24h = q.deposited_since(db, _iso(now - timedelta(hours=24)))
        trash = q.count_by_demarche(db, "pending_deletions")
        quarantined = q.count_by_demarche(db, "quarantine")
        files = q.files_waiting(db, config.sync.attachments)
        success = q.last_success(db)
        titles = q.demarche_titles(db)
        out["rate_limited_requests"] = q.rate_limited_total(db)
        anomalies = q.optional(db, present, "anomalies", q.open_anomalies)
        ds_clock = last_ds_clock(db)
        today = ds_today(ds_clock, now)
        conventions = q.optional(db, present, "conventions", q.conventions, today, CONVENTION_SOON_DAYS)
        actions = q.optional(db, present, "actions", q.count_by_state, "actions")
        renewals = q.optional(db, present, "renouvellements", renewal_store.summary)
    out["ds_clock"] = ds_clock
    running = next((r for r in runs if r["status"] == "running"), None)
    if running is not None and not out["lock"]["held"]:
        running = None  # its process died: the next run marks it interrupted
    out["running_run"] = _run(running, now)
    finished = [r for r in runs if r["status"] != "running"]
    out["last_run"] = _run(finished[0] if finished else None, now)

    interval = timedelta(minutes=config.sync.interval_minutes)
    configured = [(d.number, d.label) for d in config.demarches]
    known = {n for n, _ in configured}
    extra = sorted(set(by_state) - known)  # mirrored once, no longer configured: shown, not judged
    for number, label in configured + [(n, None) for n in extra]:
        judged = number in known
        last = next((r for r in finished if number in r["demarches"]), None)
        error = None
        result = None
        if last is not None:
            report = last["report"] or {}
            error = (report.get("errors") or {}).get(number) or report.get("error")
            result = "failed" if error or last["status"] == "failed" else last["status"]
            if result == "partial":
                result = "ok"  # partial is the run's word: this démarche had no error
        states = by_state.get(number, {})
        entry: dict[str, Any] = {
            "number": number, "label": label, "title": titles.get(number), "configured": judged,
            "last_success_at": success.get(number), "last_success_age_seconds": _age(success.get(number), now),
            "last_run": None if last is None else {"id": last["id"], "kind": last["kind"], "result": result,
                                                  "finished_at": last["finished_at"], "error": error},
            "dossiers": {"total": sum(states.values()), "by_state": dict(sorted(states.items()))},
            "new_24h": new_24h.get(number, 0),
            "trash": trash.get(number, 0),
            "quarantined": quarantined.get(number, 0),
            "files": {"pending": files.get(number, (0, 0))[0], "failed": files.get(number, (0, 0))[1]},
            "anomalies": _per(anomalies, number, "anomalies"),
            "conventions": _per(conventions, number, "conventions"),
            "actions": _per(actions, number, "actions"),
        }
        out["demarches"].append(entry)
        if not judged:
            continue
        _judge(entry, interval, health)
    out["renewals"] = _renewals(config, renewals, today)


def ds_today(ds_clock: str | None, now: datetime) -> date:
    """The day the status judges by: the Paris day of DS's clock as the latest run saw it (``ds_clock``,
    the ``Date`` of DS's last answer). Conventions are ``overdue`` and due soon, communes ``pending`` or
    ``not_renewed`` and the days to the cut-off counted at that day, as the follow-up and the renewal
    decided them (at DS's clock): the machine's own date may be wrong, and must not turn a school DS
    still counts as in time into a late one.

    Without a recorded DS clock (before the first run that got an answer from DS), the machine's clock
    ``now``: it is the only clock there is, and one day for the whole status (the conventions' and the
    renewal's figures are never judged on two different days). ``ds_clock`` null in the output says so."""
    return paris_day(instant(ds_clock) if ds_clock else now)


def _renewals(config: Config, table: Any, today: date) -> list[dict[str, Any]]:
    """Per configured campaign pair: schools by renewal status, the previous campaign's communes renewed /
    pending (cut-off not passed) / not renewed, days to the cut-off, at ``today`` (:func:`ds_today`: DS's
    clock, Paris day)."""
    out = []
    for d in config.demarches:
        if d.previous is None or d.renewal is None:
            continue
        figures = (table or {}).get(d.number, {}) if not (table or {}).get("error") else {}
        days = (d.renewal.cutoff - today).days
        communes, renewed = figures.get("communes", 0), figures.get("renewed", 0)
        out.append({
            "demarche": d.number, "previous": d.previous, "cutoff": d.renewal.cutoff.isoformat(),
            "days_to_cutoff": days, "computed": table is not None and d.number in table,
            "schools": {**{k: 0 for k in RENEWAL_STATUSES}, **figures.get("schools", {})},
            "communes": {"renewed": renewed, "pending": communes - renewed if days >= 0 else 0,
                         "not_renewed": communes - renewed if days < 0 else 0},
        })
    return out


CONVENTION_FIGURES = ("awaiting", "due_within_15_days", "overdue")


def _per(table: Any, number: int, kind: str) -> Any:
    """A later issue's figures for one démarche: None (no such table), {"error": ...}, or its counts
    (every key present, zeros included, so the shape does not depend on the data)."""
    if table is None:
        return None
    if "error" in table:
        return {"error": table["error"]}
    counts = table.get(number, {})
    if kind == "anomalies":
        return {"open": sum(counts.values()), "by_severity": dict(sorted(counts.items()))}
    keys = ACTION_STATES if kind == "actions" else CONVENTION_FIGURES
    return {**{k: 0 for k in keys}, **counts}


def _judge(entry: dict[str, Any], interval: timedelta, health: _Health) -> None:
    number = entry["number"]
    age = entry["last_success_age_seconds"]
    if age is None:
        health.add(CRITICAL, f"démarche {number}: no successful sync yet")
    elif age > CRITICAL_AGE.total_seconds():
        health.add(CRITICAL, f"démarche {number}: no successful sync for {age // 3600} h")
    elif age > STALE_INTERVALS * interval.total_seconds():
        health.add(WARNING, f"démarche {number}: no successful sync for {age // 60} min "
                            f"({STALE_INTERVALS} intervals)")
    last = entry["last_run"]
    if last is not None and last["result"] == "failed":
        health.add(CRITICAL, f"démarche {number}: last run failed: {last['error'] or 'see the logs'}")
    if entry["quarantined"]:
        health.add(WARNING, f"démarche {number}: {entry['quarantined']} in quarantine")
    if entry["files"]["failed"]:
        health.add(WARNING, f"démarche {number}: {entry['files']['failed']} file(s) failed to download "
                            "(checksum, size, DS refused or a virus: files.failed_reason; retried with a backoff)")
    actions = entry["actions"] or {}
    if actions.get("unknown"):
        health.add(CRITICAL, f"démarche {number}: {actions['unknown']} action(s) in unknown state (check DS)")
