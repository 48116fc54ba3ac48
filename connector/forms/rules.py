"""The named rules: each has a stable code, a severity and a French message that points at the champ.

What the rules need of a démarche beyond its form's roles is in :class:`Settings`, resolved by
``settings_for`` and never borrowed from another académie's profile:
- the fee per school: the amount the form states (the cost drop-down's amounts, all multiples of one
  fee, or its only amount; a text such as « 45 € par école inscrite et par an » or « X*45 euros »),
  else ``fee_per_school`` of the config, else none and the cost rule (``cout_incoherent``) is off. A
  configured fee the form contradicts is reported (the form's fee is used: it is what the usager saw);
- the académie's départements: ``departements`` of the config, else the académies the démarche's service
  or organisme names (``connector.forms.academies``), else none and ``uai_hors_academie`` is off.

Per dossier (``check_dossier``): count, cost, UAIs, SIRET, duplicates, uploads, signature, commitments,
signatory, e-mails. Across the dossiers of a démarche (``check_cross``): one school claimed by two
collectivités, one collectivité with two live dossiers ("un seul formulaire par collectivité"). A rule
that raises on a dossier is logged (``forms.rule_failed``: rule, dossier) and the other rules go on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

import sqlite_utils

from connector.config import DemarcheConfig
from connector.forms.academies import academies_named, departements_of
from connector.forms.dossier import DossierForm, parse_euros
from connector.forms.identifiers import is_collectivite, siret_problem, uai_departement
from connector.forms.profiles import Resolution
from connector.logs import get_logger
from connector.roles import FEES_BY_YEAR
from connector.store import forms as store

log = get_logger(__name__)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str  # error | warning
    title: str  # for people (demo, README)


RULES: dict[str, Rule] = {r.code: r for r in (
    Rule("nombre_ecoles_incoherent", "error", "nombre d'écoles déclaré ≠ écoles sélectionnées"),
    Rule("cout_incoherent", "error", "coût ≠ nombre d'écoles × tarif"),
    Rule("uai_invalide", "error", "UAI invalide (format ou lettre de contrôle)"),
    Rule("uai_hors_academie", "warning", "UAI hors des départements de l'académie"),
    Rule("siret_invalide", "error", "SIRET invalide (clé de Luhn)"),
    Rule("siret_non_collectivite", "warning", "SIRET qui n'est pas celui d'une collectivité"),
    Rule("siret_incomplet", "warning", "informations SIRET incomplètes (API Entreprise)"),
    Rule("ecole_en_double", "error", "la même école deux fois dans le dossier"),
    Rule("aucune_ecole", "error", "aucune école sélectionnée"),
    Rule("piece_manquante", "error", "pièce justificative obligatoire manquante"),
    Rule("signature_absente", "error", "case de signature de la convention non cochée"),
    Rule("engagement_non_coche", "error", "engagement de la collectivité non coché"),
    Rule("signataire_mal_ecrit", "warning", "signataire non écrit « Prénom NOM »"),
    Rule("email_invalide", "warning", "adresse électronique mal formée"),
    Rule("valeur_illisible", "warning", "valeur d'un champ illisible"),
    Rule("ecole_revendiquee", "error", "école demandée par deux collectivités"),
    Rule("collectivite_en_double", "error", "plusieurs dossiers en cours pour la même collectivité"),
)}
CROSS_CODES = ("ecole_revendiquee", "collectivite_en_double")
DOSSIER_CODES = tuple(c for c in RULES if c not in CROSS_CODES)


@dataclass(frozen=True)
class Settings:
    """The fee per school (None: the cost rule is off) and the académie's départements (empty: the
    ``uai_hors_academie`` check is off), each with where it comes from; ``notes``: what check-config and
    the logs say about them (a rule off, a configured fee the form contradicts)."""

    fee: float | None = None
    departements: tuple[str, ...] = ()
    fee_source: str = ""
    departements_source: str = ""
    notes: tuple[str, ...] = ()


_NUMBER = r"\d{1,3}(?:[ \u202f\xa0]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_EUROS = r"(?:€|euros?\b)(?:\s*(?:ttc|ht|net)\b)?"
# « 45 € par école inscrite et par an », « 45 euros TTC / école », « 45 € pour chaque école »
_PER_SCHOOL = re.compile(rf"({_NUMBER})\s*{_EUROS}\s*(?:par|/|pour chaque|pour une|l'|l’)\s*(?:[ée]cole|etablissement|établissement)",
                         re.IGNORECASE)
# « X*45 euros », « nombre d'écoles × 45 € », « N x 45 € »
_TIMES = re.compile(rf"(?:\b[xn]\s*|\)\s*|[ée]coles?\s*)[*×x]\s*({_NUMBER})\s*{_EUROS}", re.IGNORECASE)


def _amount(text: str) -> float:
    return float(re.sub(r"[ \u202f\xa0]", "", text).replace(",", "."))


def fee_in_options(options: list[str] | None) -> float | None:
    """The fee a cost drop-down offers: its only amount, or the one all its amounts are multiples of
    (« 41 € », « 82 € » ... « 3 280 € »: 41). None when its options are not such amounts."""
    amounts = sorted({a for a in (parse_euros(o) for o in options or []) if a is not None and a > 0})
    if not amounts or len(amounts) < len([o for o in options or [] if (o or "").strip()]):
        return None
    fee = amounts[0]
    if all(abs(a / fee - round(a / fee)) < 1e-9 for a in amounts):
        return fee
    return None


def fees_in_text(text: str | None) -> set[float]:
    """The fees per school a text states (« 45 € par école », « X*45 euros »)."""
    if not text:
        return set()
    return {_amount(m.group(1)) for pattern in (_PER_SCHOOL, _TIMES) for m in pattern.finditer(text)}


def fee_stated(res: Resolution) -> tuple[float | None, str, list[str]]:
    """The fee the form states, where, and what it says otherwise (two fees in one form)."""
    cost = res.descriptor("cout")
    if cost is not None and (fee := fee_in_options(cost.options)) is not None:
        found, where = fee, f"the cost drop-down {_q(cost.label)}"
    else:
        found, where = None, ""
    stated: dict[float, str] = {}
    for d in res.descriptors:
        for text in (d.label, d.description):
            for amount in sorted(fees_in_text(text)):
                stated.setdefault(amount, f"the champ {_q(d.label)}")
    for amount in sorted(fees_in_text(res.description)):
        stated.setdefault(amount, "the démarche's description")
    others: list[str] = []
    if found is None and len(stated) == 1:
        (found, where), = stated.items()
    elif found is None and len(stated) > 1:
        others.append(f"démarche {res.demarche}: the form states several fees per school ("
                      + ", ".join(f"{euros(a)} in {w}" for a, w in sorted(stated.items()))
                      + "): set fee_per_school to say which one applies")
    elif found is not None and set(stated) - {found}:
        others.append(f"démarche {res.demarche}: {where} offers {euros(found)} per school but the form also says "
                      + ", ".join(f"{euros(a)} in {w}" for a, w in sorted(stated.items()) if a != found))
    return found, where, others


def settings_for(res: Resolution, demarche_config: DemarcheConfig | None) -> Settings:
    """The fee and départements of this démarche (see the module's docstring); the notes say which
    rule is off and why, and a configured fee the form contradicts."""
    if not res.recognised:
        return Settings()
    configured_fee = getattr(demarche_config, "fee_per_school", None)
    configured_depts = tuple(getattr(demarche_config, "departements", ()) or ())
    n = res.demarche
    notes: list[str] = []
    fee, fee_source = None, ""
    if res.mapping.get("cout"):
        stated, where, others = fee_stated(res)
        notes += others
        if stated is not None:
            fee, fee_source = stated, f"stated by the form ({where})"
            if configured_fee is not None and abs(configured_fee - stated) > 0.005:
                notes.append(f"démarche {n}: fee_per_school = {configured_fee:g} in the config, but the form "
                             f"states {euros(stated)} per school ({where}): the form's fee is used; correct "
                             "or remove fee_per_school")
        elif configured_fee is not None:
            fee, fee_source = float(configured_fee), "fee_per_school in the config"
        else:
            notes.append(f"démarche {n}: the cost rule (cout_incoherent) is off: the form states no fee per "
                         "school and the config sets none (fee_per_school = 41 for 2026-2027)")
    departements, depts_source = (), ""
    if configured_depts:
        departements, depts_source = configured_depts, "departements in the config"
    elif (named := academies_named(res.service)):
        departements = departements_of(named)
        depts_source = f"the démarche's service « {res.service} » (académie(s) of {', '.join(named)})"
    elif res.mapping.get("ecoles"):
        said = f"its service « {res.service} »" if res.service else "DS gives no service for it"
        notes.append(f"démarche {n}: the uai_hors_academie check is off: the config lists no départements "
                     f"and the démarche names no académie ({said}); set departements = [\"78\", \"91\", ...]")
    return Settings(fee, departements, fee_source, depts_source, tuple(notes))


def euros(amount: float) -> str:
    """``3280`` -> ``"3 280 €"``, ``41.5`` -> ``"41,50 €"``."""
    if float(amount).is_integer():
        return f"{int(amount):,} €".replace(",", "\u202f")
    return f"{amount:,.2f} €".replace(",", "\u202f").replace(".", ",")


def _q(label: str | None) -> str:
    """A champ label quoted for a message (long labels shortened)."""
    label = (label or "").strip().rstrip(" :")
    return f"« {label if len(label) <= 80 else label[:77] + '…'} »"


class _Found:
    def __init__(self, form: DossierForm):
        self.form = form
        self.items: list[dict] = []

    def add(self, code: str, champ: str | None, message: str, key: str = "") -> None:
        rule = RULES[code]
        self.items.append({"demarche_number": self.form.demarche, "dossier_number": self.form.number,
                           "code": code, "severity": rule.severity, "champ": champ, "key": key,
                           "message": message})


def _count(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    if form.nombre_ecoles is None or not form.champs.get("ecoles"):
        return
    listed = len(form.schools)
    if form.nombre_ecoles != listed:
        out.add("nombre_ecoles_incoherent", form.where("nombre_ecoles"),
                f"Le nombre d'écoles déclaré ({_q(form.where('nombre_ecoles'))} : {form.nombre_ecoles}) ne "
                f"correspond pas aux {listed} école(s) sélectionnée(s) dans {_q(form.where('ecoles'))}.")


def _cost(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    if form.cout is None or form.nombre_ecoles is None or s.fee is None:
        return
    count, cost, fee = form.nombre_ecoles, form.cout, s.fee
    expected = count * fee
    if abs(cost - expected) < 0.005:
        return
    listed = len(form.schools)
    other = {f: y for y, f in FEES_BY_YEAR.items() if abs(f - fee) > 0.005}
    if any(abs(cost - count * f) < 0.005 for f in other):
        f = next(f for f in other if abs(cost - count * f) < 0.005)
        why = (f"il applique le tarif d'une autre année ({euros(f)} par école, {other[f]}) au lieu de "
               f"{euros(fee)}")
    elif count > 1 and abs(cost - fee) < 0.005:
        why = "il correspond au coût d'une seule école"
    elif abs(cost / fee - round(cost / fee)) < 1e-6 and round(cost / fee) >= 1:
        k = round(cost / fee)
        why = f"il correspond à {k} école(s)" + (
            f", le nombre d'écoles sélectionnées" if k == listed and listed != count else "")
    else:
        why = "le montant ne correspond à aucun nombre d'écoles (faute de frappe ?)"
    out.add("cout_incoherent", form.where("cout"),
            f"Le coût déclaré ({_q(form.where('cout'))} : {euros(cost)}) ne correspond pas à {count} école(s) × "
            f"{euros(fee)} = {euros(expected)} : {why}.")


def _uais(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    departements = s.departements
    where = form.where("ecoles")
    for school in form.schools:
        name = f" ({school.nom})" if school.nom else ""
        key = f"{school.position}:{school.uai}"
        if not school.uai_valide:
            out.add("uai_invalide", where,
                    f"L'UAI « {school.uai_saisi or ''} »{name}, école n° {school.position + 1} de "
                    f"{_q(where)}, est invalide : {school.problem}.", key)
        elif departements and uai_departement(school.uai) not in departements:
            out.add("uai_hors_academie", where,
                    f"L'école « {school.uai} »{name} de {_q(where)} n'est pas dans un département de "
                    f"l'académie ({', '.join(departements)}).", key)


def _siret(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    where = form.where("siret", "SIRET du demandeur")
    if form.demandeur_type == "PersonneMoraleIncomplete" and form.siret_source == "demandeur":
        out.add("siret_incomplet", where,
                "Les informations du SIRET du demandeur sont incomplètes (API Entreprise indisponible lors du "
                "dépôt) : nom et adresse de la collectivité à vérifier.")
    if not form.siret:
        return
    problem = siret_problem(form.siret)
    if problem:
        out.add("siret_invalide", where, f"Le SIRET « {form.siret} » ({where}) est invalide : {problem}.")
    elif not is_collectivite(form.siret):
        out.add("siret_non_collectivite", where,
                f"Le SIRET « {form.siret} » ({where}) n'est pas celui d'une collectivité territoriale "
                "(son SIREN devrait commencer par 2).")


def _duplicates(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    seen: dict[str, int] = {}
    for school in form.schools:
        if not school.uai:
            continue
        if school.uai in seen:
            if seen[school.uai] == 1:
                out.add("ecole_en_double", form.where("ecoles"),
                        f"L'école « {school.uai} »{f' ({school.nom})' if school.nom else ''} figure plusieurs "
                        f"fois dans {_q(form.where('ecoles'))}.", school.uai)
            seen[school.uai] += 1
        else:
            seen[school.uai] = 1


def _no_school(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    if form.champs.get("ecoles") and not form.schools:
        out.add("aucune_ecole", form.where("ecoles"), f"Aucune école n'est sélectionnée dans {_q(form.where('ecoles'))}.")


def _uploads(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    present = {c["descriptor_id"]: c for c in form.champs.get("pieces") or []}
    for d in res.mapping.get("pieces") or []:
        if not d.required:
            continue
        champ = present.get(d.id)
        if champ is None or not champ["value"]:
            out.add("piece_manquante", d.label,
                    f"La pièce justificative obligatoire {_q(d.label)} est absente (aucun fichier, ou un fichier "
                    "écarté par l'antivirus).", d.id)


def _checked(form: DossierForm, role: str) -> list[tuple[dict, bool]]:
    return [(c, bool(c["value"]) and c["value"] not in ("0", "false")) for c in form.champs.get(role) or []]


def _signature(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    if not res.mapping.get("signature"):
        return
    rows = _checked(form, "signature")
    if not rows or not any(ok for _, ok in rows):
        label = rows[0][0]["label"] if rows else res.mapping["signature"][0].label
        out.add("signature_absente", label,
                f"La case de signature dématérialisée de la convention ({_q(label)}) n'est pas cochée.")


def _engagements(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    ticked = {c["descriptor_id"]: ok for c, ok in _checked(form, "engagements")}
    for d in res.mapping.get("engagements") or []:
        if d.required and d.id in ticked and not ticked[d.id]:
            out.add("engagement_non_coche", d.label, f"L'engagement {_q(d.label)} n'est pas coché.", d.id)


_PRENOM = r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+(?:[-' ][A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+)*"
_NOM = r"[A-ZÀ-ÖØ-Þ][A-ZÀ-ÖØ-Þ' -]*[A-ZÀ-ÖØ-Þ]"
PRENOM_NOM = re.compile(rf"^{_PRENOM}\s+(?:(?:de|du|des|d'|le|la)\s+)?{_NOM}$")


def _signatory(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    if res.mapping.get("signataire_prenom"):
        return  # first and last names in two champs: nothing to say about the writing
    text = form.text("signataire_nom")
    if text and not PRENOM_NOM.match(" ".join(text.split())):
        out.add("signataire_mal_ecrit", form.where("signataire_nom"),
                f"Le signataire « {text} » ({_q(form.where('signataire_nom'))}) n'est pas écrit « Prénom NOM » "
                "(le nom en lettres majuscules).")


EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$")


def _emails(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    for role in ("referent1_email", "referent2_email", "email"):
        text = form.text(role)
        if text and not EMAIL.match(text):
            out.add("email_invalide", form.where(role),
                    f"L'adresse électronique « {text} » ({_q(form.where(role))}) est mal formée.", role)


def _unreadable(form: DossierForm, res: Resolution, s: Settings, out: _Found) -> None:
    for role in ("nombre_ecoles", "cout"):
        typed = getattr(form, f"{role}_saisi")
        if typed is not None and typed.strip() and getattr(form, role) is None:
            out.add("valeur_illisible", form.where(role),
                    f"La valeur « {typed} » de {_q(form.where(role))} n'est pas un nombre.", role)


CHECKS: tuple[tuple[str, Callable[[DossierForm, Resolution, Settings, _Found], None]], ...] = (
    ("nombre_ecoles_incoherent", _count), ("cout_incoherent", _cost), ("uai", _uais), ("siret", _siret),
    ("ecole_en_double", _duplicates), ("aucune_ecole", _no_school), ("piece_manquante", _uploads),
    ("signature_absente", _signature), ("engagement_non_coche", _engagements),
    ("signataire_mal_ecrit", _signatory), ("email_invalide", _emails), ("valeur_illisible", _unreadable),
)


def check_dossier(form: DossierForm, resolution: Resolution, settings: Settings) -> list[dict]:
    """The per-dossier anomalies of one form (rows for ``store.forms.sync_anomalies``); none when the
    démarche's form is no ENT-École form (profile ``none``)."""
    out = _Found(form)
    if not resolution.recognised:
        return out.items
    for name, check in CHECKS:
        try:
            check(form, resolution, settings, out)
        except Exception as exc:  # one rule broken on one dossier: logged, the others go on
            log.error("forms.rule_failed", rule=name, dossier=form.number, demarche=form.demarche,
                      error=f"{type(exc).__name__}: {exc}")
    return out.items


OTHERS_LISTED = 5  # dossier numbers an anomaly message names before "et N autres"


def _others(numbers: Iterable[int], total: int) -> str:
    """The other dossiers as an instructeur reads them: the first few of ``numbers``, then how many
    more (``total`` in all). A school claimed by 40 dossiers would otherwise make 40 messages of 40
    numbers."""
    shown = list(islice(numbers, OTHERS_LISTED))
    rest = total - len(shown)
    text = ", ".join(map(str, shown))
    return f"{text} et {rest} autre{'s' if rest > 1 else ''}" if rest > 0 else text


def cross_facts(db: sqlite_utils.Database, demarche: int) -> tuple[list[tuple], list[tuple]]:
    """What the cross-dossier rules read: the schools claimed by two or more collectivités and the
    SIRETs with two or more live dossiers (``store.shared_schools``, ``store.shared_sirets``)."""
    return store.shared_schools(db, demarche), store.shared_sirets(db, demarche)


def check_cross(resolution: Resolution, facts: tuple[list[tuple], list[tuple]]) -> list[dict]:
    """The cross-dossier anomalies of the démarche, from its ``cross_facts`` (none for profile ``none``)."""
    demarche = resolution.demarche
    if not resolution.recognised:
        return []
    schools, sirets = facts
    items: list[dict] = []
    by_uai: dict[str, list[tuple[int, str]]] = {}
    for uai, number, siret in schools:
        by_uai.setdefault(uai, []).append((number, siret))
    for uai, holders in by_uai.items():
        holders.sort()
        per_siret: dict[str, int] = {}
        for _, siret in holders:
            per_siret[siret] = per_siret.get(siret, 0) + 1
        for number, siret in holders:  # each dossier holds a school once: linear in the holders
            others = _others((n for n, s in holders if s != siret), len(holders) - per_siret[siret])
            items.append({"demarche_number": demarche, "dossier_number": number, "code": "ecole_revendiquee",
                          "severity": RULES["ecole_revendiquee"].severity, "champ": resolution.label("ecoles"),
                          "key": uai,
                          "message": f"L'école « {uai} » est aussi demandée par une autre collectivité "
                                     f"(dossier(s) {others})."})
    by_siret: dict[str, list[int]] = {}
    for siret, number in sirets:
        by_siret.setdefault(siret, []).append(number)
    for siret, numbers in by_siret.items():
        for number in numbers:
            others = _others((n for n in numbers if n != number), len(numbers) - 1)
            items.append({"demarche_number": demarche, "dossier_number": number, "code": "collectivite_en_double",
                          "severity": RULES["collectivite_en_double"].severity,
                          "champ": resolution.label("siret") or "SIRET du demandeur", "key": siret,
                          "message": f"Un seul formulaire par collectivité : le SIRET « {siret} » a aussi le(s) "
                                     f"dossier(s) en cours {others}."})
    return items
