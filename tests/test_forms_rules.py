"""The per-dossier rules (``rules.check_dossier``), one table row per case, no server and no database.

Each row starts from one clean Occitanie form (two valid schools of Haute-Garonne, 2 × 41 € declared,
a commune's SIRET, the signatory written "Prénom NOM", every commitment ticked), changes one thing,
and lists every anomaly code the rules must raise, no more and no fewer, with the words its message
must hold. The seeded-world tests (test_forms_seeded.py) find the same rules end to end.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from connector.forms.dossier import DossierForm
from connector.forms.profiles import Descriptor, Resolution
from connector.forms.rules import RULES, Settings, check_dossier
from connector.forms.schools import make_school

DEMARCHE, NUMBER = 4242, 1001
UAI_A, UAI_B = "0311234Y", "0311235Z"  # Haute-Garonne, valid check letters
UAI_OTHER = "0540232J"  # Meurthe-et-Moselle: another académie
SIRET = "21310555400017"  # a commune (SIREN 2…), Luhn-valid
COMPANY_SIRET = "44306184100047"  # Luhn-valid, SIREN 4…: not a collectivité

SIGNATURE = Descriptor("sig", False, None, "CheckboxChampDescriptor", "J'approuve et je signe la convention",
                       required=True)
ENGAGE = Descriptor("eng1", False, None, "CheckboxChampDescriptor", "Je m'engage à transmettre la convention",
                    required=True)
ENGAGE_OPTIONAL = Descriptor("eng2", False, None, "CheckboxChampDescriptor", "J'atteste avoir informé les écoles")
PIECE = Descriptor("pj1", False, None, "PieceJustificativeChampDescriptor", "Bon de commande signé", required=True)
PIECE_OPTIONAL = Descriptor("pj2", False, None, "PieceJustificativeChampDescriptor", "Annexe")
PRENOM = Descriptor("prenom", False, None, "TextChampDescriptor", "Prénom du signataire")


def champ(descriptor_id: str, label: str, value: Any, string_value: str | None = None) -> dict[str, Any]:
    return {"descriptor_id": descriptor_id, "label": label, "value": value, "string_value": string_value}


def school(position: int, typed: str, nom: str | None = "École") -> Any:
    return make_school(position, typed, nom, "Toulouse", "option", "ecoles")


def form(**changes: Any) -> DossierForm:
    """The clean form, with ``changes`` (attributes of DossierForm; ``champs`` entries replace roles,
    None removes one)."""
    champs = {
        "ecoles": [champ("ecoles", "Écoles concernées", 2)],
        "nombre_ecoles": [champ("nb", "Nombre d'écoles", 2)],
        "cout": [champ("cout", "Coût annuel (€ TTC)", 82.0)],
        "siret": [champ("siret", "SIRET de la collectivité", SIRET)],
        "signataire_nom": [champ("sign", "Signataire (Prénom NOM)", None, "Jean DUPONT")],
        "email": [champ("mail", "Adresse électronique", None, "mairie@colomiers.fr")],
        "engagements": [champ("eng1", ENGAGE.label, 1, "Oui"), champ("eng2", ENGAGE_OPTIONAL.label, 1, "Oui")],
    }
    for role, rows in changes.pop("champs", {}).items():
        if rows is None:
            champs.pop(role, None)
        else:
            champs[role] = rows
    base = DossierForm(NUMBER, DEMARCHE, "en_construction", "occitanie", SIRET, "champ", "Mairie",
                       "PersonneMorale", 2, "2", 82.0, "82", [school(0, UAI_A), school(1, UAI_B)], champs)
    return replace(base, **changes)


def resolution(**mapping: list[Descriptor]) -> Resolution:
    base = {"engagements": [ENGAGE, ENGAGE_OPTIONAL]}
    return Resolution(DEMARCHE, "occitanie", True, {**base, **mapping})


def with_role(role: str, text: str) -> dict[str, Any]:
    return {"champs": {role: [champ(role, role, None, text)]}}


OCC = resolution()
# What the clean form's démarche resolves to (forms/rules.settings_for): the 41 € its cost drop-down
# states, the départements of the académies its service names (Montpellier and Toulouse). A row that
# needs the cost rule or the académie check off, or another fee, says so with its own Settings.
OCCITANIE = Settings(fee=41.0, departements=("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81",
                                             "82"), fee_source="the form", departements_source="the service")

# id, form, resolution, settings, expected {code: [words its message holds]} (a code twice: listed twice)
RULE_CASES = [
    pytest.param(form(), OCC, OCCITANIE, [], id="a clean form: no anomaly"),
    # count and cost
    pytest.param(form(nombre_ecoles=3, cout=123.0), OCC, OCCITANIE, [
        ("nombre_ecoles_incoherent", ["(« Nombre d'écoles » : 3)", "aux 2 école(s) sélectionnée(s)"])],
        id="3 schools declared, 2 selected: the count"),
    pytest.param(form(nombre_ecoles=None, nombre_ecoles_saisi=None, cout=None, cout_saisi=None), OCC, OCCITANIE, [],
                 id="no count declared: nothing to compare"),
    pytest.param(form(cout=90.0), OCC, OCCITANIE, [
        ("cout_incoherent", ["90 €", "2 école(s) × 41 € = 82 €", "tarif d'une autre année (45 € par école, 2022-2025)"])],
        id="cost at another year's fee: says which year"),
    pytest.param(form(cout=41.0), OCC, OCCITANIE, [("cout_incoherent", ["coût d'une seule école"])],
                 id="cost of one school for two: says so"),
    pytest.param(form(nombre_ecoles=3, cout=82.0), OCC, OCCITANIE, [
        ("nombre_ecoles_incoherent", []),
        ("cout_incoherent", ["il correspond à 2 école(s), le nombre d'écoles sélectionnées"])],
        id="cost of the 2 selected schools, 3 declared: both, the cost names the selection"),
    pytest.param(form(nombre_ecoles=2, cout=164.0), OCC, OCCITANIE, [("cout_incoherent", ["il correspond à 4 école(s)."])],
                 id="cost of 4 schools for 2 declared and selected"),
    pytest.param(form(cout=83.0), OCC, OCCITANIE, [("cout_incoherent", ["faute de frappe"])],
                 id="cost matching no number of schools: a typo"),
    pytest.param(form(cout=82.004), OCC, OCCITANIE, [], id="cost within half a cent: equal"),
    pytest.param(form(cout=90.0), OCC, Settings(fee=45.0), [], id="the configured fee (45 €) is the one applied"),
    pytest.param(form(nombre_ecoles=None, nombre_ecoles_saisi="deux", cout=None, cout_saisi="n/a"), OCC, OCCITANIE, [
        ("valeur_illisible", ["« deux »", "n'est pas un nombre"]), ("valeur_illisible", ["« n/a »"])],
        id="count and cost typed as words: unreadable, each once"),
    pytest.param(form(nombre_ecoles=None, nombre_ecoles_saisi="  ", cout=None, cout_saisi=""), OCC, OCCITANIE, [],
                 id="count and cost left blank: nothing said"),
    # schools
    pytest.param(form(schools=[school(0, UAI_A), school(1, "0311235A")]), OCC, OCCITANIE, [
        ("uai_invalide", ["« 0311235A »", "école n° 2", "lettre de contrôle erronée (attendue : Z)"])],
        id="a wrong UAI check letter: which school and the right letter"),
    pytest.param(form(schools=[school(0, UAI_A), school(1, "2A00123X")]), OCC, OCCITANIE, [
        ("uai_invalide", ["ne suit pas le format"])], id="a Corsican-looking UAI: bad format, no crash"),
    pytest.param(form(schools=[school(0, UAI_A), school(1, " 0311235z ")]), OCC, OCCITANIE, [],
                 id="a UAI typed in lower case with spaces is normalised, valid"),
    pytest.param(form(schools=[school(0, UAI_A), school(1, UAI_OTHER)]), OCC, OCCITANIE, [
        ("uai_hors_academie", ["« 0540232J »", "09, 11, 12"])], id="a school of another académie: a warning"),
    pytest.param(form(), OCC, Settings(departements=("54",)), [("uai_hors_academie", []), ("uai_hors_academie", [])],
                 id="configured départements replace the profile's"),
    pytest.param(form(nombre_ecoles=3, cout=123.0, schools=[school(0, UAI_A), school(1, UAI_B), school(2, UAI_A)]),
                 OCC, OCCITANIE, [("ecole_en_double", ["« 0311234Y »", "plusieurs fois"])],
                 id="the same school twice: one anomaly"),
    pytest.param(form(nombre_ecoles=4, cout=164.0, schools=[school(i, UAI_A) for i in range(4)]), OCC, OCCITANIE,
                 [("ecole_en_double", [])], id="the same school four times: still one anomaly"),
    pytest.param(form(nombre_ecoles=None, nombre_ecoles_saisi=None, cout=None, cout_saisi=None, schools=[]), OCC, OCCITANIE, [
        ("aucune_ecole", ["Aucune école", "« Écoles concernées »"])], id="the schools champ empty: no school"),
    pytest.param(form(schools=[], champs={"ecoles": None}), OCC, OCCITANIE, [],
                 id="no schools champ at all (another form): no school rule"),
    # SIRET
    pytest.param(form(siret="21310555400018"), OCC, OCCITANIE, [("siret_invalide", ["clé de contrôle (Luhn)"])],
                 id="a SIRET failing Luhn"),
    pytest.param(form(siret="2131055540001"), OCC, OCCITANIE, [("siret_invalide", ["14 chiffres"])],
                 id="a SIRET of 13 digits"),
    pytest.param(form(siret=COMPANY_SIRET), OCC, OCCITANIE, [("siret_non_collectivite", ["commencer par 2"])],
                 id="a company's SIRET: not a collectivité"),
    pytest.param(form(siret=None), OCC, OCCITANIE, [], id="no SIRET: nothing to check"),
    pytest.param(form(demandeur_type="PersonneMoraleIncomplete", siret_source="demandeur"), OCC, OCCITANIE, [
        ("siret_incomplet", ["API Entreprise"])], id="the demandeur's SIRET info incomplete: to verify"),
    pytest.param(form(demandeur_type="PersonneMoraleIncomplete", siret_source="champ"), OCC, OCCITANIE, [],
                 id="incomplete demandeur but the SIRET comes from a champ: nothing"),
    # uploads, signature, commitments
    pytest.param(form(), resolution(pieces=[PIECE, PIECE_OPTIONAL]), Settings(), [
        ("piece_manquante", ["« Bon de commande signé »"])], id="a mandatory upload missing (the optional one not said)"),
    pytest.param(form(champs={"pieces": [champ("pj1", PIECE.label, 0)]}), resolution(pieces=[PIECE]), Settings(), [
        ("piece_manquante", [])], id="a mandatory upload with no file (the antivirus removed it)"),
    pytest.param(form(champs={"pieces": [champ("pj1", PIECE.label, 1)]}), resolution(pieces=[PIECE]), Settings(), [],
                 id="the mandatory upload there"),
    pytest.param(form(champs={"signature": [champ("sig", SIGNATURE.label, 0, "Non")]}),
                 resolution(signature=[SIGNATURE]), Settings(), [("signature_absente", ["n'est pas cochée"])],
                 id="the signature box unticked"),
    pytest.param(form(champs={"signature": [champ("sig", SIGNATURE.label, "false")]}),
                 resolution(signature=[SIGNATURE]), Settings(), [("signature_absente", [])],
                 id="the signature box holding 'false'"),
    pytest.param(form(), resolution(signature=[SIGNATURE]), Settings(), [("signature_absente", ["« J'approuve"])],
                 id="the signature champ absent from the dossier: named by the form's label"),
    pytest.param(form(champs={"signature": [champ("sig", SIGNATURE.label, 1, "Oui")]}),
                 resolution(signature=[SIGNATURE]), Settings(), [], id="the signature box ticked"),
    pytest.param(form(champs={"engagements": [champ("eng1", ENGAGE.label, 0), champ("eng2", ENGAGE_OPTIONAL.label, 0)]}),
                 OCC, OCCITANIE, [("engagement_non_coche", ["« Je m'engage à transmettre la convention »"])],
                 id="a mandatory commitment unticked (the optional one not said)"),
    # signatory and e-mails
    pytest.param(form(**with_role("signataire_nom", "jean dupont")), OCC, OCCITANIE, [
        ("signataire_mal_ecrit", ["« jean dupont »"])], id="signatory in lower case"),
    pytest.param(form(**with_role("signataire_nom", "DUPONT Jean")), OCC, OCCITANIE, [
        ("signataire_mal_ecrit", [])], id="signatory NOM Prénom"),
    pytest.param(form(**with_role("signataire_nom", "Marie-Claire de LA FONTAINE")), OCC, OCCITANIE, [],
                 id="a composed first name and a particle: well written"),
    pytest.param(form(**with_role("signataire_nom", "Jean   DUPONT ")), OCC, OCCITANIE, [],
                 id="extra spaces are not a writing fault"),
    pytest.param(form(**with_role("signataire_nom", "jean dupont")), resolution(signataire_prenom=[PRENOM]),
                 Settings(), [], id="first and last names in two champs: the writing is not checked"),
    pytest.param(form(**with_role("email", "mairie@colomiers")), OCC, OCCITANIE, [
        ("email_invalide", ["« mairie@colomiers »"])], id="an e-mail without a domain suffix"),
    pytest.param(form(champs={"referent2_email": [champ("r2", "Courriel du second référent", None, "a b@x.fr")]}),
                 OCC, OCCITANIE, [("email_invalide", ["« a b@x.fr »"])], id="a référent's e-mail with a space"),
    # one rule broken on one dossier: the others go on
    pytest.param(form(cout=83.0, **with_role("email", "nope")), OCC, Settings(fee=0.0), [("email_invalide", [])],
                 id="a rule that raises (fee 0) is skipped, the others still run"),
]


@pytest.mark.parametrize("the_form, res, settings, expected", RULE_CASES)
def test_check_dossier(the_form, res, settings, expected):
    items = check_dossier(the_form, res, settings)
    assert sorted(i["code"] for i in items) == sorted(code for code, _ in expected), [i["message"] for i in items]
    for code, words in expected:
        messages = [i["message"] for i in items if i["code"] == code]
        assert any(all(w in m for w in words) for m in messages), (code, words, messages)
    for i in items:
        assert (i["demarche_number"], i["dossier_number"], i["severity"]) == (DEMARCHE, NUMBER,
                                                                              RULES[i["code"]].severity)
