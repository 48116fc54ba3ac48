"""``ds-connector check``: re-evaluate the dossiers of the mirror against the form rules."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector import logs
from connector.config import load_config
from connector.lock import InstanceLock
from connector.store import open_db


def check(config_path: Path | None, demarches: list[int], full: bool) -> int:
    from connector.forms.checking import check_demarches, render

    config = load_config(config_path)
    logs.configure(level="warning" if sys.stderr.isatty() else config.log.level, json=config.log.json,
                   stream=sys.stderr)
    unknown = [n for n in demarches if n not in {d.number for d in config.demarches}]
    if unknown:
        click.echo(f"ds-connector: démarche(s) {', '.join(map(str, unknown))} not in {config.path}: configured are "
                   f"{', '.join(str(d.number) for d in config.demarches)}", err=True)
        return 78
    with InstanceLock(config.state_dir, holder="check"):
        db = open_db(config.database.path)
        try:
            checks = check_demarches(db, config, demarches or [d.number for d in config.demarches], full)
        finally:
            db.close()
    click.echo(render([c for c in checks], full))
    return 0
