"""Forms only where there are forms: a profile is recognised by its identifying roles, else the démarche's
profile is none (mirrored, no anomaly, no convention, no action); the fee per school and the départements
come from the config or the démarche itself, never from another académie's profile; check-config says
which rule is off and grades the role problems (an error exits 78, a warning 0).

The decisions are table-driven on descriptor rows written here (DS champ types, everyday labels); the
worlds (``connector.simulator.worlds``) are synced over HTTP into a real SQLite file with a newcomer's
config: démarche numbers only."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from connector.cli import cli
from connector.commands.hooks import sync_hooks
from connector.config import load_config
from connector.errors import EX_CONFIG
from connector.forms.academies import academies_named, departements_of
from connector.forms.identifiers import siret_problem
from connector.forms.profiles import PROFILES, Resolution, resolve_descriptors, rule_of
from connector.forms.rules import fee_in_options, fees_in_text, settings_for
from connector.simulator import worlds
from connector.simulator.demarches import OCCITANIE, POITIERS
from connector.simulator.seed import seed_world
from syncenv import read_db, sync, write_config


# --- detection on descriptor rows (pure) ------------------------------------------------------------------


def _rows(*champs: tuple, private: tuple = ()) -> list[dict]:
    """Descriptor rows as the mirror stores them: (type, label[, options[, children]])."""
    rows: list[dict] = []
    for is_private, items in ((0, champs), (1, private)):
        for position, item in enumerate(items):
            type_, label, options, children = (*item, None, None)[:4]
            rid = f"d{is_private}-{position}"
            rows.append({"id": rid, "private": is_private, "parent_id": None, "position": position,
                         "type": f"{type_}ChampDescriptor", "label": label, "description": None, "required": 1,
                         "options": options})
            for child_position, (ctype, clabel, *copts) in enumerate(children or ()):
                rows.append({"id": f"{rid}-{child_position}", "private": is_private, "parent_id": rid,
                             "position": child_position, "type": f"{ctype}ChampDescriptor", "label": clabel,
                             "description": None, "required": 1, "options": copts[0] if copts else None})
    return rows


SCHOOLS = ["Ecole primaire Jules Ferry , SAINT-LYS (0311234A)", "Ecole maternelle , MURET (0312345B)"]
NOT_ENT_FORMS = {
    "subsidy request": _rows(
        ("HeaderSection", "Identification de l'association"), ("Siret", "Numéro SIRET de l'association"),
        ("Text", "Nom de l'association"), ("Text", "Nom et prénom du représentant légal"),
        ("DropDownList", "Qualité du représentant", ["Président", "Trésorier"]), ("Email", "Adresse électronique"),
        ("Phone", "Téléphone"), ("Commune", "Commune du siège"), ("IntegerNumber", "Nombre de bénéficiaires"),
        ("DecimalNumber", "Montant de la subvention demandée (€)"), ("PieceJustificative", "Budget prévisionnel"),
        ("Checkbox", "J'atteste sur l'honneur l'exactitude des informations"),
        private=(("Date", "Date de réception du dossier complet"), ("Checkbox", "Convention reçue"))),
    "environmental permit": _rows(
        ("Siret", "SIRET de l'exploitant"), ("Text", "Raison sociale"), ("Text", "Nom du signataire"),
        ("Text", "Qualité du signataire"), ("Departement", "Département"), ("Commune", "Commune d'implantation"),
        ("Carte", "Emprise du site"), ("PieceJustificative", "Plan de situation"),
        ("PieceJustificative", "Étude d'impact"), ("Checkbox", "Je certifie l'exactitude des renseignements")),
    "social-services complaint": _rows(
        ("Civilite", "Civilité"), ("Text", "Nom"), ("Text", "Prénom"), ("Date", "Date de naissance"),
        ("Email", "Courriel"), ("DropDownList", "Objet de la réclamation", ["Prestation", "Accueil"]),
        ("Textarea", "Exposé des faits"), ("PieceJustificative", "Pièces justificatives")),
    "school canteen registration (schools without UAIs)": _rows(
        ("Text", "Nom et prénom de l'enfant"),
        ("DropDownList", "École fréquentée", ["École maternelle Les Tilleuls", "École élémentaire Jean Moulin"]),
        ("Repetition", "Jours de présence", None, (("DropDownList", "Jour", ["Lundi"]), ("Checkbox", "Repas"))),
        ("IntegerNumber", "Nombre d'enfants du foyer inscrits"), ("DecimalNumber", "Montant de la participation"),
        ("Checkbox", "Je m'engage à régler les factures")),
    "a list of establishments with no school column": _rows(
        ("Repetition", "Liste des établissements concernés", None, (("Text", "Raison sociale"),)),
        ("DropDownList", "Nombre d'établissements", ["1", "2"]), ("DecimalNumber", "Montant total"),
        ("Checkbox", "Je m'engage à transmettre les pièces")),
    "schools but nothing else of the process": _rows(
        ("MultipleDropDownList", "Écoles concernées", SCHOOLS), ("Text", "Commentaire")),
    "no descriptor": [],
}


@pytest.mark.parametrize("name", NOT_ENT_FORMS)
def test_a_form_that_is_no_ent_ecole_form_gets_profile_none_with_the_best_candidate(name):
    r = resolve_descriptors(9, NOT_ENT_FORMS[name], "Une démarche", None)
    assert (r.profile, r.detected, r.recognised) == ("none", True, False)
    assert r.mapping == {} and r.problems == [] and not r.convention_deadline
    assert r.note and "no ENT-École profile recognised" in r.note
    if NOT_ENT_FORMS[name]:
        assert "best candidate" in r.note and "lacks" in r.note and "ecoles" in r.note


ENT_FORMS = {
    "occitanie": _rows(
        ("Departement", "Département"), ("Text", "Saisir le prénom et le NOM"), ("Phone", "Téléphone"),
        ("DropDownList", "En qualité de", ["MAIRE", "Autre"]),
        ("MultipleDropDownList", "Sélection des écoles pour les communes :", SCHOOLS),
        ("DropDownList", "Nombre d'écoles inscrites", ["1", "2"]),
        ("DropDownList", "Coût annuel pour la collectivité", ["41 €", "82 €"]),
        ("Checkbox", "La collectivité s'engage à transmettre la convention signée")),
    "poitiers": _rows(
        ("Text", "Saisir le prénom et le NOM : (ex : Jean GARCIA)"), ("DropDownList", "En qualité de", ["MAIRE"]),
        ("Repetition", "Les écoles du périmètre de la collectivité :", None,
         (("Commune", "Commune dans laquelle se trouve l'école"),
          ("DropDownList", "Choix de l'école concernée", SCHOOLS))),
        ("Checkbox", "J'approuve le projet de convention ... J'accepte, reconnais et signe")),
    "creteil": _rows(
        ("DropDownList", "Département", ["77 - Seine-et-Marne"]), ("Commune", "Commune"), ("Text", "Nom"),
        ("Text", "Prénom"), ("Email", "Adresse électronique"), ("Phone", "Numéro de téléphone"),
        ("Repetition", "3.1. Liste des écoles concernées", None, (("Text", "UAI de l'école abonné"),)),
        ("PieceJustificative", "Bon de commande")),
}


@pytest.mark.parametrize("profile", ENT_FORMS)
def test_each_builtin_form_is_recognised_by_its_identifying_roles(profile):
    r = resolve_descriptors(9, ENT_FORMS[profile], None, None)
    assert (r.profile, r.detected, r.note) == (profile, True, None)
    assert rule_of(PROFILES[profile]).startswith("ecoles and 2 of ")


def test_profile_none_configured_reads_nothing_even_on_an_ent_ecole_form():
    class Cfg:
        profile = "none"
        roles = ()

    r = resolve_descriptors(9, ENT_FORMS["occitanie"], None, Cfg())
    assert (r.profile, r.detected, r.mapping, r.note) == ("none", False, {}, None)


def test_role_problems_are_graded_errors_for_expected_roles_and_warnings_for_optional_ones():
    class Cfg:
        profile = "occitanie"
        roles = (("aaf_date", "Date de livraison"), ("cout", "Coût de l'adhésion"))

    r = resolve_descriptors(9, ENT_FORMS["occitanie"], None, Cfg())
    [error], [warning] = r.problems, r.warnings  # cout: Occitanie cannot work without it; aaf_date: optional
    assert "[demarches.roles] cout = " in error and "is no champ label" in error
    assert "[demarches.roles] aaf_date = " in warning and "is no champ label" in warning


# --- fee and départements (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize("options, fee", [
    (["41 €", "82 €", "123 €", "3 280 €"], 41), (["45 €"], 45), (["45 € par école"], 45),
    (["100 €", "150 €"], None), (["Gratuit", "45 €"], None), ([], None), (None, None),
])
def test_the_fee_a_cost_drop_down_offers(options, fee):
    assert fee_in_options(options) == fee


@pytest.mark.parametrize("text, fees", [
    ("Le coût est de 45 € par école inscrite et par an.", {45}),
    ("Coût = X*45 euros", {45}), ("nombre d'écoles × 41,50 € TTC", {41.5}),
    ("soit 50 euros TTC / école", {50}), ("1 000 € pour la commune", set()), ("", set()), (None, set()),
])
def test_the_fees_a_text_states(text, fees):
    assert fees_in_text(text) == fees


@pytest.mark.parametrize("service, academies", [
    ("Délégation régionale académique au numérique éducatif | Rectorat de l'académie de Versailles", ("Versailles",)),
    ("Direction de région académique du numérique pour l'éducation (DRANE Occitanie) | Région académique Occitanie",
     ("Montpellier", "Toulouse")),
    ("Région académique Île-de-France - DRANE, site de Créteil | Rectorat de l'académie de Créteil", ("Créteil",)),
    ("Rectorat de l'académie d'Aix-Marseille", ("Aix-Marseille",)), ("Service enfance | Mairie de Colomiers", ()),
    ("", ()),
])
def test_the_academies_a_service_names(service, academies):
    assert academies_named(service) == academies


def _occitanie_resolution(cost_options: list[str], service: str = "", explanation: str | None = None) -> Resolution:
    rows = _rows(*[r for r in ENT_FORMS_ITEMS if r[1] != "Coût annuel pour la collectivité"],
                 ("DropDownList", "Coût annuel pour la collectivité", cost_options))
    if explanation:
        rows.append({"id": "expl", "private": 0, "parent_id": None, "position": 99, "type": "ExplicationChampDescriptor",
                     "label": "Coût", "description": explanation, "required": 0, "options": None})
    return resolve_descriptors(9, rows, "Adhésion", None, service)


ENT_FORMS_ITEMS = (
    ("Departement", "Département"), ("Text", "Saisir le prénom et le NOM"), ("Phone", "Téléphone"),
    ("DropDownList", "En qualité de", ["MAIRE"]), ("MultipleDropDownList", "Sélection des écoles", SCHOOLS),
    ("DropDownList", "Nombre d'écoles inscrites", ["1", "2"]),
    ("Checkbox", "La collectivité s'engage à transmettre la convention signée"))


class _Config:
    profile = "auto"
    roles = ()

    def __init__(self, fee=None, departements=()):
        self.fee_per_school, self.departements = fee, departements


@pytest.mark.parametrize("options, explanation, config_fee, fee, note", [
    (["45 €", "90 €"], None, None, 45, None),  # the form's
    (["45 €", "90 €"], None, 41, 45, "fee_per_school = 41 in the config, but the form states 45 €"),
    (["Oui", "Non"], "45 € par école inscrite et par an", None, 45, None),
    (["Oui", "Non"], None, 41, 41, None),  # the config's
    (["Oui", "Non"], None, None, None, "the cost rule (cout_incoherent) is off"),
    (["Oui", "Non"], "45 € par école ou X*41 euros", None, None, "the form states several fees"),
])
def test_the_fee_comes_from_the_form_else_the_config_else_the_cost_rule_is_off(options, explanation, config_fee,
                                                                                fee, note):
    s = settings_for(_occitanie_resolution(options, "Rectorat de l'académie de Toulouse", explanation), _Config(config_fee))
    assert s.fee == fee
    assert (note is None and not s.notes) or any(note in n for n in s.notes), s.notes


@pytest.mark.parametrize("service, configured, departements, off", [
    ("Rectorat de l'académie de Versailles", (), ("78", "91", "92", "95"), False),
    ("Rectorat de l'académie de Versailles", ("78",), ("78",), False),
    ("", (), (), True), ("Mairie de Colomiers", (), (), True),
])
def test_departements_come_from_the_config_else_the_demarche_else_the_check_is_off(service, configured,
                                                                                   departements, off):
    s = settings_for(_occitanie_resolution(["41 €"], service), _Config(departements=configured))
    assert s.departements == departements
    assert any("uai_hors_academie check is off" in n for n in s.notes) == off
    assert departements_of(("Versailles",)) == ("78", "91", "92", "95")


# --- the worlds, synced over HTTP with a newcomer's config ----------------------------------------------------


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """The seeded world (60 dossiers) plus the ordinary forms, Versailles' clone and the 45 € campaign,
    synced with a config that lists the démarche numbers and nothing else."""
    from conftest import SimulatorHandle

    world = seed_world(seed=2026, dossiers=60)
    for add in worlds.EXTRAS.values():
        add(world)
    handle = SimulatorHandle(world, 0)
    directory = tmp_path_factory.mktemp("newcomer")
    config = load_config(write_config(directory, handle.url, handle.token, sorted(world.demarches),
                                      attachments="none"))
    with structlog.testing.capture_logs() as logs:
        assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    handle.logs = logs
    yield handle, config, directory
    handle.stop()


def _query(config, sql, *params):
    with closing(read_db(config)) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def test_ordinary_forms_are_mirrored_with_profile_none_no_anomaly_no_convention_no_action(newcomer):
    handle, config, directory = newcomer
    ordinary = worlds.ORDINARY
    marks = ",".join("?" * len(ordinary))
    mirrored = dict(_query(config, f"SELECT demarche_number, count(*) FROM dossiers WHERE demarche_number IN ({marks}) "
                                   "GROUP BY 1", *ordinary))
    assert mirrored == {n: 12 for n in ordinary}
    assert dict(_query(config, f"SELECT demarche_number, profile FROM form_profiles WHERE demarche_number IN ({marks})",
                       *ordinary)) == {n: "none" for n in ordinary}
    for table in ("anomalies", "conventions", "dossier_forms", "ecoles"):
        assert _query(config, f"SELECT count(*) FROM {table} WHERE demarche_number IN ({marks})", *ordinary) == [(0,)]
    # The log says why, once per démarche.
    said = [e for e in handle.logs if e["event"] == "forms.profile_none"]
    assert sorted(e["demarche"] for e in said) == sorted(ordinary)
    assert all("no ENT-École profile recognised" in e["note"] for e in said)
    assert any("best candidate" in e["note"] and "lacks ecoles" in e["note"] for e in said)
    # The traps were there: SIRETs from Tahiti that fail the Luhn key, a farm's name as the signatory.
    values = [c.value for d in handle.world.dossiers.values() if d.demarche_number in ordinary for c in d.champs]
    assert any(isinstance(v, dict) and v.get("siret") and siret_problem(v["siret"]) for v in values)
    assert "GAEC des Trois Chênes" in values
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    plan = subprocess.run([sys.executable, "-m", "connector", "actions", "plan", "--config", str(config.path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert f"démarche {OCCITANIE} (occitanie)" in plan.stdout
    assert not any(f"démarche {n}" in plan.stdout for n in ordinary), plan.stdout


def test_versailles_clone_and_45_euro_campaign_give_no_anomaly_to_correct_dossiers(newcomer):
    _, config, _ = newcomer
    profiles = dict(_query(config, "SELECT demarche_number, profile FROM form_profiles"))
    assert profiles[worlds.VERSAILLES] == "poitiers" and profiles[worlds.CAMPAIGN_2024] == "occitanie"
    for number in (worlds.VERSAILLES, worlds.CAMPAIGN_2024):
        assert _query(config, "SELECT count(*) FROM dossiers WHERE demarche_number = ?", number) == [(150,)]
        assert _query(config, "SELECT code, count(*) FROM anomalies WHERE demarche_number = ? GROUP BY code",
                      number) == []
    # The schools are there and were checked: the Versailles ones against Versailles' départements.
    depts = {d for (d,) in _query(config, "SELECT DISTINCT substr(uai, 2, 2) FROM ecoles WHERE demarche_number = ?",
                                  worlds.VERSAILLES)}
    assert depts == {"78", "91", "92", "95"}
    costs = _query(config, "SELECT count(*) FROM dossier_forms WHERE demarche_number = ? AND cout = nombre_ecoles * 45",
                   worlds.CAMPAIGN_2024)
    assert costs == [(150,)]
    # The built-in démarches still get their planted anomalies.
    assert _query(config, "SELECT count(*) FROM anomalies WHERE demarche_number IN (?, ?)", OCCITANIE, POITIERS)[0][0]


def test_check_config_says_where_fee_and_departements_come_from_and_what_is_off(newcomer):
    handle, config, directory = newcomer
    result = CliRunner().invoke(cli, ["check-config", "--config", str(config.path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{worlds.SUBVENTION}  no ENT-École profile recognised (profile none, detected)" in out
    assert f"démarche {worlds.SUBVENTION}: no ENT-École profile recognised; best candidate" in out
    assert "fee: 45 € per school, stated by the form (the cost drop-down « Coût annuel pour la collectivité »)" in out
    assert "départements: 78, 91, 92, 95, from the démarche's service" in out


def test_check_config_reports_a_contradicted_fee_as_a_warning_and_a_missing_expected_role_as_an_error(newcomer,
                                                                                                     tmp_path):
    handle, config, directory = newcomer
    db = directory / "ds-connector.sqlite"
    path = write_config(tmp_path, handle.url, handle.token, [worlds.CAMPAIGN_2024, worlds.ICPE])
    text = path.read_text(encoding="utf-8").replace('path = "ds-connector.sqlite"', f'path = "{db}"')
    text = text.replace(f"number = {worlds.CAMPAIGN_2024}\n", f"number = {worlds.CAMPAIGN_2024}\nfee_per_school = 41\n"
                        '[demarches.roles]\naaf_date = "Date de livraison des annuaires"\n')
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "fee_per_school = 41 in the config, but the form states 45 € per school" in result.output
    assert "aaf_date = 'Date de livraison des annuaires' is no champ label" in result.output

    # The permit forced into Occitanie's profile: the roles it cannot work without are errors (exit 78).
    path.write_text(text.replace(f"number = {worlds.ICPE}\n", f'number = {worlds.ICPE}\nprofile = "occitanie"\n'),
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["check-config", "--config", str(path)])
    assert result.exit_code == EX_CONFIG, result.output
    assert f"démarche {worlds.ICPE}: role ecoles matches no champ" in result.output
    assert "Traceback" not in result.output


def _check(path: Path) -> subprocess.CompletedProcess:
    """``ds-connector check --full`` in its own process (it configures logging for itself)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    return subprocess.run([sys.executable, "-m", "connector", "check", "--full", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_a_demarche_that_lost_its_profile_loses_its_anomalies(newcomer, tmp_path):
    """``profile = "none"`` configured on a built-in démarche: its anomalies are resolved, its form
    summaries removed, nothing is planned for it."""
    handle, config, directory = newcomer
    path = Path(config.path)
    text = path.read_text(encoding="utf-8").replace(f"number = {OCCITANIE}\n", f'number = {OCCITANIE}\nprofile = "none"\n')
    copy = tmp_path / "config.toml"
    copy.write_text(text.replace('path = "ds-connector.sqlite"', f'path = "{directory / "ds-connector.sqlite"}"')
                    .replace('token_file = "ds-api-token"', f'token_file = "{directory / "ds-api-token"}"'),
                    encoding="utf-8")
    before = _query(config, "SELECT count(*) FROM anomalies WHERE demarche_number = ? AND resolved_at IS NULL",
                    OCCITANIE)[0][0]
    assert before
    result = _check(copy)
    assert result.returncode == 0, result.stderr
    assert f"démarche {OCCITANIE}: profile none (configured)" in result.stdout
    assert _query(config, "SELECT count(*) FROM anomalies WHERE demarche_number = ? AND resolved_at IS NULL",
                  OCCITANIE) == [(0,)]
    assert _query(config, "SELECT count(*) FROM dossier_forms WHERE demarche_number = ?", OCCITANIE) == [(0,)]
    # Back to detection: Occitanie's form is recognised again and its anomalies reopen.
    assert _check(Path(config.path)).returncode == 0
    assert _query(config, "SELECT count(*) FROM anomalies WHERE demarche_number = ? AND resolved_at IS NULL",
                  OCCITANIE) == [(before,)]


def test_simulate_offers_every_added_world():
    option = next(p for p in cli.commands["simulate"].params if p.name == "extras")
    assert set(option.type.choices) == set(worlds.EXTRAS)


def test_configured_departements_win_over_the_service_and_the_check_fires_outside_them(newcomer, tmp_path):
    handle, config, directory = newcomer
    text = Path(config.path).read_text(encoding="utf-8")
    copy = tmp_path / "config.toml"
    copy.write_text(text.replace(f"number = {worlds.VERSAILLES}\n", f'number = {worlds.VERSAILLES}\ndepartements = ["78"]\n')
                    .replace('path = "ds-connector.sqlite"', f'path = "{directory / "ds-connector.sqlite"}"')
                    .replace('token_file = "ds-api-token"', f'token_file = "{directory / "ds-api-token"}"'),
                    encoding="utf-8")
    assert _check(copy).returncode == 0
    flagged = {n for (n,) in _query(config, "SELECT DISTINCT dossier_number FROM anomalies WHERE demarche_number = ? "
                                            "AND code = 'uai_hors_academie' AND resolved_at IS NULL", worlds.VERSAILLES)}
    outside = {n for (n,) in _query(config, "SELECT DISTINCT dossier_number FROM ecoles WHERE demarche_number = ? "
                                            "AND substr(uai, 2, 2) <> '78'", worlds.VERSAILLES)}
    assert flagged == outside and 0 < len(flagged) < 150
    assert _check(Path(config.path)).returncode == 0  # back to the service's départements: none flagged
    assert _query(config, "SELECT count(*) FROM anomalies WHERE demarche_number = ? AND resolved_at IS NULL",
                  worlds.VERSAILLES) == [(0,)]
