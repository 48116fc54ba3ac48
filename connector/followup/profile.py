"""What the follow-up needs from a démarche's form profile (``connector.forms.profiles``, issue "ENT-École
forms"): whether it has the convention deadline, and the descriptor ids of the roles it reads and writes
(``convention_recue``, ``date_reception``, ``statut`` annotations; ``nombre_ecoles``, ``collectivite``,
``siret`` champs). A thin view over ``profiles.resolve()``, never a copy of its rules."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from connector.config import DemarcheConfig
from connector.forms import profiles

ROLES = ("convention_recue", "date_reception", "statut", "nombre_ecoles", "collectivite", "siret")


@dataclass(frozen=True)
class FollowupProfile:
    name: str
    convention_deadline: bool
    champs: dict[str, str | None]  # role -> descriptor id (None: missing or ambiguous)

    def champ(self, role: str) -> str | None:
        return self.champs.get(role)


def resolve(db: sqlite_utils.Database, demarche_number: int,
            demarche_config: DemarcheConfig | None) -> FollowupProfile | None:
    """The démarche's follow-up profile; None when its form is no ENT-École form (profile ``none``)."""
    resolution = profiles.resolve(db, demarche_number, demarche_config)
    if not resolution.recognised:  # profile none: no form, no convention, no action
        return None
    return FollowupProfile(resolution.profile, bool(resolution.convention_deadline),
                           {role: resolution.champ(role) for role in ROLES})
