"""The one door into the mirror (``connector.store.door.enter``): every dossier enters through it,
any failure of one dossier quarantines that dossier alone, and every champ type of the schema gets a
typed value. Real HTTP to the simulator, real SQLite files; answers the simulator cannot make (it is
held to today's DS, whose repetition rows have champ ids of their own) come through the reverse proxy
of test_sync_faults, the network edge.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import structlog
from graphql import build_schema

from connector.commands.hooks import CompositeHooks
from connector.config import load_config
from connector.forms.hooks import FormsHooks
from connector.simulator.seed import seed_world
from connector.simulator.state import Champ
from connector.store import open_db
from connector.store.door import enter
from connector.store.values import CHAMP_VALUES
from connector.sync import SyncHooks
from connector.sync.engine import DemarcheCrashed
from syncenv import read_db, remote_dossiers, simulator_config, sync, sync_cli, write_config
from test_sync_faults import BIG, Proxy, events, sync_through

SCHEMA = Path(__file__).resolve().parents[1] / "connector" / "schema" / "ds.graphql"


def schema_champ_types() -> set[str]:
    """Every concrete type implementing ``Champ`` in the vendored schema: a type DS adds shows up here
    when the schema is updated, and the tests below fail until it has a typed value."""
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))
    return {t.name for t in schema.get_implementations(schema.type_map["Champ"]).objects}


def test_every_champ_type_of_the_schema_has_a_typed_value():
    types = schema_champ_types()
    assert len(types) >= 28
    assert types - set(CHAMP_VALUES) == set()


# --- three démarches, two bad dossiers, one with repeated champ ids ---------------------------


class RaisingHooks(CompositeHooks):
    """The real forms hook, plus a deadline hook with a bug for one dossier."""

    def __init__(self, config: Any, victim: int):
        super().__init__([FormsHooks(config)])
        self.victim = victim

    def dossiers_changed(self, db: Any, demarche: int, numbers: list[int]) -> None:
        super().dossiers_changed(db, demarche, numbers)
        if self.victim in numbers:
            raise KeyError("a hook's bug")


def with_rows(nodes: dict[int, Any]) -> int:
    """A dossier whose repetition has at least two rows."""
    for number, node in nodes.items():
        for champ in node["champs"]:
            if len(champ.get("rows") or []) >= 2:
                return number
    raise AssertionError("no dossier with a two-row repetition in this world")


async def test_two_bad_dossiers_are_quarantined_and_every_other_dossier_of_three_demarches_is_stored(
        make_simulator, tmp_path):
    world = make_simulator(seed=7, dossiers=60)
    assert len(world.world.demarches) == 3
    remote = {d: remote_dossiers(world, d) for d in sorted(world.world.demarches)}
    target = 128905  # the démarche of this world whose form has a repetition (Écoles concernées)
    repeated = with_rows(remote[target])
    others = [n for n in remote[target] if n != repeated]
    hooked, doubled = others[3], others[7]

    def rewrite(request: dict, answer: dict) -> dict:
        if request.get("operationName") != "getDossiersPage":
            return answer
        for node in answer["data"]["demarche"]["dossiers"]["nodes"]:
            if node["number"] == repeated:  # as recorded dossiers of DS's forks: one id per column
                for champ in node["champs"]:
                    rows = champ.get("rows") or []
                    for row in rows[1:]:
                        for position, child in enumerate(row["champs"]):
                            child["id"] = rows[0]["champs"][position]["id"]
            if node["number"] == doubled:  # the same champ twice: an IntegrityError on the write
                node["champs"].append(dict(node["champs"][0]))
        return answer

    config = simulator_config(tmp_path, world)
    with structlog.testing.capture_logs() as logs:
        async with Proxy(world, rewrite) as url:
            config, report = await sync_through(url, world, tmp_path,
                                                hooks=RaisingHooks(config, hooked))

    assert report.status == "partial" and report.exit_code == 65
    assert report.total("quarantined") == 2 and "2 dossier(s) quarantined" in report.summary()
    db = read_db(config)
    quarantine = {r["dossier_number"]: r for r in db.execute("SELECT * FROM quarantine")}
    assert set(quarantine) == {hooked, doubled}
    assert "KeyError" in quarantine[hooked]["error"] and "a hook's bug" in quarantine[hooked]["error"]
    assert "IntegrityError" in quarantine[doubled]["error"]
    assert json.loads(quarantine[hooked]["raw"])["number"] == hooked  # DS's answer, kept
    assert json.loads(quarantine[doubled]["raw"])["number"] == doubled
    assert {e["dossier"] for e in events(logs, "sync.dossier_quarantined")} == {hooked, doubled}
    # Nothing half-written for the quarantined ones, everything else of the three démarches stored.
    for number in (hooked, doubled):
        assert db.execute("SELECT count(*) FROM champs WHERE dossier_number = ?", [number]).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM dossier_forms WHERE dossier_number = ?",
                          [number]).fetchone()[0] == 0
    for demarche, nodes in remote.items():
        stored = {n for (n,) in db.execute("SELECT number FROM dossiers WHERE demarche_number = ?", [demarche])}
        assert stored == set(nodes) - {hooked, doubled}, demarche
    # The repeated ids are stored, one row per repetition row (keyed by champ id and row).
    node = remote[target][repeated]
    repetition = next(c for c in node["champs"] if len(c.get("rows") or []) >= 2)
    children = db.execute("SELECT champ_id, row_index, string_value FROM champs WHERE dossier_number = ? "
                          "AND parent_id = ? ORDER BY row_index, position", [repeated, repetition["id"]]).fetchall()
    expected = [(c["stringValue"], i) for i, row in enumerate(repetition["rows"]) for c in row["champs"]]
    assert [(r["string_value"], r["row_index"]) for r in children] == expected
    first_ids = [c["id"] for c in repetition["rows"][0]["champs"]]
    assert {r["champ_id"] for r in children} == set(first_ids)
    # The forms hook ran on the stored dossiers of the page that went one dossier at a time.
    evaluated = {n for (n,) in db.execute("SELECT dossier_number FROM dossier_forms")}
    assert repeated in evaluated and set(remote[target]) - {hooked, doubled} <= evaluated

    # The next run goes on from there: the bad ones alone stay out, the run is still partial, and
    # once DS sends them right (and the bug is gone) a --full brings them in.
    async with Proxy(world, lambda request, answer: answer) as url:
        config, report = await sync_through(url, world, tmp_path, full=True)
    assert report.status == "ok" and report.exit_code == 0
    db = read_db(config)
    assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert {n for (n,) in db.execute("SELECT number FROM dossiers")} == {n for d in remote.values() for n in d}


def test_the_cli_exits_65_on_a_partial_sync_and_says_why(make_simulator, tmp_path):
    world = make_simulator(seed=7, dossiers=20)
    target = next(iter(remote_dossiers(world, BIG)))
    world.control("poison", number=target)
    config = simulator_config(tmp_path, world)
    done = sync_cli(config.path)
    assert done.returncode == 65, done.stderr
    assert "sync partial" in done.stdout and "1 dossier(s) quarantined" in done.stdout


# --- every champ type of the schema, served by the simulator ------------------------------------


GEO = {"__typename": "SelectionUtilisateur", "id": "R2VvQXJlYS0x", "source": "selection_utilisateur",
       "description": "Parcelle de l'école",
       "geometry": {"type": "Polygon", "coordinates": [[[2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.85]]]}}
VALUES: dict[str, tuple[str | None, Any]] = {  # type -> (stringValue, simulator value), as DS sends them
    "TextChamp": ("Bonjour", "Bonjour"),
    "DateChamp": ("15 octobre 2026", "2026-10-15"),
    "DatetimeChamp": ("15 octobre 2026 10:30", datetime(2026, 10, 15, 8, 30, tzinfo=timezone.utc)),
    "CheckboxChamp": ("Oui", True),
    "YesNoChamp": ("Non", False),
    "DecimalNumberChamp": ("12.5", 12.5),
    "IntegerNumberChamp": ("4", 4),
    "CiviliteChamp": ("Mme", "Mme"),
    "DropDownListChamp": ("Maire", "Maire"),
    "MultipleDropDownListChamp": ("A, B", ["A", "B"]),
    "LinkedDropDownListChamp": ("Hérault / Montpellier", {"primaryValue": "Hérault", "secondaryValue": "Montpellier"}),
    "CommuneChamp": ("Montpellier (34000)", {"commune": {"name": "Montpellier", "code": "34172", "postalCode": "34000"},
                                             "departement": {"name": "Hérault", "code": "34"}}),
    "DepartementChamp": ("34 – Hérault", {"name": "Hérault", "code": "34"}),
    "RegionChamp": ("Occitanie", {"name": "Occitanie", "code": "76"}),
    "PaysChamp": ("France", {"name": "France", "code": "FR"}),
    "AddressChamp": ("1 Place Georges Frêche 34000 Montpellier",
                     {"address": {"label": "1 Place Georges Frêche 34000 Montpellier", "postalCode": "34000",
                                  "cityName": "Montpellier", "cityCode": "34172"}}),
    "SiretChamp": ("21340172200017", {"siret": "21340172200017"}),
    "DossierLinkChamp": ("23102213", None),
    "CarteChamp": ("", [GEO]),
    "EpciChamp": ("Montpellier Méditerranée Métropole", {"epci": {"name": "Montpellier Méditerranée Métropole",
                                                                  "code": "243400017"},
                                                         "departement": {"name": "Hérault", "code": "34"}}),
    "RNAChamp": ("W343000001", {"rna": {"id": "W343000001", "title": "Association des parents"}}),
    "RNFChamp": ("075-FDD-00003-01", {"rnf": {"id": "075-FDD-00003-01", "title": "Fondation X"}}),
    "EngagementJuridiqueChamp": ("EJ-2026-1", {"montantEngage": "1200.00", "montantPaye": "600.00"}),
    "TitreIdentiteChamp": (None, None),  # no file: filled = false
    "HeaderSectionChamp": (None, None),
    "ExplicationChamp": (None, None),
}
CONTAINERS = {"PieceJustificativeChamp", "RepetitionChamp"}  # the seeded forms have them, files and rows


def test_a_dossier_with_every_champ_type_of_the_schema_is_stored_typed(make_simulator, tmp_path):
    world = seed_world(seed=7, dossiers=20)
    dossier = next(d for d in world.dossiers.values() if d.demarche_number == BIG)
    present = {c.type for c in dossier.champs}
    for offset, kind in enumerate(sorted(schema_champ_types() - CONTAINERS)):
        string_value, value = VALUES[kind]
        dossier.champs.append(Champ(9_000_000 + offset, kind, f"Champ {kind}", string_value, value,
                                    updated_at=dossier.updated_at))
    handle = make_simulator(world=world)
    config = simulator_config(tmp_path, handle)
    with structlog.testing.capture_logs() as logs:
        report = sync(config)
    assert report.status in ("ok", "partial") and report.total("quarantined") == 0
    assert not events(logs, "store.unknown_champ_types")
    db = read_db(config)
    rows = {r["type"]: r for r in db.execute("SELECT * FROM champs WHERE dossier_number = ?", [dossier.number])}
    kinds = set(rows) | {r["type"] for r in db.execute("SELECT DISTINCT type FROM champs")}
    assert schema_champ_types() <= kinds, schema_champ_types() - kinds
    assert CONTAINERS <= present | kinds
    assert db.execute("SELECT count(*) FROM champs WHERE raw IS NOT NULL").fetchone()[0] == 0
    typed = {kind: rows[kind]["value"] for kind in VALUES if kind in rows}
    assert typed["DossierLinkChamp"] == 23102213
    assert json.loads(typed["CarteChamp"]) == [{k: v for k, v in GEO.items() if k != "__typename"}]
    assert json.loads(typed["EpciChamp"])["epci"]["code"] == "243400017"
    assert json.loads(typed["RNAChamp"]) == {"id": "W343000001", "title": "Association des parents"}
    assert json.loads(typed["RNFChamp"])["id"] == "075-FDD-00003-01"
    assert json.loads(typed["EngagementJuridiqueChamp"]) == {"montantEngage": "1200.00", "montantPaye": "600.00"}
    for kind in set(VALUES) - {"HeaderSectionChamp", "ExplicationChamp"}:
        assert typed[kind] is not None, kind


# --- unknown types: one warning per type and run ------------------------------------------------


def test_an_unknown_champ_type_is_kept_raw_and_warned_once_per_run(tmp_path):
    db = open_db(tmp_path / "mirror.db")
    answer = json.loads((Path(__file__).parent / "data" / "dossiers_page.json").read_text(encoding="utf-8"))
    nodes = answer["data"]["demarche"]["dossiers"]["nodes"]
    for node in nodes:
        node["champs"].append({"id": f"future-{node['number']}", "__typename": "FutureChamp", "label": "Futur",
                               "stringValue": "x", "futureValue": [1, 2]})
    warned: set[str] = set()
    with structlog.testing.capture_logs() as logs:
        first = enter(db, 4242, nodes[:2], unknown_types=warned)
        second = enter(db, 4242, nodes[2:], unknown_types=warned)
    assert not first.quarantined and not second.quarantined
    (warning,) = events(logs, "store.unknown_champ_types")
    assert set(warning["types"]) == {"FutureChamp"}
    raws = [json.loads(r) for (r,) in db.conn.execute("SELECT raw FROM champs WHERE type = 'FutureChamp'")]
    assert len(raws) == len(nodes) and all(r["futureValue"] == [1, 2] for r in raws)
    db.close()


def test_enter_refuses_to_run_inside_a_transaction(tmp_path):
    db = open_db(tmp_path / "mirror.db")
    with pytest.raises(RuntimeError, match="own transaction"), db.atomic():
        enter(db, 4242, [])
    db.close()


# --- answers recorded from DS and a fork by other public projects -------------------------------


RECORDED = Path(__file__).parent / "data" / "recorded"


def test_recorded_answers_all_enter_stored_or_quarantined_with_a_reason(tmp_path):
    """tests/data/recorded/README.md says where each comes from. Old DS versions and the Polynésie
    fork answer with fields ours no longer ask (the flat ``RepetitionChamp.champs``, repeated child
    ids, types of the fork): each dossier is stored (typed where the type is DS's, raw otherwise) or
    quarantined with why, and the forms hook runs on the stored ones."""
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/api/v2/graphql", "x" * 40, [1]))
    db = open_db(config.database.path)
    nodes = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RECORDED.glob("*.json"))]
    assert len(nodes) == 7
    with structlog.testing.capture_logs() as logs:
        entry = enter(db, 1, nodes, hook=CompositeHooks([FormsHooks(config)]).dossiers_changed, unknown_types=set())
    stored = {n for (n,) in db.conn.execute("SELECT number FROM dossiers")}
    quarantined = dict(entry.quarantined)
    assert stored | set(quarantined) == {n["number"] for n in nodes} and not stored & set(quarantined)
    assert all(quarantined.values())
    # 69001 was recorded by a query asking only number, usager and demandeur: nothing to date it by.
    assert quarantined == {69001: "dossier node without id, state, dateDerniereModification"}
    # 295697 (mes-démarches, 2022): two rows of a repetition in the flat champs list, same ids.
    rows = db.conn.execute("SELECT row_index, count(*), count(DISTINCT champ_id) FROM champs "
                           "WHERE dossier_number = 295697 AND parent_id IS NOT NULL GROUP BY row_index").fetchall()
    assert rows == [(0, 11, 11), (1, 11, 11)]
    (repeated,) = db.conn.execute("SELECT count(*) - count(DISTINCT champ_id) FROM champs "
                                  "WHERE dossier_number = 295697").fetchone()
    assert repeated == 11
    # A DossierLinkChamp recorded from mes-démarches: the linked number.
    links = db.conn.execute("SELECT value, string_value FROM champs WHERE type = 'DossierLinkChamp'").fetchall()
    assert links and all(v == int(s) for v, s in links if s)
    # The fork's own types stay raw, one warning for the run.
    (warning,) = events(logs, "store.unknown_champ_types")
    assert set(warning["types"]) == {"NumeroDnChamp", "VisaChamp"}
    # None of these recorded forms is an ENT-École one and no descriptor of theirs is mirrored: the
    # forms hook, run on the stored dossiers, reads no form there, so no form row and no anomaly.
    assert db.conn.execute("SELECT count(*) FROM dossier_forms").fetchone()[0] == 0
    assert db.conn.execute("SELECT count(*) FROM anomalies").fetchone()[0] == 0
    db.close()


# --- one démarche's bug never stops the others ---------------------------------------------------


class CrashingHooks(SyncHooks):
    def __init__(self, victim: int):
        self.victim = victim

    def demarche_done(self, db: Any, demarche: int, report: Any) -> None:
        if demarche == self.victim:
            raise ZeroDivisionError("a bug after this démarche's streams")


def test_a_bug_in_one_demarche_is_that_demarches_failure_alone(make_simulator, tmp_path):
    world = make_simulator(seed=7, dossiers=20)
    config = simulator_config(tmp_path, world)
    victim = sorted(world.world.demarches)[0]
    with structlog.testing.capture_logs() as logs:
        report = sync(config, hooks=CrashingHooks(victim))
    failed = {d.number: d.error for d in report.demarches if d.error is not None}
    assert list(failed) == [victim] and isinstance(failed[victim], DemarcheCrashed)
    assert "ZeroDivisionError" in str(failed[victim])
    assert report.status == "partial" and report.exit_code == 70 and not report.demarches_done
    assert events(logs, "sync.demarche_crashed")
    db = read_db(config)
    for number in sorted(world.world.demarches):
        stored = {n for (n,) in db.execute("SELECT number FROM dossiers WHERE demarche_number = ?", [number])}
        assert stored == set(remote_dossiers(world, number)), number


def test_a_partial_run_whose_demarches_all_went_through_lets_the_follow_up_run(make_simulator, tmp_path):
    world = make_simulator(seed=7, dossiers=20)
    target = next(iter(remote_dossiers(world, BIG)))
    world.control("poison", number=target)
    report = sync(simulator_config(tmp_path, world))
    assert report.status == "partial" and report.exit_code == 65 and report.demarches_done
