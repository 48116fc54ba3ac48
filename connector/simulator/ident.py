"""UAI and SIRET arithmetic for the simulator (its own copy: it never imports the connector's).

- UAI: 7 characters (``0`` + 2-digit département + 4-digit serial for a primary school) and a check
  letter ``UAI_LETTERS[int(first7) % 23]``.
- SIREN (9 digits) and SIRET (SIREN + 5-digit NIC, 14 digits) are Luhn-valid. A commune's SIREN is
  ``21`` + département (2 digits) + ``0`` + the 3-digit commune part of its INSEE code + a Luhn check
  digit, e.g. Toulouse (INSEE 31555) is ``213105554``.
"""

from __future__ import annotations

import random

UAI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def uai_letter(first7: str) -> str:
    return UAI_LETTERS[int(first7) % 23]


def make_uai(departement: str, serial: int) -> str:
    """A valid primary-school UAI in a 2-digit département, e.g. ``make_uai("54", 232) == "0540232J"``."""
    first7 = f"0{departement}{serial:04d}"
    return first7 + uai_letter(first7)


def uai_is_valid(uai: str) -> bool:
    return len(uai) == 8 and uai[:7].isdigit() and uai[7] == uai_letter(uai[:7])


def with_wrong_letter(uai: str, rng: random.Random) -> str:
    """The same UAI with another check letter (a planted typo)."""
    right = uai_letter(uai[:7])
    return uai[:7] + rng.choice([c for c in UAI_LETTERS if c != right])


def luhn_is_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def luhn_complete(prefix: str) -> str:
    """``prefix`` plus the check digit that makes it Luhn-valid."""
    for d in "0123456789":
        if luhn_is_valid(prefix + d):
            return prefix + d
    raise AssertionError("unreachable: one digit always completes a Luhn number")


def commune_siren(insee: str) -> str:
    return luhn_complete(f"21{insee[:2]}0{insee[2:]}")


def siret_from(siren: str, nic: int) -> str:
    """A Luhn-valid SIRET: the SIREN, 4 digits of establishment number, a check digit."""
    return luhn_complete(f"{siren}{nic:04d}")


def with_bad_luhn(number: str, rng: random.Random) -> str:
    """The same number with its last digit changed, so that the Luhn check fails."""
    last = number[-1]
    return number[:-1] + rng.choice([d for d in "0123456789" if d != last])
