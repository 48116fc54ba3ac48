"""The forms layer against the simulator's seeded world: every planted anomaly found, none invented, per
rule; the schools and the exports checked against the world's own records (read back with the csv module).

The truth comes from the simulator (``/_sim/planted``: the facts each dossier was seeded with) and from
its records directly (``handle.world``), never from the connector's code.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import sys
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import pytest

from conftest import SimulatorHandle
from connector.commands.hooks import sync_hooks
from connector.forms import exports
from connector.forms.rules import RULES
from connector.simulator import anomalies as A
from connector.simulator import ident
from connector.simulator.crossings import school_uais
from connector.simulator.demarches import CRETEIL, OCCITANIE, POITIERS
from connector.simulator.seed import seed_world
from connector.simulator.state import PARIS
from connector.store import open_db
from syncenv import read_db, simulator_config, sync

# Planted fact -> the rule that must find it.
PLANTED_RULE = {
    A.COUNT_MISMATCH: "nombre_ecoles_incoherent", A.COST_MISMATCH: "cout_incoherent", A.BAD_UAI: "uai_invalide",
    A.BAD_SIRET: "siret_invalide", A.DEMANDEUR_INCOMPLETE: "siret_incomplet", A.MISSING_UPLOAD: "piece_manquante",
    A.SIGNATURE_UNCHECKED: "signature_absente", A.DUPLICATE_SCHOOL: "ecole_en_double",
    A.SIGNATORY_FORMAT: "signataire_mal_ecrit", A.SIRET_TWICE: "collectivite_en_double",
    A.SCHOOL_TWICE: "ecole_revendiquee",
}


class Mirror:
    def __init__(self, handle: SimulatorHandle, config, directory: Path):
        self.handle, self.world, self.config, self.directory = handle, handle.world, config, directory

    def rows(self, sql: str, *params) -> list[sqlite3.Row]:
        with closing(read_db(self.config)) as conn:
            return conn.execute(sql, params).fetchall()


def _mirror(tmp: Path, dossiers: int) -> tuple[Mirror, SimulatorHandle]:
    handle = SimulatorHandle(seed_world(seed=2026, dossiers=dossiers), 0)
    config = simulator_config(tmp, handle)
    report = sync(config, hooks=sync_hooks(config))
    assert report.exit_code == 0
    return Mirror(handle, config, tmp), handle


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Mirror:
    m, handle = _mirror(tmp_path_factory.mktemp("forms300"), 300)
    yield m
    handle.stop()


def per_rule(m: Mirror) -> dict[str, tuple[int, int, int, list, list]]:
    """rule -> (planted, found among planted, false positives, missed numbers, invented numbers)."""
    mirrored = {r["number"] for r in m.rows("SELECT number FROM dossiers")}
    planted_by_number = m.handle.control("planted")["dossiers"]
    found: dict[str, set[int]] = defaultdict(set)
    for r in m.rows("SELECT dossier_number, code FROM anomalies WHERE resolved_at IS NULL"):
        found[r["code"]].add(r["dossier_number"])
    table = {}
    for code in RULES:
        facts = [f for f, c in PLANTED_RULE.items() if c == code]
        planted = {int(n) for n, names in planted_by_number.items() if set(facts) & set(names)} & mirrored
        got = found.get(code, set())
        table[code] = (len(planted), len(got & planted), len(got - planted), sorted(planted - got),
                       sorted(got - planted))
    return table


def _print_table(table: dict) -> None:
    print("\nrule                        planted  found  false positives", file=sys.stderr)
    for code, (planted, hit, false, _, _) in table.items():
        print(f"{code:28} {planted:7d} {hit:6d} {false:6d}", file=sys.stderr)


def test_every_planted_anomaly_is_found_and_none_is_invented(mirror):
    table = per_rule(mirror)
    _print_table(table)
    for code, (planted, hit, false, missed, invented) in table.items():
        assert not missed, f"{code}: planted but not found in dossiers {missed[:10]}"
        assert not invented, f"{code}: found but not planted in dossiers {invented[:10]}"
    # The seeded world really exercises the rules (at the documented rates, 300 dossiers).
    for code in ("nombre_ecoles_incoherent", "cout_incoherent", "uai_invalide", "siret_invalide",
                 "piece_manquante", "signature_absente", "ecole_en_double", "collectivite_en_double",
                 "ecole_revendiquee"):
        assert table[code][0] > 0, code


def test_a_bigger_world_too(tmp_path):
    m, handle = _mirror(tmp_path, 2000)
    try:
        table = per_rule(m)
        _print_table(table)
        assert all(not missed and not invented for _, _, _, missed, invented in table.values()), {
            c: (t[3][:5], t[4][:5]) for c, t in table.items() if t[3] or t[4]}
        assert sum(t[0] for t in table.values()) > 500
    finally:
        handle.stop()


def test_schools_of_every_shape_match_the_world(mirror):
    """ecoles holds, per dossier and in order, the schools the world's dossier lists; typed UAIs are kept
    as typed and normalised (Créteil's lower-case letters and trailing spaces are valid once normalised)."""
    stored = defaultdict(list)
    for r in mirror.rows("SELECT dossier_number, uai_saisi, uai, uai_valide, nom, commune FROM ecoles "
                         "ORDER BY dossier_number, position"):
        stored[r["dossier_number"]].append(r)
    numbers = {r["number"] for r in mirror.rows("SELECT number FROM dossiers")}
    for number in numbers:
        d = mirror.world.dossiers[number]
        assert [r["uai"] for r in stored[number]] == school_uais(d), number
        assert all(r["uai_valide"] == ident.uai_is_valid(r["uai"]) for r in stored[number])
        if d.demarche_number in (OCCITANIE, POITIERS):
            assert all(r["nom"] and r["commune"] for r in stored[number]), number
    noisy = mirror.rows("SELECT uai_saisi, uai, uai_valide FROM ecoles WHERE uai_saisi != uai")
    assert noisy and any(r["uai_valide"] for r in noisy)
    assert all(re.sub(r"\s", "", r["uai_saisi"]).upper() == r["uai"] for r in noisy)


def _read_csv(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM first"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


def _write(mirror: Mirror, kind: str, fmt: str = "csv", demarches=None, style=exports.CsvStyle()) -> Path:
    db = open_db(mirror.config.database.path)
    try:
        rows = exports.rows_of(db, mirror.config, kind, demarches)
    finally:
        db.close()
    path = mirror.directory / f"{kind}.{fmt}"
    path.write_text(exports.render(kind, rows, fmt, style), encoding="utf-8", newline="")
    return path


def _convention_obtained(world, number: int) -> bool:
    names = world.dossiers[number].anomalies
    return A.CONVENTION_ON_TIME in names or A.CONVENTION_LATE in names


def test_openings_need_the_convention_where_the_process_does(mirror):
    """An Occitanie dossier opens exactly when the deadlines layer's ``conventions`` says its convention
    was obtained; Poitiers and Créteil open on acceptance."""
    w = mirror.world

    def expected(occitanie_ok) -> set[tuple[str, int]]:
        out = set()
        for r in mirror.rows("SELECT number FROM dossiers WHERE state = 'accepte' AND pending_deletion = 0"):
            d = w.dossiers[r["number"]]
            if d.demarche_number == OCCITANIE and not occitanie_ok(d.number):
                continue
            out |= {(u, d.number) for u in school_uais(d) if ident.uai_is_valid(u)}
        return out

    # The deadlines layer keeps ``conventions`` current during the sync (its statuses are checked
    # against the planted truth in test_followup_*): an Occitanie dossier opens exactly when it says the
    # convention was obtained, on time or late.
    obtained = {r["dossier_number"] for r in mirror.rows(
        "SELECT dossier_number FROM conventions WHERE status IN ('received_on_time', 'received_late')")}
    assert obtained and obtained <= {n for n in w.dossiers if _convention_obtained(w, n)}
    rows = _read_csv(_write(mirror, "ouvertures"))
    assert {(r["uai"], int(r["dossier"])) for r in rows} == expected(lambda n: n in obtained)
    assert OCCITANIE in {int(r["demarche"]) for r in rows}
    one = next(r for r in rows if int(r["demarche"]) == OCCITANIE)
    d = w.dossiers[int(one["dossier"])]
    assert one["siret"] == d.demandeur["siret"]
    assert one["date"] == d.processed_at.astimezone(PARIS).date().isoformat()

    # Billing: one line per collectivité, its schools × 41 €, and the titre de perception's object.
    billing = _read_csv(_write(mirror, "facturation", demarches=[OCCITANIE]))
    by_siret = defaultdict(set)
    for r in rows:
        if int(r["demarche"]) == OCCITANIE:
            by_siret[r["siret"]].add(r["uai"])
    assert {r["siret"]: int(r["nombre_ecoles"]) for r in billing} == {s: len(u) for s, u in by_siret.items()}
    for r in billing:
        n = int(r["nombre_ecoles"])
        assert r["tarif"] == "41,00" and r["montant"] == f"{n * 41},00"
        assert r["objet"] == (f"2026/2027 - Contribution des collectivités territoriales au coût de l'ENT-École "
                              f"selon la convention de partenariat, inscription de {n} école{'s' if n > 1 else ''} "
                              f"soit {n} × 41 € = {f'{n * 41:,}'.replace(',', ' ')} €")
    dotted = _write(mirror, "facturation", demarches=[OCCITANIE], style=exports.CsvStyle(",", "."))
    first = next(csv.DictReader(io.StringIO(dotted.read_text(encoding="utf-8-sig")), delimiter=","))
    assert first["tarif"] == "41.00"


def test_closings_are_the_dossiers_closed_after_acceptance(mirror):
    rows = _read_csv(_write(mirror, "fermetures"))
    expected = set()
    for r in mirror.rows("SELECT number FROM dossiers WHERE state IN ('sans_suite', 'refuse')"):
        d = mirror.world.dossiers[r["number"]]
        if any(t.state == "accepte" for t in d.traitements):
            expected |= {(u, d.number) for u in school_uais(d) if ident.uai_is_valid(u)}
    assert {(r["uai"], int(r["dossier"])) for r in rows} == expected and expected
    assert all(r["etat"] in ("sans_suite", "refuse") and r["date"] for r in rows)


def test_ecoles_and_anomalies_exports_read_back(mirror):
    ecoles = _read_csv(_write(mirror, "ecoles"))
    assert len(ecoles) == mirror.rows("SELECT count(*) AS n FROM ecoles")[0]["n"]
    anomalies = _read_csv(_write(mirror, "anomalies"))
    open_ = mirror.rows("SELECT dossier_number, code, message FROM anomalies WHERE resolved_at IS NULL")
    assert sorted((int(r["dossier"]), r["code"], r["message"]) for r in anomalies) == sorted(
        (r["dossier_number"], r["code"], r["message"]) for r in open_)
    assert all(r["gravite"] in ("error", "warning") for r in anomalies)
    as_json = json.loads(_write(mirror, "anomalies", "json").read_text(encoding="utf-8"))
    assert len(as_json) == len(anomalies) and isinstance(as_json[0]["dossier"], int)


def test_views_for_browsing(mirror):
    overview = mirror.rows("SELECT * FROM dossiers_overview")
    assert len(overview) == mirror.rows("SELECT count(*) AS n FROM dossiers")[0]["n"]
    occ = [r for r in overview if r["demarche_number"] == OCCITANIE]
    assert all(r["nombre_ecoles"] is not None and r["cout"] is not None for r in occ)
    assert sum(r["anomalies_ouvertes"] for r in overview) == len(mirror.rows("SELECT * FROM anomalies_ouvertes"))
    assert {r["code"] for r in mirror.rows("SELECT code FROM anomalies_ouvertes")} <= set(RULES)


def test_messages_are_french_and_point_at_the_champ(mirror):
    rows = mirror.rows("SELECT code, champ, message FROM anomalies")
    for r in rows:
        assert r["champ"], r["code"]
        assert r["message"].endswith("."), r["message"]
    count = next(r for r in rows if r["code"] == "nombre_ecoles_incoherent")
    assert "Nombre d'écoles inscrites" in count["message"] and "sélectionnée" in count["message"]
    cost = [r["message"] for r in rows if r["code"] == "cout_incoherent"]
    assert all("× 41 €" in m for m in cost)
