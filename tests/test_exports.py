"""The exports opened the way the académie's staff open them: LibreOffice Calc (headless, Debian's
``libreoffice-calc-nogui``) reading the CSV with its default import and the xlsx as it is, from a synced
simulator world in which usagers typed a formula and a UAI without its letter. Expectations come from
the mirror's own tables (SQL written here) and from what was planted, never from the export code.

Calc's CSV import is driven by the filter options string (token by token, as LibreOffice's
``ScAsciiOptions::ReadFromString`` reads it):

    9/44/59  field separators tab, comma AND semicolon: the boxes ticked when a .csv is double-clicked
    34       text delimiter: the double quote
    76       character set: UTF-8
    1        start at line 1
    (empty)  column types: all "Standard" (Calc guesses numbers and dates, as after a double-click)
    1036     language French (France): a decimal comma, French dates
    false    "Format quoted field as text": off, the dialog's default (quoting alone keeps nothing as text)
    false    "Detect special numbers": off, the dialog's default
    false    (export only: save as shown)
    false    (export only: save formulas)
    false    "Trim spaces": off
    -1       (export only: sheet to export)
    true     "Evaluate formulas": ON, the worst case: a cell starting with '=' would become a formula

The process also runs under ``LC_ALL=fr_FR.UTF-8`` when that locale exists (``.ci/run`` generates it).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from contextlib import closing
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from conftest import SimulatorHandle
from connector.commands.hooks import sync_hooks
from connector.forms import exports
from connector.simulator.demarches import CRETEIL, OCCITANIE
from connector.simulator.seed import seed_world
from connector.store import forms as forms_store
from connector.store import open_db, open_db_readonly
from simworld import listed
from syncenv import read_db, simulator_config, sync

SOFFICE = shutil.which("soffice")
needs_calc = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice not installed (.ci/run installs "
                                                        "libreoffice-calc-nogui)")
CALC_CSV_IMPORT = "CSV:9/44/59,34,76,1,,1036,false,false,false,false,false,-1,true"
FORMULA = '=HYPERLINK("https://exemple.invalid/paiement";"Cliquez ici")'
NO_LETTER = "0771399"
KINDS = exports.KINDS


class World:
    def __init__(self, handle: SimulatorHandle, config, directory: Path, planted: dict[str, int]):
        self.handle, self.config, self.directory, self.planted = handle, config, directory, planted

    def rows(self, sql: str, *params) -> list:
        with closing(read_db(self.config)) as conn:
            return conn.execute(sql, params).fetchall()

    def build(self, kind: str, demarches=None, strict: bool = False) -> exports.Export:
        db = open_db_readonly(self.config.database.path)
        try:
            return exports.build(db, self.config, kind, demarches, strict)
        finally:
            db.close()


def _plant(world) -> dict[str, int]:
    """Two Créteil usagers type a school's UAI by hand: one a spreadsheet formula, one without its
    letter. Returns the dossier of each."""
    creteil = sorted((d for d in world.dossiers.values() if d.demarche_number == CRETEIL and listed(d)),
                     key=lambda d: d.number)
    planted = {}
    for value, d in ((FORMULA, creteil[0]), (NO_LETTER, creteil[1])):
        cell = next(x for c in d.champs for r in c.rows for x in r.champs if x.type == "TextChamp" and x.value)
        cell.value = cell.string_value = value
        planted[value] = d.number
    return planted


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    directory = tmp_path_factory.mktemp("exports")
    seeded = seed_world(seed=2026, dossiers=300)
    planted = _plant(seeded)
    handle = SimulatorHandle(seeded, 0)
    config = simulator_config(directory, handle)
    assert sync(config, hooks=sync_hooks(config)).exit_code == 0
    yield World(handle, config, directory, planted)
    handle.stop()


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def _calc(directory: Path, files: list[Path], infilter: str | None = None) -> dict[str, Path]:
    """Open ``files`` with LibreOffice Calc and save each as xlsx (Calc's own writer) in ``directory``;
    returns name stem -> converted file."""
    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if "fr_FR.utf8" in subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout:
        env["LC_ALL"] = "fr_FR.UTF-8"
    profile = directory.parent / "lo-profile"
    cmd = [SOFFICE, "--headless", "--norestore", f"-env:UserInstallation={profile.as_uri()}"]
    if infilter:
        cmd.append(f"--infilter={infilter}")
    cmd += ["--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(directory), *map(str, files)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    out = {f.stem: directory / f"{f.stem}.xlsx" for f in files}
    assert result.returncode == 0 and all(p.exists() for p in out.values()), result.stdout + result.stderr
    return out


def _table(path: Path, sheet: str | None = None, data_only: bool = True) -> list[list]:
    book = openpyxl.load_workbook(path, data_only=data_only)
    ws = book[sheet] if sheet else book.worksheets[0]
    return [list(r) for r in ws.iter_rows()]


def _values(cells: list) -> list:
    return [c.value for c in cells]


def _digits(value) -> str:
    """A cell Calc read as a number, written back as the digits it holds (exact: < 2**53)."""
    if isinstance(value, float):
        assert value.is_integer(), value
        value = int(value)
    return str(value)


# --- The database's own answers ---------------------------------------------------------------------


def _billed_total(w: World) -> float:
    """Σ over Occitanie collectivités of (distinct valid schools of accepted dossiers whose signed
    convention is in) × 41 €, straight from the tables."""
    [(schools,)] = w.rows(
        """SELECT count(*) FROM (SELECT DISTINCT coalesce(f.siret, d.demandeur_siret, d.number), e.uai
           FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number
           LEFT JOIN dossier_forms f ON f.dossier_number = d.number
           JOIN conventions c ON c.dossier_number = d.number
             AND c.status IN ('received_on_time', 'received_late')
           WHERE d.demarche_number = ? AND d.state = 'accepte' AND d.pending_deletion = 0
             AND e.uai_valide = 1)""", OCCITANIE)
    assert schools > 20
    return schools * 41.0


# --- CSV through Calc's default import --------------------------------------------------------------


@pytest.mark.slow
@needs_calc
def test_every_csv_reads_right_in_calc_default_import(world, tmp_path):
    files = []
    for kind in KINDS:
        path = tmp_path / "csv" / f"{kind}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(exports.to_csv(kind, world.build(kind).rows), encoding="utf-8", newline="")
        files.append(path)
    read = _calc(tmp_path / "calc", files, CALC_CSV_IMPORT)
    tables = {kind: _table(read[kind]) for kind in KINDS}
    for kind, rows in tables.items():
        # every column where it belongs: the header is the keys, no line has a cell past the last one
        header = [c.key for c in exports.COLUMNS[kind]]
        assert _values(rows[0])[:len(header)] == header, kind
        assert all(all(c.value is None for c in r[len(header):]) for r in rows), kind
        assert len(rows) - 1 == len(world.build(kind).rows), kind

    # facturation: every amount a number, the sum the database's ("objet" holds commas)
    billing = [dict(zip(_values(tables["facturation"][0]), _values(r))) for r in tables["facturation"][1:]]
    assert billing and all(isinstance(r["montant"], int | float) and isinstance(r["tarif"], int | float)
                           for r in billing)
    assert sum(r["montant"] for r in billing) == _billed_total(world)
    assert all(r["objet"].startswith("2026/2027 - Contribution") and r["objet"].endswith("€") for r in billing)

    # anomalies: whole messages (before quoting, Calc cut them at their first comma)
    anomalies = [dict(zip(_values(tables["anomalies"][0]), _values(r))) for r in tables["anomalies"][1:]]
    stored = world.rows("SELECT dossier_number, code, message FROM anomalies WHERE resolved_at IS NULL")
    assert sorted((int(r["dossier"]), r["code"], r["message"]) for r in anomalies) == sorted(map(tuple, stored))

    # identifiers: SIRET and dossier numbers exact (Calc makes them numbers, exactly)
    ecoles = [dict(zip(_values(tables["ecoles"][0]), r)) for r in tables["ecoles"][1:]]
    truth = world.rows("SELECT e.dossier_number, e.position, e.uai_saisi, e.uai, "
                       "coalesce(f.siret, d.demandeur_siret) AS siret FROM ecoles e "
                       "JOIN dossiers d ON d.number = e.dossier_number "
                       "LEFT JOIN dossier_forms f ON f.dossier_number = d.number "
                       "ORDER BY d.demarche_number, d.number, e.position")
    assert len(ecoles) == len(truth)
    for cells, t in zip(ecoles, truth):
        assert _digits(cells["dossier"].value) == str(t["dossier_number"])
        if t["siret"]:
            assert _digits(cells["siret"].value) == t["siret"]
        if t["uai"] and t["uai"][-1].isalpha():  # a UAI with its letter is text, exactly
            assert cells["uai"].value == t["uai"] and cells["uai"].data_type == "s"
    # The usager's formula is text, made inert by the leading quote; Calc did not evaluate it.
    [formula] = [c for c in ecoles if c["dossier"].value == world.planted[FORMULA] and c["rang"].value == 1]
    assert formula["uai_saisi"].data_type == "s" and formula["uai_saisi"].value == "'" + FORMULA
    # What CSV cannot do, and why the README sends people to xlsx: all digits, the UAI typed without
    # its letter is a number for any spreadsheet's default import, its leading zero gone.
    [no_letter] = [c for c in ecoles if c["dossier"].value == world.planted[NO_LETTER] and c["rang"].value == 1]
    assert no_letter["uai_saisi"].value == int(NO_LETTER)


def test_csv_quotes_every_field_and_neutralises_text_not_numbers():
    rows = [{"demarche": 1, "siret": "21340382700016", "collectivite": "-COMMUNE", "dossiers": "7, 8",
             "nombre_ecoles": 2, "tarif": 41.0, "montant": -41.5, "objet": "@SUM(A1)", "a_verifier": []},
            {"demarche": 1, "siret": "+33", "collectivite": "\tx", "dossiers": "9", "nombre_ecoles": 0,
             "tarif": 41.0, "montant": 0.0, "objet": "\r=1+1", "a_verifier": ["siret_invalide", "uai_invalide"]}]
    text = exports.to_csv("facturation", rows)
    assert text.startswith('\ufeff"demarche";"siret";"collectivite";')
    first, second = list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))[1:]
    assert first == ["1", "21340382700016", "'-COMMUNE", "7, 8", "2", "41,00", "-41,50", "'@SUM(A1)", ""]
    assert second == ["1", "'+33", "'\tx", "9", "0", "41,00", "0,00", "'\r=1+1", "siret_invalide, uai_invalide"]
    assert re.fullmatch(r'\ufeff(?:"(?:[^"]|"")*"(?:;|\r\n))+', text), "every field quoted"
    dotted = exports.to_csv("facturation", rows, exports.CsvStyle(",", "."))
    assert '"-41.50"' in dotted and '"41.00"' in dotted


# --- xlsx: typed, and through Calc ------------------------------------------------------------------


def _sheet_dicts(path: Path, sheet: str, data_only: bool = False) -> tuple[list[str], list[dict]]:
    rows = _table(path, sheet, data_only)
    header = _values(rows[0])
    return header, [dict(zip(header, r)) for r in rows[1:]]


@pytest.fixture(scope="module")
def workbook(world) -> Path:
    """``export all --output exports.xlsx``, as an operator types it."""
    out = world.directory / "exports.xlsx"
    result = _cli("export", "all", "--config", str(world.config.path), "--output", str(out))
    assert result.returncode == 0, result.stderr
    for kind in KINDS:
        assert f"{kind}: " in result.stderr
    return out


def test_the_workbook_has_typed_cells_french_words_and_a_print_setup(world, workbook):
    book = openpyxl.load_workbook(workbook)
    assert book.sheetnames == ["Informations", *KINDS]
    about = [_values(r) for r in book["Informations"].iter_rows()]
    assert any(r[0] == "Date de l'export" for r in about)
    assert {r[1].split(" : ")[0] for r in about if r[0] == "Démarche"} == {
        str(n) for (n,) in world.rows("SELECT number FROM demarches")}

    for kind in KINDS:
        ws = book[kind]
        assert _values(next(ws.iter_rows()))[:len(exports.COLUMNS[kind])] == [c.header for c in exports.COLUMNS[kind]]
        assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
        # one page wide (fitToWidth absent means 1), as many pages tall as needed, header row repeated
        assert ws.page_setup.orientation == "landscape" and ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0
        assert ws.print_title_rows.replace("$", "") == "1:1"
        assert "Démarche(s)" in ws.oddHeader.center.text and "Export du" in ws.oddHeader.right.text
        assert all(ws.column_dimensions[col].width > 5 for col in "ABC")

    header, billing = _sheet_dicts(workbook, "facturation")
    assert "À vérifier" in header and "Collectivité" in header
    lines, total = billing[:-1], billing[-1]
    for r in lines:
        assert r["Montant"].data_type == "n" and "€" in r["Montant"].number_format
        assert r["SIRET"].data_type == "s" and r["Dossiers"].data_type == "s" and r["Démarche"].data_type == "s"
        assert r["Collectivité"].value
    assert sum(r["Montant"].value for r in lines) == _billed_total(world)
    assert total["Tarif par école"].value is None and total["Montant"].data_type == "f"
    assert "SUBTOTAL(109" in total["Montant"].value

    _, ecoles = _sheet_dicts(workbook, "ecoles")
    assert {r["État du dossier"].value for r in ecoles} <= set(exports.STATES.values())
    assert {r["UAI valide"].value for r in ecoles} == {"oui", "non"}
    [formula] = [r for r in ecoles if r["Dossier"].value == str(world.planted[FORMULA]) and r["Rang"].value == 1]
    assert formula["UAI saisi"].data_type == "s" and formula["UAI saisi"].value == FORMULA
    assert formula["UAI saisi"].quotePrefix  # shown as text, stays text when edited
    [no_letter] = [r for r in ecoles if r["Dossier"].value == str(world.planted[NO_LETTER]) and r["Rang"].value == 1]
    assert no_letter["UAI saisi"].value == NO_LETTER and no_letter["UAI"].value == NO_LETTER
    assert no_letter["UAI valide"].value == "non"

    _, opened = _sheet_dicts(workbook, "ouvertures")
    assert opened and all(isinstance(r["Accepté le"].value, datetime) for r in opened)
    assert all(r["UAI"].data_type == "s" and r["UAI"].value[-1].isalpha() for r in opened)
    _, anomalies = _sheet_dicts(workbook, "anomalies")
    assert {r["Gravité"].value for r in anomalies} == {"erreur", "avertissement"}


@pytest.mark.slow
@needs_calc
def test_calc_reads_the_xlsx_back_exactly(world, workbook, tmp_path):
    """Calc opens the workbook and saves it again: identifiers are still the same text, amounts
    numbers summing to the database's total (Calc recomputes the total row), the formula is text."""
    single = world.directory / "facturation.xlsx"
    result = _cli("export", "facturation", "--config", str(world.config.path), "--output", str(single))
    assert result.returncode == 0, result.stderr
    assert openpyxl.load_workbook(single).sheetnames == ["Informations", "facturation"]
    read = _calc(tmp_path / "calc", [workbook, single])
    total_expected = _billed_total(world)
    for path in read.values():
        rows = _table(path, "facturation")
        header = _values(rows[0])
        lines = [dict(zip(header, r)) for r in rows[1:-1]]
        assert all(isinstance(r["Montant"].value, int | float) for r in lines)
        assert sum(r["Montant"].value for r in lines) == total_expected
        assert dict(zip(header, _values(rows[-1])))["Montant"] == total_expected  # Calc's own SUBTOTAL
        sirets = {r[0] for r in world.rows("SELECT coalesce(f.siret, d.demandeur_siret) FROM dossiers d "
                                           "LEFT JOIN dossier_forms f ON f.dossier_number = d.number")}
        assert all(r["SIRET"].data_type == "s" and r["SIRET"].value in sirets for r in lines)

    rows = _table(read["exports"], "ecoles")
    header = _values(rows[0])
    ecoles = [dict(zip(header, r)) for r in rows[1:]]
    truth = world.rows("SELECT e.dossier_number, e.uai_saisi, e.uai, coalesce(f.siret, d.demandeur_siret) "
                       "FROM ecoles e JOIN dossiers d ON d.number = e.dossier_number "
                       "LEFT JOIN dossier_forms f ON f.dossier_number = d.number "
                       "ORDER BY d.demarche_number, d.number, e.position")
    assert len(ecoles) == len(truth)
    for cells, (number, typed, uai, siret) in zip(ecoles, truth):
        assert cells["Dossier"].value == str(number) and cells["Dossier"].data_type == "s"
        assert cells["UAI saisi"].value == (typed or None) and cells["UAI"].value == (uai or None)
        assert cells["SIRET"].value == (siret or None)
    assert any(c["UAI saisi"].value == NO_LETTER for c in ecoles)
    [formula] = [c for c in ecoles if c["UAI saisi"].value == FORMULA]
    assert formula["UAI saisi"].data_type == "s"  # Calc kept it as text: nothing to evaluate
    rows = _table(read["exports"], "ouvertures")
    assert all(isinstance(r[6].value, datetime) for r in rows[1:])


# --- What an export decides -------------------------------------------------------------------------


def test_an_unknown_demarche_is_exit_78_and_writes_nothing(world):
    for kind in ("ouvertures", "facturation", "all"):
        out = world.directory / f"nothing-{kind}.xlsx"
        result = _cli("export", kind, "--config", str(world.config.path), "--demarche", "999", "--output", str(out))
        assert result.returncode == 78, result.stderr
        assert "999" in result.stderr and "configured are" in result.stderr and str(OCCITANIE) in result.stderr
        assert "Traceback" not in result.stderr and not out.exists()
    # The library never widens a selection: nothing in the mirror, nothing exported.
    assert world.build("ouvertures", [999]).rows == [] and world.build("facturation", [999]).rows == []


def test_openings_keep_the_convention_filter_whatever_the_selection(world):
    obtained = {n for (n,) in world.rows("SELECT dossier_number FROM conventions "
                                         "WHERE status IN ('received_on_time', 'received_late')")}
    for selection in (None, [OCCITANIE], [OCCITANIE, CRETEIL]):
        rows = [r for r in world.build("ouvertures", selection).rows if r["demarche"] == OCCITANIE]
        assert rows and {r["dossier"] for r in rows} <= obtained, selection


def test_bad_options_are_usage_errors(world):
    for args, says in ((("ecoles", "--delimiter", "||"), "--delimiter"), (("ecoles", "--delimiter", ""), "--delimiter"),
                       (("all", "--format", "csv"), "xlsx"), (("ecoles", "--strict"), "--strict"),
                       (("ecoles", "--format", "csv", "--output", "x.xlsx"), ".xlsx")):
        result = _cli("export", *args, "--config", str(world.config.path))
        assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr, args
    result = _cli("export", "anomalies", "--config", str(world.config.path), "--delimiter", "\t", "--decimal", ".")
    assert result.returncode == 0 and result.stdout.startswith('\ufeff"demarche"\t"dossier"')


def test_billing_says_what_to_check_and_strict_holds_it_back(world):
    errors = defaultdict(set)
    for number, code in world.rows("SELECT dossier_number, code FROM anomalies "
                                   "WHERE resolved_at IS NULL AND severity = 'error'"):
        errors[number].add(code)
    every = world.build("facturation").rows
    flagged = [r for r in every if r["a_verifier"]]
    assert flagged and len(flagged) < len(every)
    for r in every:
        numbers = [int(n) for n in r["dossiers"].split(", ")]
        assert set(r["a_verifier"]) == set().union(*(errors[n] for n in numbers)), r
    strict = world.build("facturation", strict=True)
    assert strict.held_back == len(flagged)
    assert strict.rows == [r for r in every if not r["a_verifier"]]
    # Only a démarche whose form declares a cost is billed, even when named.
    creteil = world.build("facturation", [CRETEIL, OCCITANIE])
    assert creteil.rows == every and creteil.notes == [
        f"démarche {CRETEIL} non facturée : son formulaire (creteil) ne déclare pas de coût"]
    as_json = exports.to_json("facturation", every)
    assert '"a_verifier": [' in as_json and '"montant": 41.0' in as_json


def test_a_collectivite_always_has_a_name(world):
    nameless = {n for (n,) in world.rows(
        "SELECT d.number FROM dossiers d LEFT JOIN dossier_forms f ON f.dossier_number = d.number "
        "WHERE coalesce(trim(f.collectivite), '') = '' AND coalesce(trim(d.demandeur_name), '') = ''")}
    assert nameless, "the seeded world has demandeurs without raison sociale (PersonneMoraleIncomplete)"
    communes = defaultdict(set)
    for number, commune in world.rows("SELECT dossier_number, commune FROM ecoles WHERE commune <> ''"):
        communes[number].add(commune)
    seen = 0
    for kind in ("ecoles", "ouvertures", "fermetures", "facturation", "anomalies"):
        for r in world.build(kind).rows:
            assert r["collectivite"], (kind, r)
            number = int(str(r.get("dossier", r.get("dossiers"))).split(",")[0])
            if number in nameless:
                seen += 1
                expected = ", ".join(sorted(communes[number])) or f"(sans nom : dossier {number})"
                assert r["collectivite"] == expected, (kind, r)
    assert seen


def test_an_anomaly_first_seen_late_in_the_utc_evening_is_of_the_next_paris_day(tmp_path):
    """``depuis`` is the Paris day the anomaly was first seen (the connector's timestamps are UTC):
    22:30 UTC on 14 October 2026 is 00:30 on the 15th in Paris, 21:59:59 UTC still the 14th."""
    db = open_db(tmp_path / "mirror.sqlite")
    try:
        with db.atomic():
            db.conn.execute("INSERT INTO demarches (number, id, title, raw, synced_at) VALUES (7, 'D7', 'T', '{}', ?)",
                            ["2026-10-14T22:30:00+00:00"])
            db.conn.executemany(
                "INSERT INTO dossiers (number, id, demarche_number, state, date_derniere_modification, raw, "
                "synced_at) VALUES (?, ?, 7, 'en_construction', ?, '{}', ?)",
                [(n, f"X{n}", "2026-10-14T20:00:00+02:00", "2026-10-14T22:30:00+00:00") for n in (1, 2)])
            for number, now in ((1, "2026-10-14T22:30:00+00:00"), (2, "2026-10-14T21:59:59+00:00")):
                forms_store.sync_anomalies(db, [number], ["uai_invalide"], [{
                    "demarche_number": 7, "dossier_number": number, "code": "uai_invalide", "severity": "error",
                    "champ": "UAI", "key": "k", "message": "UAI invalide"}], now)
        export = exports.build(db, None, "anomalies", [7])
    finally:
        db.conn.close()
    assert {r["dossier"]: r["depuis"] for r in export.rows} == {1: "2026-10-15", 2: "2026-10-14"}
    text = exports.render("anomalies", export.rows, "csv")
    assert {r["dossier"]: r["depuis"] for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")} \
        == {"1": "2026-10-15", "2": "2026-10-14"}
    path = tmp_path / "anomalies.xlsx"
    path.write_bytes(exports.to_xlsx([export]))
    _, rows = _sheet_dicts(path, "anomalies")
    since = {r["Dossier"].value: r["Depuis le"] for r in rows}
    assert since["1"].value == datetime(2026, 10, 15) and since["1"].number_format == "dd/mm/yyyy"
    assert since["2"].value == datetime(2026, 10, 14)
