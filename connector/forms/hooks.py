"""The sync hook of the forms layer: roles re-resolved when the descriptor is saved, dossiers evaluated
in their page's transaction, cross-dossier rules once the démarche is done."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from connector.config import Config, DemarcheConfig
from connector.forms import rules
from connector.forms.evaluate import evaluate_cross, evaluate_dossiers
from connector.forms.profiles import Resolution, kind, resolve
from connector.logs import get_logger
from connector.store import forms as store
from connector.store.sql import now_utc

log = get_logger(__name__)


def _config_of(config: Config | None, demarche: int) -> DemarcheConfig | None:
    for d in getattr(config, "demarches", ()) or ():
        if d.number == demarche:
            return d
    return None


def record_resolution(db: sqlite_utils.Database, demarche: int,
                      demarche_config: DemarcheConfig | None) -> Resolution:
    """Resolve the roles, log the chosen profile (``forms.profile_none`` with the best candidate and
    what it lacked when no ENT-École profile is recognised), every problem and what the settings say
    (a rule off, a configured fee the form contradicts), record the mapping and report the mapped
    champs the active revision dropped (``forms.role_dropped``)."""
    resolution = resolve(db, demarche, demarche_config)
    if resolution.note:
        log.info("forms.profile_none", demarche=demarche, profile=resolution.profile, note=resolution.note)
    else:
        event = "forms.profile_detected" if resolution.detected else "forms.profile_configured"
        log.info(event, demarche=demarche, profile=resolution.profile, roles=sorted(resolution.mapping))
    for problem in resolution.problems:
        log.warning("forms.role_unresolved", demarche=demarche, problem=problem)
    for warning in resolution.warnings:
        log.info("forms.role_optional_unresolved", demarche=demarche, problem=warning)
    settings = rules.settings_for(resolution, demarche_config)
    for note in settings.notes:
        log.warning("forms.settings", demarche=demarche, note=note)
    mapping = {role: [(d.id, d.label, kind(d.type)) for d in ds] for role, ds in resolution.mapping.items()}
    previous = store.save_resolution(db, demarche, resolution.profile, resolution.detected, mapping,
                                     resolution.problems + resolution.warnings, now_utc())
    current = {d.id for d in resolution.descriptors}
    for role, items in previous.items():
        for did, label in items:
            if did not in current:
                log.warning("forms.role_dropped", demarche=demarche, role=role, descriptor_id=did, label=label,
                            note="dossiers filed under the old revision keep this champ")
    return resolution


class FormsHooks:
    """``SyncHooks`` of the forms layer (``connector.commands.hooks.sync_hooks`` composes it)."""

    def __init__(self, config: Config):
        self.config = config
        self._resolutions: dict[int, Resolution] = {}
        self._settings: dict[int, tuple[Resolution, rules.Settings]] = {}

    def resolution(self, db: sqlite_utils.Database, demarche: int) -> Resolution:
        if demarche not in self._resolutions:
            if store.stored_profile(db, demarche) is None:
                self._resolutions[demarche] = record_resolution(db, demarche, _config_of(self.config, demarche))
            else:
                self._resolutions[demarche] = resolve(db, demarche, _config_of(self.config, demarche))
        return self._resolutions[demarche]

    def settings(self, db: sqlite_utils.Database, demarche: int) -> rules.Settings:
        """The fee and départements of the démarche, resolved once per resolution of its roles."""
        resolution = self.resolution(db, demarche)
        cached = self._settings.get(demarche)
        if cached is None or cached[0] is not resolution:
            cached = self._settings[demarche] = (resolution,
                                                 rules.settings_for(resolution, _config_of(self.config, demarche)))
        return cached[1]

    def descriptor_saved(self, db: sqlite_utils.Database, demarche: int) -> None:
        self._resolutions[demarche] = record_resolution(db, demarche, _config_of(self.config, demarche))

    def dossiers_changed(self, db: sqlite_utils.Database, demarche: int, numbers: list[int]) -> None:
        result = evaluate_dossiers(db, self.resolution(db, demarche), numbers, self.settings(db, demarche))
        if result.opened or result.resolved or result.failed:
            log.info("forms.dossiers_evaluated", demarche=demarche, dossiers=result.dossiers,
                     opened=result.opened, resolved=result.resolved, failed=result.failed)

    def demarche_done(self, db: sqlite_utils.Database, demarche: int, report: Any) -> None:
        try:
            with db.atomic():
                result = evaluate_cross(db, self.resolution(db, demarche))
        except Exception as exc:  # never fail the sync for the forms layer
            log.error("forms.cross_rules_failed", demarche=demarche, error=f"{type(exc).__name__}: {exc}")
            return
        if result.opened or result.resolved:
            log.info("forms.cross_rules_evaluated", demarche=demarche, opened=result.opened, resolved=result.resolved)
