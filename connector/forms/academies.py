"""The académies and their départements, and which ones a démarche names (its service, its organisme).

A démarche cloned by an académie the connector has no built-in form profile for still says whose it is:
DS serves the service that runs it (``Demarche.service``: ``nom``, ``organisme``), e.g. « Rectorat de
l'académie de Versailles ». ``departements_named(text)`` reads that text: the académies it names (their
chef-lieu, « Versailles », « Créteil »...), else the régions académiques it names (« DRANE Occitanie »:
Montpellier and Toulouse), else nothing (the ``uai_hors_academie`` check is then off unless the config
lists the départements).

Codes are those a primary-school UAI carries (``connector.forms.identifiers.uai_departement``): two
digits, three overseas, and ``20`` for both Corsican départements (their UAIs start ``620``/``720``).
"""

from __future__ import annotations

import re

from connector.forms.profiles import normalize

ACADEMIES: dict[str, tuple[str, ...]] = {
    "Aix-Marseille": ("04", "05", "13", "84"),
    "Amiens": ("02", "60", "80"),
    "Besançon": ("25", "39", "70", "90"),
    "Bordeaux": ("24", "33", "40", "47", "64"),
    "Clermont-Ferrand": ("03", "15", "43", "63"),
    "Corse": ("20",),
    "Créteil": ("77", "93", "94"),
    "Dijon": ("21", "58", "71", "89"),
    "Grenoble": ("07", "26", "38", "73", "74"),
    "Guadeloupe": ("971",),
    "Guyane": ("973",),
    "La Réunion": ("974",),
    "Lille": ("59", "62"),
    "Limoges": ("19", "23", "87"),
    "Lyon": ("01", "42", "69"),
    "Martinique": ("972",),
    "Mayotte": ("976",),
    "Montpellier": ("11", "30", "34", "48", "66"),
    "Nancy-Metz": ("54", "55", "57", "88"),
    "Nantes": ("44", "49", "53", "72", "85"),
    "Nice": ("06", "83"),
    "Normandie": ("14", "27", "50", "61", "76"),
    "Orléans-Tours": ("18", "28", "36", "37", "41", "45"),
    "Paris": ("75",),
    "Poitiers": ("16", "17", "79", "86"),
    "Reims": ("08", "10", "51", "52"),
    "Rennes": ("22", "29", "35", "56"),
    "Strasbourg": ("67", "68"),
    "Toulouse": ("09", "12", "31", "32", "46", "65", "81", "82"),
    "Versailles": ("78", "91", "92", "95"),
}
# Régions académiques of several académies (a région of one académie is named like it, or is Normandie).
REGIONS: dict[str, tuple[str, ...]] = {
    "Auvergne-Rhône-Alpes": ("Clermont-Ferrand", "Grenoble", "Lyon"),
    "Bourgogne-Franche-Comté": ("Besançon", "Dijon"),
    "Bretagne": ("Rennes",),
    "Centre-Val de Loire": ("Orléans-Tours",),
    "Grand Est": ("Nancy-Metz", "Reims", "Strasbourg"),
    "Hauts-de-France": ("Amiens", "Lille"),
    "Île-de-France": ("Créteil", "Paris", "Versailles"),
    "Nouvelle-Aquitaine": ("Bordeaux", "Limoges", "Poitiers"),
    "Occitanie": ("Montpellier", "Toulouse"),
    "Pays de la Loire": ("Nantes",),
    "Provence-Alpes-Côte d'Azur": ("Aix-Marseille", "Nice"),
}
assert all(a in ACADEMIES for names in REGIONS.values() for a in names)


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(normalize(name))}\b")


_ACADEMY_PATTERNS = {name: _pattern(name) for name in ACADEMIES}
_REGION_PATTERNS = {name: _pattern(name) for name in REGIONS}


def academies_named(text: str | None) -> tuple[str, ...]:
    """The académies ``text`` names: by name first, else through the régions académiques it names."""
    norm = normalize(text)
    if not norm:
        return ()
    named = tuple(name for name, p in _ACADEMY_PATTERNS.items() if p.search(norm))
    if named:
        return named
    return tuple(dict.fromkeys(a for name, p in _REGION_PATTERNS.items() if p.search(norm) for a in REGIONS[name]))


def departements_of(academies: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({d for a in academies for d in ACADEMIES[a]}))
