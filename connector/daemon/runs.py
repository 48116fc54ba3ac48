"""One sync run, recorded for ``status``: what both ``sync`` and the daemon's jobs call.

:func:`run_sync` writes the ``sync_runs`` row; this adds the run's ``run_reports`` row (each
démarche's error, a fatal error, retries, rate-limited requests) once the run is over, whatever its
end. The caller holds the instance lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from connector.config import Config
from connector.credentials import ApiToken
from connector.errors import ConnectorError
from connector.logs import get_logger
from connector.store import open_db
from connector.store.status import record_run_report
from connector.sync.engine import SyncHooks, SyncReport, run_sync

log = get_logger(__name__)


def _latest_run(config: Config) -> int:
    db = open_db(config.database.path)
    try:
        return db.execute("SELECT coalesce(max(id), 0) FROM sync_runs").fetchone()[0]
    finally:
        db.close()


def _record(config: Config, run_id: int | None, **fields: Any) -> None:
    try:
        db = open_db(config.database.path)
    except ConnectorError as exc:
        log.error("sync.report_not_recorded", error=str(exc))
        return
    try:
        record_run_report(db, run_id, **fields)
    finally:
        db.close()


async def run_recorded(config: Config, token: ApiToken, *, demarches: list[int] | None = None, full: bool = False,
                       kind: str = "once", hooks: SyncHooks | None = None, stop: asyncio.Event | None = None,
                       progress: Any = None) -> SyncReport:
    """``run_sync`` and its report row. A fatal ConnectorError (bad token...) is recorded against
    the run it ended, then raised again."""
    before = _latest_run(config)
    try:
        report = await run_sync(config, token, demarches=demarches, full=full, kind=kind, hooks=hooks,
                                stop=stop, progress=progress)
    except ConnectorError as exc:
        if _latest_run(config) > before:  # the run had started: it is the latest
            _record(config, None, error=f"{type(exc).__name__}: {exc.message}")
        raise
    _record(config, report.run_id, retries=report.retries, rate_limited=report.rate_limited,
            errors={d.number: f"{type(d.error).__name__}: {d.error}" for d in report.demarches if d.error is not None})
    return report
