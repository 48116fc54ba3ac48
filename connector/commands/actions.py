"""``ds-connector actions plan|run|list|retry|cancel``: the convention follow-up's side effects on DS."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import click

from connector import logs
from connector.config import Config, load_config
from connector.credentials import load_token
from connector.ds.budget import RequestBudget
from connector.ds.client import DsClient
from connector.errors import ConnectorError
from connector.followup import actions as followup
from connector.followup import journal
from connector.lock import InstanceLock
from connector.logs import get_logger
from connector.store import followup as store
from connector.store.db import open_db, open_db_readonly

log = get_logger(__name__)


def _client(config: Config) -> DsClient:
    return DsClient(config.ds.url, load_token(config), budget=RequestBudget(config.ds.requests_per_minute),
                    connect_timeout=config.ds.connect_timeout_seconds, read_timeout=config.ds.read_timeout_seconds)


def _logging(config: Config, verbose: bool) -> None:
    if sys.stderr.isatty():
        logs.configure(level=config.log.level if verbose else "warning", json=config.log.json or False,
                       stream=sys.stderr)
    else:
        logs.configure(level=config.log.level, json=config.log.json, stream=sys.stderr)


def plan_lines(report: followup.RunReport) -> list[str]:
    lines = [f"DS clock: {report.ds_now:%Y-%m-%d %H:%M:%S %Z}" if report.ds_now else "DS clock: unknown"]
    if not report.plans:
        lines.append("No configured démarche has the convention deadline.")
    for plan in report.plans:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(plan.statuses.items()))
        lines.append(f"démarche {plan.demarche} ({plan.profile.name if plan.profile else '?'}): {counts}")
        if plan.problem:
            lines.append(f"  cannot act: {plan.problem}")
        todo = [d for d in plan.decisions if d.kind]
        skipped = [d for d in plan.decisions if not d.kind]
        if not todo and not skipped:
            lines.append("  nothing to do now")
        for d in todo:
            when = f" (from {d.not_before})" if d.not_before else ""
            lines.append(f"  dossier {d.dossier}: {d.kind}{when} — {d.rule}")
        for d in skipped:
            lines.append(f"  dossier {d.dossier}: nothing — {d.rule}")
    return lines


def plan(config_path: Path | None, demarches: list[int], verbose: bool = False) -> int:
    """What ``run`` would do now, and why. Nothing is written: the work runs in a transaction that is
    rolled back."""
    config = load_config(config_path)
    _logging(config, verbose)
    db = open_db(config.database.path)

    async def go() -> followup.RunReport:
        async with _client(config) as client:
            return await followup.plan_only(config, client, db, demarches=demarches or None)

    db.conn.execute("BEGIN")
    try:
        report = asyncio.run(go())
    finally:
        db.conn.rollback()
        db.conn.close()
    for line in plan_lines(report):
        click.echo(line)
    return 0


def run(config_path: Path | None, demarches: list[int], settle: float, verbose: bool = False) -> int:
    config = load_config(config_path)
    _logging(config, verbose)
    with InstanceLock(config.state_dir, holder="actions run"):
        report = asyncio.run(run_actions(config, demarches, timedelta(seconds=settle)))
    click.echo(report.summary())
    return 0 if not (report.failed or report.unknown) else 1


async def run_actions(config: Config, demarches: list[int] | None = None,
                      settle: timedelta = timedelta(seconds=60)) -> followup.RunReport:
    db = open_db(config.database.path)  # synchronous=FULL: the journal's commits are on disk
    try:
        async with _client(config) as client:
            report = await followup.run(config, client, db, demarches=demarches or None, settle=settle)
    finally:
        db.conn.close()
    log.info("followup.finished", summary=report.summary())
    return report


async def after_sync_actions(config: Config) -> followup.RunReport | None:
    """After each successful sync: the statuses with DS's clock, and the enabled actions. Failures are
    logged, never raised (the sync itself succeeded)."""
    enabled = any(d.deadline.reminders or d.deadline.classer_sans_suite for d in config.demarches)
    try:
        if enabled:
            return await run_actions(config)
        db = open_db(config.database.path)
        try:
            if not followup.deadline_demarches(db, config):
                return None
            async with _client(config) as client:
                report = await followup.plan_only(config, client, db)
        finally:
            db.conn.close()
        return report
    except ConnectorError as exc:
        log.warning("followup.after_sync_failed", error=str(exc))
        return None


def list_actions(config_path: Path | None, states: list[str], dossier: int | None) -> int:
    config = load_config(config_path)
    db = open_db_readonly(config.database.path)
    rows = store.actions(db, states=tuple(states), dossier=dossier)
    if not rows:
        click.echo("No action in the journal" + (" with these filters." if states or dossier else "."))
        return 0
    click.echo(f"{'id':>5}  {'dossier':>9}  {'kind':<24} {'state':<10} {'tries':>5}  {'updated (UTC)':<20} why / DS")
    for a in rows:
        note = a.last_error or a.rule
        click.echo(f"{a.id:>5}  {a.dossier_number:>9}  {a.kind:<24} {a.state:<10} {a.attempts:>5}  "
                   f"{a.updated_at[:19]:<20} {note}")
    counts = ", ".join(f"{n} {s}" for s, n in store.state_counts(db).items())
    click.echo(f"journal: {counts}")
    return 0


def retry(config_path: Path | None, action_id: int) -> int:
    config = load_config(config_path)
    db = open_db(config.database.path)
    try:
        a = journal.operator_retry(db, action_id)
    except journal.JournalError as exc:
        raise ConnectorError(str(exc)) from None
    log.info("followup.operator_retry", action=action_id, dossier=a.dossier_number)
    click.echo(f"action {a.id} (dossier {a.dossier_number}, {a.kind}) is planned again: the next run sends it")
    return 0


def cancel(config_path: Path | None, action_id: int) -> int:
    config = load_config(config_path)
    db = open_db(config.database.path)
    try:
        a = journal.operator_cancel(db, action_id)
    except journal.JournalError as exc:
        raise ConnectorError(str(exc)) from None
    log.info("followup.operator_cancel", action=action_id, dossier=a.dossier_number)
    click.echo(f"action {a.id} (dossier {a.dossier_number}, {a.kind}) is cancelled")
    return 0
