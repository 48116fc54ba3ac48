"""``ds-connector sync``: config, token, lock, logging and progress around :func:`run_sync`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from connector import logs
from connector.commands.actions import after_sync
from connector.commands.hooks import sync_hooks
from connector.config import load_config
from connector.credentials import load_token
from connector.daemon.runs import run_recorded
from connector.errors import LockHeld
from connector.lock import InstanceLock, read_holder
from connector.sync.engine import DemarcheReport


class TerminalProgress:
    """One rewritten status line on a terminal: démarche, pages, dossiers, rate. It shares the
    terminal with the log lines through :class:`connector.logs.TerminalLines`: a log line clears it
    and it is redrawn below, so the two never share a line."""

    def __init__(self, stream: TextIO | logs.TerminalLines):
        self.lines = stream if isinstance(stream, logs.TerminalLines) else logs.TerminalLines(stream)

    def __call__(self, report: DemarcheReport) -> None:
        seconds = max(time.monotonic() - report.started, 1e-6)
        line = (f"démarche {report.number}: {report.pages} pages, {report.dossiers} dossiers "
                f"({report.new} new, {report.updated} updated), {report.dossiers / seconds:.0f} dossiers/s")
        self.lines.progress(line)

    def done(self) -> None:
        self.lines.done()


def sync_once(config_path: Path | None, demarches: list[int], *, full: bool, verbose: bool = False,
              wait: bool = False) -> int:
    config = load_config(config_path)
    token = load_token(config)
    interactive = sys.stderr.isatty()
    progress = None
    if interactive:
        # People get a progress line and warnings; journald and pipes get every JSON line.
        level = config.log.level if verbose else "warning"
        terminal = logs.TerminalLines(sys.stderr)
        logs.configure(level=level, json=config.log.json or False, stream=terminal)
        progress = TerminalProgress(terminal)
    else:
        logs.configure(level=config.log.level, json=config.log.json, stream=sys.stdout)
    lock = InstanceLock(config.state_dir, holder="sync")
    try:
        lock.acquire()
    except LockHeld:
        if not wait:
            raise
        holder = read_holder(config.state_dir)
        click.echo(f"ds-connector: waiting for pid {holder.pid or 'unknown'} ({holder.what or 'another sync'}) "
                   "to finish its run…", err=True)
        lock.acquire(wait=True)
    with lock:
        try:
            report = asyncio.run(run_recorded(config, token, demarches=demarches or None, full=full,
                                              hooks=sync_hooks(config), progress=progress))
        finally:
            if progress:
                progress.done()
        if report.demarches_done:  # a quarantined dossier does not hold back the others' follow-up
            asyncio.run(after_sync(config, report))
    for demarche in report.demarches:
        if demarche.error is not None:
            click.echo(f"ds-connector: démarche {demarche.number}: {demarche.error}", err=True)
    click.echo(report.summary())
    return report.exit_code
