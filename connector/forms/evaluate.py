"""Evaluating dossiers: rebuild their form summary and schools, run the rules, record the anomalies.

``evaluate_dossiers`` runs inside the caller's transaction (the sync page's, or ``check``'s). Nothing
here stops a sync: a dossier whose form cannot be read, or a rule that raises on a dossier, is logged
(``forms.dossier_failed``, ``forms.rule_failed`` with the rule and the dossier) and the others go on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from connector import __version__
from connector.forms import rules
from connector.forms.dossier import DossierForm, FormReader
from connector.forms.profiles import Resolution
from connector.logs import get_logger
from connector.store import forms as store
from connector.store.sql import now_utc

log = get_logger(__name__)


@dataclass
class Evaluation:
    dossiers: int = 0
    failed: list[int] = field(default_factory=list)
    opened: int = 0
    resolved: int = 0


def _form_row(form: DossierForm, now: str) -> dict[str, Any]:
    return {
        "dossier_number": form.number, "demarche_number": form.demarche, "profile": form.profile,
        "siret": form.siret, "collectivite": form.collectivite, "nombre_ecoles": form.nombre_ecoles,
        "nombre_ecoles_saisi": form.nombre_ecoles_saisi, "cout": form.cout, "cout_saisi": form.cout_saisi,
        "ecoles_listees": len(form.schools), "problems": json.dumps(form.problems, ensure_ascii=False) or None,
        "evaluated_at": now,
    }


def _ecole_rows(form: DossierForm) -> list[dict[str, Any]]:
    return [{
        "demarche_number": form.demarche, "dossier_number": form.number, "position": s.position,
        "uai_saisi": s.uai_saisi, "uai": s.uai or None, "uai_valide": int(s.uai_valide), "nom": s.nom,
        "commune": s.commune, "source": s.source, "champ": s.champ,
    } for s in form.schools]


def evaluate_dossiers(db: sqlite_utils.Database, resolution: Resolution, numbers: list[int],
                      settings: rules.Settings, now: str | None = None) -> Evaluation:
    """Rebuild ``dossier_forms`` and ``ecoles`` of these dossiers and their per-dossier anomalies. A
    démarche whose profile is ``none`` has no form to read: its dossiers get no form summary, no school
    and no anomaly (those left by an earlier profile are removed, resolved)."""
    now = now or now_utc()
    result = Evaluation()
    if not resolution.recognised:
        numbers = list(dict.fromkeys(numbers))
        store.forget_dossier_forms(db, numbers)
        result.opened, result.resolved = store.sync_anomalies(db, numbers, rules.DOSSIER_CODES, [], now)
        return result
    found: list[dict] = []
    done: list[int] = []
    form_rows: list[dict] = []
    ecole_rows: list[dict] = []
    numbers = list(dict.fromkeys(numbers))  # each dossier once: its rows are written once
    reader = FormReader(db, numbers, resolution)
    for number in numbers:
        try:
            form = reader.form(number)
        except Exception as exc:  # a dossier the forms layer cannot read never stops the sync
            log.error("forms.dossier_failed", dossier=number, demarche=resolution.demarche,
                      error=f"{type(exc).__name__}: {exc}")
            result.failed.append(number)
            continue
        if form is None:
            continue
        for problem in form.problems:
            log.warning("forms.value_unexpected", dossier=number, demarche=resolution.demarche, problem=problem)
        form_rows.append(_form_row(form, now))
        ecole_rows += _ecole_rows(form)
        found += rules.check_dossier(form, resolution, settings)
        done.append(number)
        result.dossiers += 1
    store.save_dossier_forms(db, form_rows, ecole_rows)
    result.opened, result.resolved = store.sync_anomalies(db, done, rules.DOSSIER_CODES, found, now)
    return result


def evaluate_cross(db: sqlite_utils.Database, resolution: Resolution, now: str | None = None) -> Evaluation:
    """The cross-dossier rules of the whole démarche (one school claimed by two collectivités, one
    collectivité with two live dossiers). What they read (``rules.cross_facts``) is fingerprinted with
    the labels and the code's version: when it is what the last evaluation read, the anomalies are
    already right and nothing is written. The fingerprint commits with the anomalies;
    a new role mapping clears it (``store.save_resolution``)."""
    now = now or now_utc()
    result = Evaluation()
    facts = rules.cross_facts(db, resolution.demarche)
    fingerprint = _fingerprint(resolution, facts)
    if fingerprint == store.cross_fingerprint(db, resolution.demarche):
        return result
    found = rules.check_cross(resolution, facts)
    numbers = store.dossier_numbers(db, resolution.demarche)
    result.opened, result.resolved = store.sync_anomalies(db, numbers, rules.CROSS_CODES, found, now)
    result.dossiers = len(numbers)
    store.set_cross_fingerprint(db, resolution.demarche, fingerprint)
    return result


def _fingerprint(resolution: Resolution, facts: tuple[list[tuple], list[tuple]]) -> str:
    """Everything ``rules.check_cross`` turns into anomalies, hashed."""
    inputs = [__version__, resolution.profile, rules.OTHERS_LISTED, [rules.RULES[c].severity for c in rules.CROSS_CODES],
              resolution.label("ecoles"), resolution.label("siret"), facts]
    return hashlib.sha256(json.dumps(inputs, ensure_ascii=False, default=str).encode()).hexdigest()
