"""``ds-connector sync``: config, token and progress around one run of :mod:`connector.service`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from connector import logs, service
from connector.config import load_config, select_demarches
from connector.commands.hooks import sync_hooks
from connector.credentials import load_token
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
    """One run of the run service (``connector.service``): the sync, its follow-up and its report,
    under the instance lock (``wait``: after the holder's run)."""
    config = load_config(config_path)
    select_demarches(config, demarches)
    token = load_token(config)
    progress = None
    terminal = None
    if sys.stderr.isatty():  # people get a progress line and warnings; journald and pipes every JSON line
        terminal = logs.TerminalLines(sys.stderr)
        progress = TerminalProgress(terminal)
    service.configure_logging(config, "once", verbose=verbose, stream=terminal)
    with service.hold_lock(config, "sync", wait=wait) as lock:
        try:
            outcome = asyncio.run(service.run(config, token, lock, kind="once", hooks=sync_hooks(config),
                                              demarches=demarches or None, full=full, progress=progress))
        finally:
            if progress:
                progress.done()
    report = outcome.sync
    assert report is not None
    for demarche in report.demarches:
        if demarche.error is not None:
            click.echo(f"ds-connector: démarche {demarche.number}: {demarche.error}", err=True)
    click.echo(report.summary())
    return report.exit_code
