"""``ds-connector check``: re-evaluate the dossiers of the mirror against the form rules."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector import logs
from connector.config import load_config, select_demarches
from connector.lock import InstanceLock
from connector.store import open_db


def check(config_path: Path | None, demarches: list[int], full: bool) -> int:
    from connector.forms.checking import check_demarches, render

    config = load_config(config_path)
    logs.configure(level="warning" if sys.stderr.isatty() else config.log.level, json=config.log.json,
                   stream=sys.stderr)
    select_demarches(config, demarches)  # an unknown one: ConfigError, exit 78, naming the configured ones
    with InstanceLock(config.state_dir, holder="check"):
        db = open_db(config.database.path)
        try:
            checks = check_demarches(db, config, demarches or [d.number for d in config.demarches], full)
        finally:
            db.close()
    click.echo(render([c for c in checks], full))
    return 0


def forms_report(config_path: Path | None) -> tuple[str, list[str]]:
    """check-config's forms section: per démarche, the profile and the role problems, resolved against
    the champ descriptors in the mirror (nothing to say before the first sync)."""
    from connector.errors import ConnectorError
    from connector.forms.profiles import resolve
    from connector.store import open_db_readonly

    config = load_config(config_path)
    if not config.database.path.is_file():
        return "  Forms:        roles are resolved after the first sync (no database yet)", []
    try:
        db = open_db_readonly(config.database.path)
    except ConnectorError as exc:
        return f"  Forms:        not checked: {exc}", []
    lines, problems = ["  Forms:"], []
    try:
        for d in config.demarches:
            r = resolve(db, d.number, d)
            how = "detected" if r.detected else "configured"
            lines.append(f"    {d.number}  profile {r.profile} ({how}), {len(r.mapping)} roles mapped, fee "
                         f"{d.fee_per_school:g} € per school")
            problems += r.problems
    finally:
        db.close()
    return "\n".join(lines), problems
