"""Compact, deterministic reference data for the simulator: départements, communes, schools, people.

Each département holds a few real towns (true INSEE and postal codes) followed by generated
communes with plausible names and codes. The catalogue depends on nothing but this file, so it is
the same for every seed; :func:`communes` builds it once per département.

About 3 % of catalogue schools carry a wrong UAI check letter (:data:`BAD_UAI_RATE`): the académies'
drop-down lists are typed by hand, and every dossier selecting such a school shows the typo.
"""

from __future__ import annotations

import random
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from connector.simulator import ident

BAD_UAI_RATE = 0.03

DEPARTEMENTS = {
    "09": "Ariège", "11": "Aude", "12": "Aveyron", "16": "Charente", "17": "Charente-Maritime",
    "30": "Gard", "31": "Haute-Garonne", "32": "Gers", "34": "Hérault", "46": "Lot", "48": "Lozère",
    "65": "Hautes-Pyrénées", "66": "Pyrénées-Orientales", "77": "Seine-et-Marne", "79": "Deux-Sèvres",
    "81": "Tarn", "82": "Tarn-et-Garonne", "86": "Vienne", "93": "Seine-Saint-Denis",
    "94": "Val-de-Marne", "78": "Yvelines", "91": "Essonne", "92": "Hauts-de-Seine", "95": "Val-d'Oise",
}
REGIONS = {  # code, name
    "76": "Occitanie", "75": "Nouvelle-Aquitaine", "11": "Île-de-France",
}
REGION_OF = {d: "76" for d in ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82")}
REGION_OF |= {d: "75" for d in ("16", "17", "79", "86")} | {d: "11" for d in ("77", "93", "94", "78", "91", "92", "95")}
# Telephone area prefix: the first two digits of a landline number.
PHONE_PREFIX = {
    "09": "05", "11": "04", "12": "05", "30": "04", "31": "05", "32": "05", "34": "04", "46": "05",
    "48": "04", "65": "05", "66": "04", "81": "05", "82": "05", "16": "05", "17": "05", "79": "05",
    "86": "05", "77": "01", "93": "01", "94": "01", "78": "01", "91": "01", "92": "01", "95": "01",
}

# Real towns first in their département: (INSEE code, name, postal code, schools in the catalogue).
TOWNS = {
    "09": (("09122", "Foix", "09000", 6), ("09225", "Pamiers", "09100", 8)),
    "11": (("11069", "Carcassonne", "11000", 14), ("11262", "Narbonne", "11100", 16)),
    "12": (("12202", "Rodez", "12000", 9), ("12145", "Millau", "12100", 8)),
    "30": (("30189", "Nîmes", "30000", 30), ("30007", "Alès", "30100", 14)),
    "31": (("31555", "Toulouse", "31000", 40), ("31069", "Blagnac", "31700", 10),
           ("31149", "Colomiers", "31770", 12)),
    "32": (("32013", "Auch", "32000", 8),),
    "34": (("34172", "Montpellier", "34000", 36), ("34032", "Béziers", "34500", 18),
           ("34301", "Sète", "34200", 10)),
    "46": (("46042", "Cahors", "46000", 7),),
    "48": (("48095", "Mende", "48000", 5),),
    "65": (("65440", "Tarbes", "65000", 12),),
    "66": (("66136", "Perpignan", "66000", 28),),
    "81": (("81004", "Albi", "81000", 14), ("81065", "Castres", "81100", 13)),
    "82": (("82121", "Montauban", "82000", 16),),
    "16": (("16015", "Angoulême", "16000", 14), ("16102", "Cognac", "16100", 8)),
    "17": (("17300", "La Rochelle", "17000", 20), ("17306", "Rochefort", "17300", 9),
           ("17415", "Saintes", "17100", 10)),
    "79": (("79191", "Niort", "79000", 16),),
    "86": (("86194", "Poitiers", "86000", 24), ("86066", "Châtellerault", "86100", 12)),
    "77": (("77288", "Melun", "77000", 12), ("77284", "Meaux", "77100", 16),
           ("77186", "Fontainebleau", "77300", 6)),
    "93": (("93066", "Saint-Denis", "93200", 30), ("93048", "Montreuil", "93100", 28),
           ("93008", "Bobigny", "93000", 16), ("93001", "Aubervilliers", "93300", 20)),
    "94": (("94028", "Créteil", "94000", 22), ("94081", "Vitry-sur-Seine", "94400", 24)),
    # Académie de Versailles: no built-in profile (a cloned form, connector.simulator.worlds).
    "78": (("78646", "Versailles", "78000", 16),), "91": (("91228", "Évry-Courcouronnes", "91000", 14),),
    "92": (("92050", "Nanterre", "92000", 20),), "95": (("95127", "Cergy", "95000", 14),),
}
# How many communes each département holds in the catalogue (towns included).
SIZES = {
    "09": 60, "11": 90, "12": 90, "30": 110, "31": 150, "32": 70, "34": 130, "46": 60, "48": 40,
    "65": 70, "66": 90, "81": 90, "82": 60, "16": 150, "17": 180, "79": 140, "86": 150,
    "77": 200, "93": 40, "94": 47, "78": 60, "91": 60, "92": 36, "95": 60,
}
URBAN = {"93", "94"}

_ROOTS = (
    "Aubais", "Baillargues", "Bessan", "Cabrerolles", "Candillargues", "Castelnau", "Cazouls",
    "Clapiers", "Combaillaux", "Cournonsec", "Fabrègues", "Florensac", "Gignac", "Grabels", "Jacou",
    "Lansargues", "Lavérune", "Marsillargues", "Montarnaud", "Murviel", "Pignan", "Poussan",
    "Prades", "Restinclières", "Saussan", "Teyran", "Vendargues", "Villeneuve", "Aubiac", "Baziège",
    "Caraman", "Escalquens", "Fenouillet", "Labège", "Lanta", "Montastruc", "Nailloux", "Pibrac",
    "Quint", "Revel", "Rouffiac", "Saverdun", "Verfeil", "Villefranche", "Aigrefeuille",
    "Buxerolles", "Chauvigny", "Civray", "Dissay", "Gençay", "Jaunay", "Lusignan", "Migné",
    "Naintré", "Quinçay", "Smarves", "Vouillé", "Ligugé", "Brie", "Chelles", "Coulommiers", "Lagny",
    "Mitry", "Nemours", "Ozoir", "Provins", "Torcy", "Bondy", "Gagny", "Livry", "Sevran", "Arcueil",
    "Cachan", "Fresnes", "Valenton", "Bénaménil", "Auzeville", "Lézignan", "Cessenon", "Thézan",
)
_SAINTS = (
    "Martin", "Jean", "Pierre", "Paul", "Étienne", "André", "Georges", "Laurent", "Hilaire",
    "Germain", "Maurice", "Julien", "Vincent", "Sauveur", "Christol", "Geniès", "Gély", "Clément",
    "Aunès", "Brès", "Drézéry", "Mathieu",
)
_RIVERS = (
    "Hérault", "Orb", "Lez", "Garonne", "Tarn", "Aude", "Lot", "Vienne", "Clain", "Charente",
    "Marne", "Seine", "Loing", "Aveyron", "Gers", "Ariège", "Têt", "Gardon", "Vidourle", "Sèvre",
)
_PATRONS = (
    "Jean Jaurès", "Jules Ferry", "Victor Hugo", "Marie Curie", "Jean Moulin", "Louis Pasteur",
    "Paul Bert", "Jacques Prévert", "Anatole France", "Condorcet", "Pablo Picasso", "Marcel Pagnol",
    "Simone Veil", "Lucie Aubrac", "Antoine de Saint-Exupéry", "Les Tilleuls", "Les Platanes",
    "du Centre", "Les Oliviers", "La Fontaine", "Les Lavandes", "du Parc", "Frédéric Mistral",
    "George Sand", "Albert Camus", "Henri Wallon", "Paul Langevin", "Louise Michel",
    "Romain Rolland", "Olympe de Gouges", "Les Coquelicots", "Joliot-Curie",
)
_KINDS = ("Ecole maternelle", "Ecole élémentaire", "Ecole primaire")

FIRST_NAMES = (  # (prénom, civilité)
    ("Jean", "M."), ("Marie", "Mme"), ("Philippe", "M."), ("Nathalie", "Mme"), ("Christophe", "M."),
    ("Isabelle", "Mme"), ("Laurent", "M."), ("Sylvie", "Mme"), ("Stéphane", "M."), ("Valérie", "Mme"),
    ("Frédéric", "M."), ("Sandrine", "Mme"), ("Olivier", "M."), ("Catherine", "Mme"), ("Pascal", "M."),
    ("Céline", "Mme"), ("Thierry", "M."), ("Sophie", "Mme"), ("Patrick", "M."), ("Véronique", "Mme"),
    ("Éric", "M."), ("Christine", "Mme"), ("Julien", "M."), ("Émilie", "Mme"), ("Nicolas", "M."),
    ("Aurélie", "Mme"), ("Sébastien", "M."), ("Hélène", "Mme"), ("François", "M."),
    ("Anne-Marie", "Mme"), ("Jean-Pierre", "M."), ("Marie-Christine", "Mme"), ("Jean-Luc", "M."),
    ("Agnès", "Mme"), ("Gérard", "M."), ("Brigitte", "Mme"), ("Alain", "M."), ("Chantal", "Mme"),
)
LAST_NAMES = (
    "GARCIA", "MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND",
    "LEROY", "MOREAU", "SIMON", "LAURENT", "LEFEBVRE", "MICHEL", "DAVID", "BERTRAND", "ROUX",
    "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRÉ", "MERCIER", "DUPONT", "LAMBERT", "BONNET",
    "FRANÇOIS", "MARTINEZ", "LOPEZ", "FABRE", "ROUSSEL", "BLANC", "GUÉRIN", "MULLER", "HENRY",
    "ROUSSEAU", "NICOLAS", "PERRIN", "MORIN", "VIDAL", "COSTE", "ESTÈVE", "PUJOL", "ROUQUETTE",
    "BARTHE", "SERRES", "CASTEL", "BOSC", "N'DIAYE", "DIALLO", "BENALI", "DA SILVA", "LE GALL",
)


class School(NamedTuple):
    uai: str  # as the académie's list shows it (a few carry a wrong check letter)
    name: str  # "Ecole élémentaire Jules Ferry"
    label: str  # the drop-down option: "Ecole primaire , BENAMENIL (0540232J)"


class Commune(NamedTuple):
    insee: str
    name: str
    postal_code: str
    departement: str
    siren: str
    siret: str  # the mairie's SIRET (Luhn-valid)
    schools: tuple[School, ...]


def ascii_upper(text: str) -> str:
    """``"Bénaménil"`` -> ``"BENAMENIL"``, as the education directory writes commune names."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()


@lru_cache(maxsize=4096)
def slug(text: str) -> str:
    """``"Saint-Jean-de-Védas"`` -> ``"saint-jean-de-vedas"`` (for e-mail domains)."""
    out = ascii_upper(text).lower()
    return "".join(c if c.isalnum() else "-" for c in out).strip("-")


def _commune_name(rng: random.Random) -> str:
    root, saint, river = rng.choice(_ROOTS), rng.choice(_SAINTS), rng.choice(_RIVERS)
    return rng.choice((
        root, root, f"Saint-{saint}", f"Saint-{saint}-de-{root}", f"{root}-sur-{river}",
        f"{root}-le-Vieux", f"{root}-la-Forêt", f"Le {root}", f"{root}-en-{river}",
    ))


def _school_count(rng: random.Random, departement: str) -> int:
    if departement in URBAN:
        return rng.randint(6, 22)
    return rng.choices((1, 2, 3, 4, 5, 6, 8), (50, 25, 12, 6, 4, 2, 1))[0]


def _schools(rng: random.Random, departement: str, name: str, count: int, serials: list[int]) -> tuple:
    upper = ascii_upper(name)
    if count == 1:
        names = [rng.choice(("Ecole primaire", "Ecole primaire", "Ecole primaire publique",
                             f"Ecole primaire {rng.choice(_PATRONS)}"))]
    else:
        patrons = rng.sample(_PATRONS, min(count, len(_PATRONS)))
        names = [f"{rng.choice(_KINDS)} {p}" for p in patrons]
        names += [f"Ecole primaire {i}" for i in range(2, count - len(names) + 2)]
    schools = []
    for school_name in names:
        serials[0] += rng.randint(1, 7)
        uai = ident.make_uai(departement, serials[0])
        if rng.random() < BAD_UAI_RATE:
            uai = ident.with_wrong_letter(uai, rng)
        schools.append(School(uai, school_name, f"{school_name} , {upper} ({uai})"))
    return tuple(schools)


@lru_cache(maxsize=None)
def communes(departement: str) -> tuple[Commune, ...]:
    """The catalogue of one département: its towns, then generated communes; same on every call."""
    rng = random.Random(f"referentiel-{departement}")
    serials = [rng.randint(10, 1500)]
    towns = TOWNS.get(departement, ())
    used_codes = {insee[2:] for insee, *_ in towns}
    used_names = {name for _, name, *_ in towns}
    rows = [(insee, name, postal, count) for insee, name, postal, count in towns]
    while len(rows) < SIZES[departement]:
        name = _commune_name(rng)
        code = f"{rng.randint(1, 999):03d}"
        if name in used_names or code in used_codes:
            continue
        used_names.add(name)
        used_codes.add(code)
        postal = f"{departement}{rng.randint(1, 99) * 10:03d}"
        rows.append((f"{departement}{code}", name, postal, _school_count(rng, departement)))
    out = []
    for insee, name, postal, count in rows:
        siren = ident.commune_siren(insee)
        siret = ident.siret_from(siren, rng.choice((1, 1, 1, 2, 3, 12, 25)))
        out.append(Commune(insee, name, postal, departement, siren, siret,
                           _schools(rng, departement, name, count, serials)))
    return tuple(out)


def school_options(departements: tuple[str, ...]) -> tuple[str, ...]:
    """Every school label of these départements, in catalogue order (a drop-down's options)."""
    return tuple(s.label for d in departements for c in communes(d) for s in c.schools)
