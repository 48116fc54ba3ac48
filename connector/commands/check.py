"""``ds-connector check``: re-evaluate the dossiers of the mirror against the form rules."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector import logs, service
from connector.config import load_config, select_demarches
from connector.errors import ConnectorError
from connector.forms.checking import check_demarches, render
from connector.forms.profiles import resolve
from connector.forms.rules import euros, settings_for
from connector.store import open_db, open_db_readonly


def check(config_path: Path | None, demarches: list[int], full: bool) -> int:
    config = load_config(config_path)
    logs.configure(level="warning" if sys.stderr.isatty() else config.log.level, json=config.log.json,
                   stream=sys.stderr)
    select_demarches(config, demarches)  # an unknown one: ConfigError, exit 78, naming the configured ones
    # A check of the mirror is short and asks DS nothing: it waits for a sync or the daemon's run to end
    # (saying so on standard error) instead of failing with 75.
    with service.hold_lock(config, "check", wait=True):
        db = open_db(config.database.path)
        try:
            checks = check_demarches(db, config, demarches or [d.number for d in config.demarches], full)
        finally:
            db.close()
    click.echo(render([c for c in checks], full))
    return 0


def forms_report(config_path: Path | None) -> tuple[str, list[str]]:
    """check-config's forms section: per démarche, the profile (or "no ENT-École profile recognised",
    with the best candidate and what it lacked), the fee per school and the départements with where
    each comes from (or which rule is off), resolved against the champ descriptors in the mirror
    (nothing to say before the first sync). Returns the text (warnings included: a rule off, an optional
    role unresolved, a configured fee the form contradicts) and the errors: the roles a profile cannot
    work without, which make check-config exit 78."""
    config = load_config(config_path)
    if not config.database.path.is_file():
        return "  Forms:        roles are resolved after the first sync (no database yet)", []
    try:
        db = open_db_readonly(config.database.path)
    except ConnectorError as exc:
        return f"  Forms:        not checked: {exc}", []
    lines, problems, warnings = ["  Forms:"], [], []
    try:
        for d in config.demarches:
            r = resolve(db, d.number, d)
            how = "detected" if r.detected else "configured"
            if not r.recognised:
                lines.append(f"    {d.number}  no ENT-École profile recognised (profile none, {how}): mirrored "
                             "without form checks, conventions or actions")
                if r.note:
                    warnings.append(r.note)
                warnings += r.warnings
                continue
            s = settings_for(r, d)
            lines.append(f"    {d.number}  profile {r.profile} ({how}), {len(r.mapping)} roles mapped")
            if r.mapping.get("cout"):
                lines.append(f"            fee: {euros(s.fee)} per school, {s.fee_source}" if s.fee is not None
                             else "            fee: none known, cost rule off")
            if r.mapping.get("ecoles"):
                lines.append(f"            départements: {', '.join(s.departements)}, from {s.departements_source}"
                             if s.departements else "            départements: none known, uai_hors_academie off")
            problems += r.problems
            warnings += r.warnings + list(s.notes)
    finally:
        db.close()
    if warnings:
        lines.append("  Warnings:")
        lines += [f"    - {w}" for w in warnings]
    return "\n".join(lines), problems
