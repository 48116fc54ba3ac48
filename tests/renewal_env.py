"""Helpers for the renewal tests: the simulator's renewal world, a config naming its two campaigns
(``previous`` + ``[demarches.renewal]``), the table ``renouvellements`` read back and compared with the
simulator's planted truth (``/_sim/renewal/truth``)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from connector.config import Config, load_config
from connector.simulator import renewal
from followup_env import api_instructeur
from syncenv import write_config

RENEWAL_BLOCK = ('[demarches.renewal]\nrentree = 2026-09-01\nnew_schools = 2026-08-29\ncutoff = 2026-10-29\n'
                 'reminders = {reminders}\nreminder_days = 15\n'
                 "weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']\nhours = [0, 24]\n")


def renewal_config(directory: Path, simulator: Any, *, reminders: bool = False) -> Config:
    path = write_config(directory, simulator.url, simulator.token, [renewal.PREVIOUS, renewal.NEXT])
    text = path.read_text().replace("[ds]\n", f'[ds]\ninstructeur_email = "{api_instructeur(simulator.world)}"\n', 1)
    text = text.replace(f"number = {renewal.NEXT}\n", f"number = {renewal.NEXT}\nprevious = {renewal.PREVIOUS}\n"
                        + RENEWAL_BLOCK.format(reminders=str(reminders).lower()), 1)
    path.write_text(text)
    return load_config(path)


def table(config: Config) -> dict[str, dict[str, Any]]:
    with closing(sqlite3.connect(config.database.path)) as conn:
        conn.row_factory = sqlite3.Row
        return {r["uai"]: dict(r) for r in conn.execute("SELECT * FROM renouvellements WHERE demarche_number = ?",
                                                        [renewal.NEXT])}


def agreement(config: Config, truth: dict[str, Any]) -> tuple[dict[str, list[int]], list[str]]:
    """Per expected status: [schools, agreeing on status, holder change and opening date]; the disagreements."""
    got = table(config)
    per: dict[str, list[int]] = {}
    wrong = []
    for uai, want in truth["schools"].items():
        row = got.get(uai)
        counts = per.setdefault(want["status"], [0, 0])
        counts[0] += 1
        have = None if row is None else (row["statut"], row["siret_precedent"], row["siret"],
                                         bool(row["changement_titulaire"]), row["type"], row["ouverture"])
        expected = (want["status"], want["siret_precedent"], want["siret"], want["changement_titulaire"],
                    want["type"], want["ouverture"])
        if have == expected:
            counts[1] += 1
        else:
            wrong.append(f"{uai}: expected {expected}, got {have}")
    extra = sorted(set(got) - set(truth["schools"]))
    wrong += [f"{uai}: not in the truth, got {got[uai]['statut']}" for uai in extra]
    return per, wrong
