"""Profiles and roles: the three built-in forms map, a cloned form with reworded labels maps once one
role is named by label in the config, a revision that drops a mapped champ is reported and the dossiers
filed under the old revision keep their meaning; bad input gives named problems, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import pytest
import structlog

from connector.commands.hooks import sync_hooks
from connector.config import load_config
from connector.forms import rules
from connector.forms.checking import check_demarches
from connector.forms.dossier import dossier_form, parse_count, parse_euros
from connector.forms.identifiers import normalize_uai, siret_problem, uai_problem
from connector.forms.profiles import PROFILES, resolve, resolve_descriptors
from connector.forms.schools import parse_school_text
from connector.simulator import anomalies as A
from connector.simulator.clones import CLONE, CLONE_SIGNATURE_LABEL, add_clone
from connector.simulator.demarches import CRETEIL, OCCITANIE, POITIERS
from connector.simulator.seed import seed_world
from connector.store import open_db
from connector.store.forms import champ_descriptors
from syncenv import read_db, simulator_config, sync, write_config

EXPECTED_ROLES = {
    OCCITANIE: {"departement", "signataire_nom", "signataire_qualite", "signataire_qualite_autre", "telephone",
                "ecoles", "nombre_ecoles", "cout", "referent1_nom", "referent1_email", "referent2_nom",
                "referent2_email", "engagements", "convention_recue", "date_reception", "statut", "relance"},
    POITIERS: {"signataire_nom", "signataire_qualite", "signataire_qualite_autre", "ecoles", "ecole_commune",
               "ecole_choix", "referent1_nom", "referent1_email", "signature", "aaf_envoye", "aaf_date"},
    CRETEIL: {"departement", "commune", "signataire_nom", "signataire_prenom", "signataire_qualite", "email",
              "telephone", "ecoles", "ecole_uai", "pieces", "commentaires", "aaf_envoye", "aaf_date"},
}


# --- identifiers and shapes (pure) -------------------------------------------------------------------


def test_uai_and_siret_checks():
    assert uai_problem("0540232J") is None  # seed 001's BENAMENIL
    assert "attendue : J" in uai_problem("0540232K")
    assert "format" in uai_problem("2A00123X") and "format" in uai_problem("054023")
    assert normalize_uai(" 0540232j ") == "0540232J"
    assert siret_problem("21310555400017") is None  # Toulouse's mairie
    assert "Luhn" in siret_problem("21310555400018")
    assert "14 chiffres" in siret_problem("2131055540001")
    assert siret_problem("35600000049837") is None  # La Poste: digit sum a multiple of 5, not Luhn
    assert "La Poste" in siret_problem("35600000049838")


@pytest.mark.parametrize("text, expected", [
    ("Ecole primaire , BENAMENIL (0540232J)", ("0540232J", "Ecole primaire", "BENAMENIL")),
    ("École élémentaire Jules Ferry - 0311234A", ("0311234A", "École élémentaire Jules Ferry", None)),
    ("Ecole maternelle Jean Jaurès, Toulouse (0311235B)", ("0311235B", "Ecole maternelle Jean Jaurès", "Toulouse")),
    (" 0771399c ", (" 0771399c", None, None)),
    ("0311234A École du Centre", ("0311234A", "École du Centre", None)),
    ("Ecole du bourg", (None, "Ecole du bourg", None)),
])
def test_school_texts_of_every_shape(text, expected):
    typed, nom, commune = parse_school_text(text)
    assert (typed.strip() if typed else None, nom, commune) == (
        expected[0].strip() if expected[0] else None, expected[1], expected[2])


def test_counts_and_amounts_as_forms_write_them():
    assert parse_count("12") == 12 and parse_count("12 écoles") == 12 and parse_count("douze") is None
    assert parse_euros("3 280 €") == 3280 and parse_euros("3\u202f280,50 €") == 3280.5
    assert parse_euros("492") == 492 and parse_euros("n/a") is None


# --- the forms of the seeded world ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_mirror(tmp_path_factory):
    """The seeded world plus the cloned Poitiers form, mirrored with the forms hooks."""
    from conftest import SimulatorHandle

    world = seed_world(seed=2026, dossiers=300)
    add_clone(world)
    handle = SimulatorHandle(world, 0)
    directory = tmp_path_factory.mktemp("profiles")
    config = simulator_config(directory, handle)
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    yield handle, config, directory
    handle.stop()


def test_the_three_builtin_forms_are_detected_and_mapped(world_mirror):
    _, config, _ = world_mirror
    db = open_db(config.database.path)
    try:
        for number, profile in ((OCCITANIE, "occitanie"), (POITIERS, "poitiers"), (CRETEIL, "creteil")):
            r = resolve(db, number)
            assert (r.profile, r.detected, r.problems) == (profile, True, []), r.problems
            assert set(r.mapping) == EXPECTED_ROLES[number]
            assert len(r.champs("pieces")) == (3 if number == CRETEIL else 0)
            assert r.convention_deadline == (number == OCCITANIE)
        occ = resolve(db, OCCITANIE)
        # Two champs read "Saisir le prénom et le NOM": the section tells the signatory from the référent.
        assert occ.label("signataire_nom") == occ.label("referent1_nom")
        assert occ.champ("signataire_nom") != occ.champ("referent1_nom")
        assert len(occ.champs("engagements")) == 2 and occ.champ("engagements") is None
    finally:
        db.close()


def test_a_cloned_form_reports_the_role_it_cannot_map_then_maps_with_a_label_override(world_mirror, tmp_path):
    handle, config, _ = world_mirror
    db = open_db(config.database.path)
    try:
        r = resolve(db, CLONE)
        assert r.profile == "poitiers" and r.detected
        assert set(r.mapping) == EXPECTED_ROLES[POITIERS] - {"signature"}
        [problem] = r.problems
        assert "role signature matches no champ" in problem and CLONE_SIGNATURE_LABEL in problem
        # The same dossiers as Poitiers', so the same planted facts: without the signature box, the
        # unticked ones go unnoticed...
        found = {n for (n,) in db.conn.execute(
            "SELECT dossier_number FROM anomalies WHERE code = 'signature_absente' AND demarche_number = ?", [CLONE])}
        assert found == set()
    finally:
        db.close()
    # ...until the config names the champ by its label.
    path = write_config(tmp_path, handle.url, handle.token, [CLONE])
    with open(path, "a", encoding="utf-8") as f:
        f.write(f'profile = "poitiers"\n[demarches.roles]\nsignature = "{CLONE_SIGNATURE_LABEL}"\n')
    overridden = load_config(path)
    assert sync(overridden, hooks=sync_hooks(overridden)).exit_code == 0
    db = open_db(overridden.database.path)
    try:
        r = resolve(db, CLONE, overridden.demarches[0])
        assert r.problems == [] and r.label("signature") == CLONE_SIGNATURE_LABEL and not r.detected
        found = {n for (n,) in db.conn.execute(
            "SELECT dossier_number FROM anomalies WHERE code = 'signature_absente' AND resolved_at IS NULL")}
    finally:
        db.close()
    planted = {d.number for d in handle.world.dossiers.values()
               if d.demarche_number == CLONE and A.SIGNATURE_UNCHECKED in d.anomalies}
    mirrored = {r["number"] for r in _rows(overridden, "SELECT number FROM dossiers")}
    assert found == planted & mirrored and found


def test_overrides_that_match_nothing_or_several_are_problems_with_candidates(world_mirror):
    _, config, _ = world_mirror
    db = open_db(config.database.path)
    try:
        rows = champ_descriptors(db, OCCITANIE)
    finally:
        db.close()

    class Cfg:
        profile = "occitanie"
        roles = (("cout", "Coût annuel de la collectivité"), ("signataire_nom",
                                                              "Saisir le prénom et le NOM : (ex : Jean GARCIA)"))

    r = resolve_descriptors(OCCITANIE, rows, None, Cfg())
    assert r.champ("cout") is None and r.champ("signataire_nom") is None
    [cout, nom] = sorted(r.problems)
    assert "cout = 'Coût annuel de la collectivité' is no champ label" in cout
    assert "did you mean «Coût annuel pour la collectivité»" in cout
    assert "matches 2 champs" in nom and "use the descriptor id" in nom

    class ById:
        profile = "auto"
        roles = (("cout", "Q2hhbXAtNDIxMDAxMw=="),)

    assert resolve_descriptors(OCCITANIE, rows, None, ById()).label("cout") == "Coût annuel pour la collectivité"
    no_school = [r for r in rows if "écoles pour les communes" not in (r["label"] or "")]
    r = resolve_descriptors(OCCITANIE, no_school, None, Cfg())
    assert any("role ecoles matches no champ" in p for p in r.problems)


def _rows(config, sql, *params):
    with closing(read_db(config)) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_revision_that_drops_a_mapped_champ_is_reported_and_old_dossiers_keep_their_meaning(
        make_simulator, tmp_path):
    world = seed_world(seed=2026, dossiers=120)
    handle = make_simulator(world=world)
    config = simulator_config(tmp_path, handle, demarches=[OCCITANIE])
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    before = {r["dossier_number"]: r["nombre_ecoles"] for r in _rows(config, "SELECT * FROM dossier_forms")}
    mismatched = {r["dossier_number"] for r in _rows(
        config, "SELECT dossier_number FROM anomalies WHERE code = 'nombre_ecoles_incoherent'")}
    assert mismatched and all(v is not None for v in before.values())

    # DS publishes a new revision without "Nombre d'écoles inscrites"; existing dossiers keep theirs.
    handle.control("revision", demarche=OCCITANIE, drop=[4210012])
    with structlog.testing.capture_logs() as logs:
        assert sync(config, full=True, hooks=sync_hooks(config)).exit_code == 0
        check_db = open_db(config.database.path)
        try:
            check_demarches(check_db, config, [OCCITANIE], full=True)
            form = dossier_form(check_db, next(iter(mismatched)))
        finally:
            check_db.close()
    dropped = [e for e in logs if e["event"] == "forms.role_dropped"]
    assert [e["role"] for e in dropped] == ["nombre_ecoles"] and dropped[0]["label"].startswith("Nombre d'écoles")
    assert form.nombre_ecoles == before[form.number]
    after = {r["dossier_number"]: r["nombre_ecoles"] for r in _rows(config, "SELECT * FROM dossier_forms")}
    assert after == before
    still = {r["dossier_number"] for r in _rows(
        config, "SELECT dossier_number FROM anomalies WHERE code = 'nombre_ecoles_incoherent' AND resolved_at IS NULL")}
    assert still == mismatched


# --- bad input ------------------------------------------------------------------------------------------


def test_unexpected_values_and_missing_champs_are_named_problems_never_a_traceback(make_simulator, tmp_path):
    world = seed_world(seed=2026, dossiers=120)
    handle = make_simulator(world=world)
    config = simulator_config(tmp_path, handle, demarches=[OCCITANIE])
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    numbers = [r["number"] for r in _rows(config, "SELECT number FROM dossiers ORDER BY number LIMIT 3")]
    handle.control("champ", number=numbers[0], stable_id=4210012, value="douze")  # not a number
    handle.control("champ", number=numbers[1], stable_id=4210013, value=None)  # cost left empty
    with structlog.testing.capture_logs() as logs:
        assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    assert any(e["event"] == "forms.value_unexpected" and "douze" in e["problem"] for e in logs)
    codes = defaultdict(set)
    for r in _rows(config, "SELECT dossier_number, code FROM anomalies WHERE resolved_at IS NULL"):
        codes[r["dossier_number"]].add(r["code"])
    assert "valeur_illisible" in codes[numbers[0]]
    assert "cout_incoherent" not in codes[numbers[1]]

    # A form with no school champ at all (here: its champs and descriptor removed from the mirror),
    # configured as Occitanie's (detection would call it profile none: no schools, no ENT-École form).
    with closing(read_db(config)) as conn, conn:
        conn.execute("DELETE FROM champs WHERE descriptor_id = 'Q2hhbXAtNDIxMDAwOQ=='")
        conn.execute("DELETE FROM champ_descriptors WHERE id = 'Q2hhbXAtNDIxMDAwOQ=='")
    with open(config.path, "a", encoding="utf-8") as f:
        f.write('profile = "occitanie"\n')
    result = subprocess.run([sys.executable, "-m", "connector.cli", "check", "--full", "--config",
                             str(config.path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "role ecoles matches no champ" in result.stdout
    assert "forms.value_unexpected" in result.stderr and "no school champ" in result.stderr
    assert not _rows(config, "SELECT * FROM ecoles")


def test_a_rule_that_raises_is_logged_with_rule_and_dossier_and_the_others_go_on(make_simulator, tmp_path,
                                                                                  monkeypatch):
    handle = make_simulator(world=seed_world(seed=2026, dossiers=60))
    config = simulator_config(tmp_path, handle, demarches=[OCCITANIE])

    def broken(form, res, s, out):
        raise KeyError("boom")

    monkeypatch.setattr(rules, "CHECKS", tuple((name, broken if name == "cout_incoherent" else check)
                                               for name, check in rules.CHECKS))
    with structlog.testing.capture_logs() as logs:
        assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    failures = [e for e in logs if e["event"] == "forms.rule_failed"]
    assert failures and all(e["rule"] == "cout_incoherent" and e["dossier"] for e in failures)
    assert not [e for e in logs if e["event"] == "sync.hook_failed"]
    codes = {r["code"] for r in _rows(config, "SELECT code FROM anomalies")}
    assert "cout_incoherent" not in codes and "nombre_ecoles_incoherent" in codes
    assert len(_rows(config, "SELECT * FROM dossier_forms")) == len(_rows(config, "SELECT * FROM dossiers"))


def test_config_of_the_forms_lists_every_problem_at_once(tmp_path):
    from connector.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text('[[demarches]]\nnumber = 1\nprofile = "nancy"\nfee_per_school = "41"\n'
                    'departements = "16"\n[demarches.roles]\ncuot = "Coût"\nsignature = ""\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = "\n".join(err.value.problems)
    for needle in ("'nancy' is not one of auto, occitanie, poitiers, creteil", "fee_per_school: expected an amount",
                   "departements: expected an array", "roles.cuot: unknown role (did you mean 'cout'?)",
                   "roles.signature: expected a champ label"):
        assert needle in text
    assert set(PROFILES) == {"occitanie", "poitiers", "creteil"}
