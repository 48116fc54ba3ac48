"""UAI and SIRET checks (the rules of docs/domain.md), vendored: the connector never reads the simulator's copy.

- UAI: 7 characters and a check letter ``"ABCDEFGHJKLMNPRSTUVWXYZ"[int(first seven) % 23]``. A typed
  UAI is normalised (spaces out, upper case) before it is checked; what does not match the pattern
  (Corsica's letters in the number included) is invalid, never a crash.
- SIRET: 14 digits, Luhn-valid; La Poste's establishments (SIREN 356000000) are the exception: their
  SIRETs have a digit sum that is a multiple of 5 instead. A commune's (or a groupement's) SIREN starts
  with 2 (``21`` + département for communes, ``20``/``24``/``25`` for the others).
"""

from __future__ import annotations

import re

UAI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
UAI_PATTERN = re.compile(r"^[0-9]{7}[A-Z]$")
LA_POSTE_SIREN = "356000000"
_SPACES = re.compile(r"\s+")
_SIRET_SEPARATORS = re.compile(r"[\s.]+")
_SIRET_PATTERN = re.compile(r"[0-9]{14}")


def normalize_uai(typed: str | None) -> str:
    return _SPACES.sub("", typed or "").upper()


def uai_check_letter(first7: str) -> str:
    return UAI_LETTERS[int(first7) % 23]


def uai_problem(uai: str) -> str | None:
    """Why a normalised UAI is invalid (French, for instructeurs), or None."""
    if not UAI_PATTERN.match(uai):
        return "ne suit pas le format d'un UAI (7 chiffres suivis d'une lettre)"
    right = uai_check_letter(uai[:7])
    if uai[7] != right:
        return f"lettre de contrôle erronée (attendue : {right})"
    return None


def uai_departement(uai: str) -> str | None:
    """The département of a primary-school UAI (``0DD…``: ``0540232J`` -> ``54``; ``97x`` overseas)."""
    if not UAI_PATTERN.match(uai):
        return None
    if uai.startswith("097") or uai.startswith("098"):
        return uai[1:4]
    return uai[1:3]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def normalize_siret(typed: str | None) -> str:
    return _SIRET_SEPARATORS.sub("", typed or "")


def siret_problem(siret: str) -> str | None:
    """Why a SIRET is invalid (French), or None."""
    if not _SIRET_PATTERN.fullmatch(siret):
        return "ne compte pas 14 chiffres"
    if siret.startswith(LA_POSTE_SIREN):
        if luhn_ok(siret) or sum(int(c) for c in siret) % 5 == 0:
            return None
        return "numéro de La Poste invalide (la somme des chiffres doit être un multiple de 5)"
    if not luhn_ok(siret):
        return "clé de contrôle (Luhn) invalide"
    return None


def is_collectivite(siret: str) -> bool:
    """SIRENs of collectivités territoriales and their groupements start with 2 (INSEE catégorie 7
    aside, their SIREN numbering: 21 communes, 22 départements, 23 régions, 20/24/25 groupements)."""
    return siret[:1] == "2"
