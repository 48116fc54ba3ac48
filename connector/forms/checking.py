"""``ds-connector check``: re-resolve the roles and re-evaluate the dossiers of the mirror.

Without ``full``, only the dossiers changed since their last evaluation (or never evaluated); with it,
every dossier (after a rule or config change). Each démarche is one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

from connector.config import Config
from connector.forms.evaluate import evaluate_cross, evaluate_dossiers
from connector.forms.hooks import _config_of, record_resolution
from connector.forms.rules import RULES, settings_for
from connector.store import forms as store


@dataclass
class DemarcheCheck:
    number: int
    profile: str
    detected: bool
    problems: list[str]
    notes: list[str] = field(default_factory=list)  # no profile recognised, a rule off, a fee contradicted
    dossiers: int = 0
    failed: list[int] = field(default_factory=list)
    opened: int = 0
    resolved: int = 0
    open_by_code: dict[str, int] = field(default_factory=dict)


def check_demarches(db: sqlite_utils.Database, config: Config | None, demarches: list[int] | None,
                    full: bool) -> list[DemarcheCheck]:
    out = []
    for number in demarches or store.demarche_numbers(db):
        demarche_config = _config_of(config, number)
        with db.atomic():
            resolution = record_resolution(db, number, demarche_config)
            numbers = (store.dossier_numbers(db, number) if full
                       else store.dossiers_to_evaluate(db, number))
            settings = settings_for(resolution, demarche_config)
            result = evaluate_dossiers(db, resolution, numbers, settings)
            cross = evaluate_cross(db, resolution)
        counts = {code: n for dem, code, _, n in store.open_anomaly_counts(db, number)}
        notes = ([resolution.note] if resolution.note else []) + resolution.warnings + list(settings.notes)
        out.append(DemarcheCheck(number, resolution.profile, resolution.detected, resolution.problems, notes,
                                 result.dossiers, result.failed, result.opened + cross.opened,
                                 result.resolved + cross.resolved, counts))
    return out


def render(checks: list[DemarcheCheck], full: bool) -> str:
    lines = []
    for c in checks:
        how = "detected" if c.detected else "configured"
        lines.append(f"démarche {c.number}: profile {c.profile} ({how}), {c.dossiers} dossier(s) "
                     f"{'re-evaluated' if full else 'evaluated'}, {c.opened} anomalies opened, {c.resolved} resolved"
                     + (f", {len(c.failed)} dossier(s) unreadable (see the log)" if c.failed else ""))
        lines += [f"  ! {p}" for p in c.problems]
        lines += [f"  - {n}" for n in c.notes]
        for code, rule in RULES.items():
            if c.open_by_code.get(code):
                lines.append(f"  {c.open_by_code[code]:5d}  {code:26} {rule.severity:7}  {rule.title}")
        if not c.open_by_code:
            lines.append("  no open anomaly")
    return "\n".join(lines) if lines else "no démarche in the mirror yet: run a sync first"
