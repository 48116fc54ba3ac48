"""Schools from every shape a form gives them: the UAI, the school's name and its commune.

Shapes met in the wild (issue 8 §2):
- a (multiple) drop-down whose options read ``Ecole primaire , BENAMENIL (0540232J)``;
- options like ``École élémentaire Jules Ferry - 0311234A``;
- DS's AnnuaireEducation champ (served as a TextChamp: ``Nom, Commune (UAI)``);
- a repetition of commune + drop-down school, or of typed UAIs (with or without a school name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connector.forms.identifiers import normalize_uai, uai_problem

# A UAI inside a text: 8 characters ending in a letter, not glued to other letters or digits.
_UAI = re.compile(r"(?<![0-9A-Za-z])([0-9]{3}[0-9A-Za-z]{4}[A-Za-z])(?![0-9A-Za-z])")
_PAREN = re.compile(r"^(?P<name>.*?)\s*,\s*(?P<commune>[^,()]*?)\s*\((?P<uai>[^()]*)\)\s*$")
_DASH = re.compile(r"^(?P<name>.*?)\s+[-–—]\s+(?P<uai>\S+)\s*$")
_SPACES = re.compile(r"\s+")
_ALNUM = re.compile(r"[0-9A-Za-z]+")


@dataclass
class School:
    position: int
    uai_saisi: str | None  # as the form holds it
    uai: str  # normalised ('' when the entry holds no UAI at all)
    uai_valide: bool
    nom: str | None
    commune: str | None
    source: str  # the shape: option, uai, annuaire
    champ: str | None  # descriptor id (or label) of the champ it came from
    problem: str | None = None  # why the UAI is invalid (French)


def parse_school_text(text: str) -> tuple[str | None, str | None, str | None]:
    """(typed UAI, name, commune) of one option or champ text; (None, text, None) when it holds no UAI."""
    text = (text or "").strip()
    if not text:
        return None, None, None
    m = _PAREN.match(text)
    if m:
        return m["uai"].strip(), m["name"].strip() or None, m["commune"].strip() or None
    m = _DASH.match(text)
    if m and _UAI.fullmatch(m["uai"]):
        return m["uai"], m["name"].strip() or None, None
    compact = _SPACES.sub("", text)
    if len(compact) <= 10 and _ALNUM.fullmatch(compact):
        return text, None, None  # a typed UAI, right or wrong
    m = _UAI.search(text)
    if m:
        rest = (text[:m.start()] + text[m.end():]).strip(" ,-–—()")
        return m[1], rest or None, None
    return None, text, None


def make_school(position: int, typed: str | None, nom: str | None, commune: str | None, source: str,
                champ: str | None) -> School:
    uai = normalize_uai(typed)
    problem = uai_problem(uai) if uai else "aucun UAI"
    return School(position, typed, uai, problem is None, nom, commune, source, champ, problem)
