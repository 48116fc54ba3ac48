"""What the follow-up needs from a démarche's form profile (issue "ENT-École forms", helper B's
``connector.forms.profiles``): whether it has the convention deadline, and the descriptor ids of the
roles it reads and writes (``convention_recue``, ``date_reception``, ``statut`` annotations;
``nombre_ecoles``, ``collectivite`` champs).

``resolve()`` calls ``connector.forms.profiles.resolve``. INTERIM ADAPTER: until that module is in
this branch, a minimal stand-in below recognises the Occitanie form by its annotation labels; it goes
away once the forms branch is merged (``_interim`` is never used when the real module imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

ROLES = ("convention_recue", "date_reception", "statut", "nombre_ecoles", "collectivite", "siret")


@dataclass(frozen=True)
class FollowupProfile:
    name: str
    convention_deadline: bool
    champs: dict[str, str | None]  # role -> descriptor id

    def champ(self, role: str) -> str | None:
        return self.champs.get(role)


def resolve(db: sqlite_utils.Database, demarche_number: int, demarche_config: Any) -> FollowupProfile | None:
    try:
        from connector.forms import profiles  # type: ignore[import-not-found]
    except ImportError:
        return _interim(db, demarche_number)
    resolution = profiles.resolve(db, demarche_number, demarche_config)
    profile = getattr(resolution, "profile", None)
    if profile is None:
        return None
    return FollowupProfile(getattr(profile, "name", str(profile)), bool(profile.convention_deadline),
                           {role: resolution.champ(role) for role in ROLES})


# --- INTERIM ADAPTER (remove with the forms merge) -----------------------------------------------

_INTERIM_LABELS = {
    "convention_recue": (1, "convention signée reçue"),
    "date_reception": (1, "date de réception de la convention"),
    "statut": (1, "statut convention"),
    "nombre_ecoles": (0, "nombre d'écoles"),
}


def _interim(db: sqlite_utils.Database, demarche_number: int) -> FollowupProfile | None:
    rows = db.conn.execute("SELECT id, private, lower(label) FROM champ_descriptors WHERE demarche_number = ? "
                           "AND parent_id IS NULL ORDER BY position", [demarche_number]).fetchall()
    found: dict[str, str | None] = {}
    for role, (private, prefix) in _INTERIM_LABELS.items():
        found[role] = next((i for i, p, label in rows if p == private and (label or "").startswith(prefix)), None)
    if not (found["convention_recue"] or found["date_reception"]):
        return None
    return FollowupProfile("occitanie", True, found)
