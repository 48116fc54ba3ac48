"""``ds-connector sync``: config, token, lock, logging and the progress display around :func:`run_sync`."""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from connector import logs
from connector.config import load_config
from connector.commands.hooks import after_sync, sync_hooks
from connector.credentials import load_token
from connector.daemon.runs import run_recorded
from connector.errors import LockHeld
from connector.lock import InstanceLock, read_holder
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
    config = load_config(config_path)
    token = load_token(config)
    display = None
    if interactive():
        # People get the progress display and warnings; journald and pipes get every JSON line.
        level = config.log.level if verbose else "warning"
        display, lines = terminal_display(full, demarches or [d.number for d in config.demarches])
        logs.configure(level=level, json=config.log.json or False, stream=lines)
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
    with lock, display or nullcontext():
        report = asyncio.run(run_recorded(config, token, demarches=demarches or None, full=full,
                                          hooks=sync_hooks(config), progress=display))
        if report.demarches_done:  # a quarantined dossier does not hold back the others' follow-up
            if display:
                display.stage("follow-up")
            asyncio.run(after_sync(config, report))
    for demarche in report.demarches:
        if demarche.error is not None:
            click.echo(f"ds-connector: démarche {demarche.number}: {demarche.error}", err=True)
    click.echo(report.summary())
    return report.exit_code
