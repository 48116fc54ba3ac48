"""``ds-connector sync``: config, token, lock, logging and progress around :func:`run_sync`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from connector import logs
from connector.config import load_config
from connector.commands.hooks import after_sync, sync_hooks
from connector.credentials import load_token
from connector.lock import InstanceLock
from connector.sync.engine import DemarcheReport, run_sync


class TerminalProgress:
    """One rewritten status line on a terminal: démarche, pages, dossiers, rate."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.shown = False

    def __call__(self, report: DemarcheReport) -> None:
        seconds = max(time.monotonic() - report.started, 1e-6)
        line = (f"démarche {report.number}: {report.pages} pages, {report.dossiers} dossiers "
                f"({report.new} new, {report.updated} updated), {report.dossiers / seconds:.0f} dossiers/s")
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def sync_once(config_path: Path | None, demarches: list[int], *, full: bool, verbose: bool = False) -> int:
    config = load_config(config_path)
    token = load_token(config)
    interactive = sys.stderr.isatty()
    if interactive:
        # People get a progress line and warnings; journald and pipes get every JSON line.
        level = config.log.level if verbose else "warning"
        logs.configure(level=level, json=config.log.json or False, stream=sys.stderr)
    else:
        logs.configure(level=config.log.level, json=config.log.json, stream=sys.stdout)
    progress = TerminalProgress(sys.stderr) if interactive else None
    with InstanceLock(config.state_dir, holder="sync"):
        try:
            report = asyncio.run(run_sync(config, token, demarches=demarches or None, full=full, hooks=sync_hooks(config),
                                          progress=progress))
        finally:
            if progress:
                progress.done()
        if report.exit_code == 0:
            asyncio.run(after_sync(config, report))
    for demarche in report.demarches:
        if demarche.error is not None:
            click.echo(f"ds-connector: démarche {demarche.number}: {demarche.error}", err=True)
    click.echo(report.summary())
    return report.exit_code
