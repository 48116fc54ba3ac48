"""``ds-connector sync``: config, token and the progress display around one run of :mod:`connector.service`."""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from connector import logs, service
from connector.config import load_config, select_demarches
from connector.commands.hooks import sync_hooks
from connector.credentials import load_token
from connector.progress import SyncDisplay, terminal_console


def terminal_display(full: bool, demarches: list[int]) -> tuple[SyncDisplay, logs.ConsoleLines]:
    """The progress display on standard error, and the stream log lines go through above it."""
    console = terminal_console(sys.stderr)
    return SyncDisplay(console, full=full, demarches=demarches), logs.ConsoleLines(console)


def interactive() -> bool:
    """A person at a terminal: standard output and standard error both are one. Otherwise (journald,
    a pipe, a file) the JSON lines go to standard output, as the daemon's do, and nothing is drawn."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def sync_once(config_path: Path | None, demarches: list[int], *, full: bool, verbose: bool = False,
              wait: bool = False) -> int:
    """One run of the run service (``connector.service``): the sync, its follow-up and its report,
    under the instance lock (``wait``: after the holder's run)."""
    config = load_config(config_path)
    select_demarches(config, demarches)
    token = load_token(config)
    display, lines = None, None
    if interactive():  # people get the progress display and warnings; journald and pipes every JSON line
        display, lines = terminal_display(full, demarches or [d.number for d in config.demarches])
    service.configure_logging(config, "once", verbose=verbose, stream=lines)
    with service.hold_lock(config, "sync", wait=wait) as lock, display or nullcontext():
        outcome = asyncio.run(service.run(config, token, lock, kind="once", hooks=sync_hooks(config),
                                          demarches=demarches or None, full=full, progress=display))
    report = outcome.sync
    assert report is not None
    for demarche in report.demarches:
        if demarche.error is not None:
            click.echo(f"ds-connector: démarche {demarche.number}: {demarche.error}", err=True)
    click.echo(report.summary())
    return report.exit_code
