"""The SQLite mirror on real files: shape, pragmas, savers, deletions, bookmarks, runs, crash safety.

Fixtures in tests/data/ are DS answers written by hand after queries/fragments.graphql; the first
test proves they are exactly what the query documents select, under DS's schema.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from graphql import execute, parse

from connector import store
from connector.ds import operations
from connector.errors import ConnectorError
from connector.schema import schema
from connector.store.migrations import MIGRATIONS
from connector.store.shape import LATER_TABLES, TABLES

DATA = Path(__file__).parent / "data"
DEMARCHE = 4242


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))["data"]


def page_nodes() -> list[dict]:
    return load("dossiers_page")["demarche"]["dossiers"]["nodes"]


def node(number: int) -> dict:
    return copy.deepcopy(next(n for n in page_nodes() if n["number"] == number))


def rows(db, sql: str, params=()) -> list[tuple]:
    return [tuple(r) for r in db.conn.execute(sql, params).fetchall()]


def count(db, table: str) -> int:
    return db.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mirror.db"


@pytest.fixture
def db(db_path: Path):
    db = store.open_db(db_path)
    yield db
    db.close()


@pytest.fixture
def synced(db):
    """A démarche descriptor and the fixture page, committed."""
    with db.atomic():
        store.save_demarche(db, load("demarche_descriptor")["demarche"])
        store.save_dossiers(db, DEMARCHE, page_nodes(), seen_at="2026-11-04T10:00:00+00:00")
    return db


# --- fixtures and shape -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "operation, fixture",
    [
        ("dossiers_page", "dossiers_page"),
        ("demarche_descriptor", "demarche_descriptor"),
        ("deleted_dossiers_page", "deleted_dossiers_page"),
        ("pending_deleted_dossiers_page", "pending_deleted_dossiers_page"),
    ],
)
def test_fixtures_are_exactly_what_the_query_selects(operation, fixture):
    data = load(fixture)

    def resolve(source, info, **_):  # aliased values are stored under their alias, as DS sends them
        return source.get(info.path.key, source.get(info.field_name))

    result = execute(schema(), parse(operations.source(operation)), root_value=data,
                     field_resolver=resolve, variable_values={"demarcheNumber": DEMARCHE})
    assert result.errors is None
    assert result.data == data


def test_open_db_sets_wal_full_sync_foreign_keys_and_busy_timeout(db, db_path):
    assert db_path.parent.is_dir()
    pragmas = {p: db.conn.execute(f"PRAGMA {p}").fetchone()[0]
               for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}


def test_migrations_are_idempotent(db_path):
    first = store.open_db(db_path)
    schema_before = rows(first, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    applied = rows(first, "SELECT name FROM _sqlite_migrations")
    first.close()
    second = store.open_db(db_path)
    assert rows(second, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema_before
    assert rows(second, "SELECT name FROM _sqlite_migrations") == applied
    assert applied[0] == ("0001_initial",) and len(applied) == len(MIGRATIONS._migrations)
    second.close()


def test_describe_tables_lists_every_table(db):
    described = [name for name, purpose in store.describe_tables() if purpose]
    # sqlite_sequence is SQLite's own (AUTOINCREMENT), not ours to describe
    assert sorted(described) == sorted(t for t in db.table_names() if not t.startswith(("_", "sqlite_")))
    assert len(described) == len(set(described))


def test_open_db_under_a_regular_file_is_a_clear_error(tmp_path):
    (tmp_path / "state").write_text("")
    with pytest.raises(ConnectorError, match="Cannot open the database .*state/mirror.db"):
        store.open_db(tmp_path / "state" / "mirror.db")


def test_open_db_on_a_non_database_is_a_clear_error(tmp_path):
    bogus = tmp_path / "mirror.db"
    bogus.write_text("this is not sqlite " * 100)
    with pytest.raises(ConnectorError, match="Cannot open the database .*mirror.db"):
        store.open_db(bogus)


# --- read-only reader ---------------------------------------------------------------------------

def test_readonly_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(ConnectorError, match="No database at .*run a sync first"):
        store.open_db_readonly(tmp_path / "nothing.db")


def test_readonly_reads_committed_data_and_cannot_write(synced, db_path):
    reader = store.open_db_readonly(db_path)
    try:
        with synced.atomic():  # a writer mid-transaction does not block the reader
            synced.conn.execute("UPDATE dossiers SET state = 'refuse' WHERE number = 1001")
            assert rows(reader, "SELECT state FROM dossiers WHERE number = 1001") == [("accepte",)]
        assert rows(reader, "SELECT state FROM dossiers WHERE number = 1001") == [("refuse",)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute("DELETE FROM dossiers")
    finally:
        reader.close()


def test_readonly_refuses_an_unmigrated_database(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE dossiers (number INTEGER PRIMARY KEY)").connection.close()
    with pytest.raises(ConnectorError, match="predates this version.*0001_initial"):
        store.open_db_readonly(path)


# --- saving dossiers ----------------------------------------------------------------------------

def test_savers_refuse_to_run_outside_a_transaction(db):
    with pytest.raises(RuntimeError, match="inside `with db.atomic"):
        store.save_dossiers(db, DEMARCHE, page_nodes())
    with pytest.raises(RuntimeError):
        store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor="c", cursor_since=None)
    assert count(db, "dossiers") == 0


def test_saving_the_same_page_twice_adds_nothing(db):
    with db.atomic():
        first = store.save_dossiers(db, DEMARCHE, page_nodes())
    tables = ("dossiers", "champs", "annotations", "messages", "files", "dossier_labels", "labels")
    before = {t: count(db, t) for t in tables}
    with db.atomic():
        second = store.save_dossiers(db, DEMARCHE, page_nodes())
    assert (first.new, first.updated, first.unchanged) == (3, 0, 0)
    assert (second.new, second.updated, second.unchanged) == (0, 0, 3)
    assert {t: count(db, t) for t in tables} == before
    assert before == {"dossiers": 3, "champs": 28, "annotations": 4, "messages": 8, "files": 4,
                      "dossier_labels": 2, "labels": 2}


def test_a_new_signed_url_alone_does_not_rewrite_the_dossier(synced):
    fresh = node(1002)
    fresh["champs"][5]["files"][0]["url"] = "https://demarche.numerique.gouv.fr/blob?signature=new"
    with synced.atomic():
        counts = store.save_dossiers(synced, DEMARCHE, [fresh], seen_at="2026-11-04T11:00:00+00:00")
    assert (counts.updated, counts.unchanged) == (0, 1)
    assert "signature" not in rows(synced, "SELECT raw FROM dossiers WHERE number = 1002")[0][0]
    assert rows(synced, "SELECT url, url_seen_at FROM files WHERE dossier_number = 1002") == [
        ("https://demarche.numerique.gouv.fr/blob?signature=new", "2026-11-04T11:00:00+00:00")]


def test_dossier_columns(synced):
    got = {r[0]: r[1:] for r in rows(
        synced,
        "SELECT number, state, demandeur_type, demandeur_siret, demandeur_name, usager_email, "
        "groupe_instructeur_number, date_derniere_modification, date_expiration, connection_usager "
        "FROM dossiers")}
    assert got == {
        1001: ("accepte", "PersonneMorale", "21340172200017", "COMMUNE DE MONTPELLIER",
               "dgs@ville-montpellier.fr", 11, "2026-10-16T11:42:17+02:00", "2027-09-02T10:15:04+02:00",
               "password"),
        1002: ("en_construction", "PersonneMoraleIncomplete", "21340270400018", None,
               "secretariat.mairie@saint-jean-de-vedas.fr", 12, "2026-11-03T17:45:12+01:00",
               "2027-10-28T16:20:41+01:00", "france_connect"),
        1003: ("en_instruction", "PersonneMorale", "21310149800018", "COMMUNE DE COLOMIERS",
               "mairie@colomiers.fr", 12, "2026-10-25T02:10:00+01:00", None, "password"),
    }
    assert rows(synced, "SELECT label_id FROM dossier_labels WHERE dossier_number = 1001") == [
        ("TGFiZWwtNzE=",)]


def test_champ_values_are_typed(synced):
    got = {label: (kind, value) for label, kind, value in rows(
        synced, "SELECT label, type, value FROM champs WHERE dossier_number = 1001 AND row_id IS NULL")}
    assert got == {
        "Identification de la collectivité": ("HeaderSectionChamp", None),
        "SIRET de la collectivité": ("SiretChamp", "21340172200017"),
        "Département": ("DepartementChamp", '{"name":"Hérault","code":"34"}'),
        "Signataire (Prénom NOM)": ("TextChamp", "Michaël DELAFOSSE"),
        "Qualité du signataire": ("DropDownListChamp", "Maire"),
        "Écoles concernées": ("RepetitionChamp", 2),
        "Nombre d'écoles": ("IntegerNumberChamp", 2),
        "Coût annuel (€ TTC)": ("DecimalNumberChamp", 82.0),
        "Services souhaités": ("MultipleDropDownListChamp", '["Messagerie","Médiacentre"]'),
        "Référent ville désigné ?": ("YesNoChamp", 0),
        "Je m'engage à transmettre la convention signée": ("CheckboxChamp", 1),
        "Délibération du conseil municipal": ("PieceJustificativeChamp", 1),
    }
    assert rows(synced, "SELECT type, value, string_value FROM annotations WHERE dossier_number = 1001 "
                        "ORDER BY position") == [
        ("DateChamp", "2026-09-02", "2 septembre 2026"),
        ("CheckboxChamp", 0, "Non"),
        ("TextChamp", "relance 1 envoyée le 2026-10-15", "relance 1 envoyée le 2026-10-15"),
    ]
    assert rows(synced, "SELECT value FROM champs WHERE dossier_number = 1003 AND type = 'IntegerNumberChamp'") \
        == [(None,)]


def test_repetition_rows_keep_their_row_index_and_parent(synced):
    repetition = rows(synced, "SELECT champ_id FROM champs WHERE dossier_number = 1001 "
                              "AND type = 'RepetitionChamp'")[0][0]
    got = rows(synced, "SELECT row_index, position, type, parent_id, value FROM champs "
                       "WHERE dossier_number = 1001 AND row_id IS NOT NULL ORDER BY row_index, position")
    commune = '{"commune":{"name":"Montpellier","code":"34172","postalCode":"34000"},' \
              '"departement":{"name":"Hérault","code":"34"}}'
    assert got == [
        (0, 0, "CommuneChamp", repetition, commune),
        (0, 1, "TextChamp", repetition, "Ecole primaire Jules Ferry, MONTPELLIER (0340960Y)"),
        (1, 0, "CommuneChamp", repetition, commune),
        (1, 1, "TextChamp", repetition, "Ecole maternelle Les Aubes, MONTPELLIER (0341234C)"),
    ]
    assert len({r[0] for r in rows(synced, "SELECT row_id FROM champs WHERE row_id IS NOT NULL "
                                           "AND dossier_number = 1001")}) == 2


def test_engagement_juridique_has_a_typed_value(synced):
    [(kind, string_value, value, raw)] = rows(
        synced, "SELECT type, string_value, value, raw FROM champs WHERE dossier_number = 1002 "
                "AND label = 'Engagement juridique'")
    assert (kind, string_value, raw) == ("EngagementJuridiqueChamp", "EJ-2026-000417", None)
    assert json.loads(value) == {"montantEngage": "1230.00", "montantPaye": None}
    assert rows(synced, "SELECT count(*) FROM champs WHERE raw IS NOT NULL") == [(0,)]


def test_message_senders_and_discarded_messages(synced):
    got = rows(synced, "SELECT dossier_number, email, sender, discarded FROM messages "
                       "ORDER BY dossier_number, created_at")
    assert got == [
        (1001, "contact@demarche.numerique.gouv.fr", "system", 0),
        (1001, "agent.ent@ac-montpellier.fr", "instructeur", 0),
        (1001, "dgs@ville-montpellier.fr", "usager", 1),
        (1001, "dgs@ville-montpellier.fr", "usager", 0),
        (1002, "contact@demarches-simplifiees.fr", "system", 0),  # legacy system address
        (1003, "contact@demarche.numerique.gouv.fr", "system", 0),
        (1003, "REFERENT.ENT@ac-toulouse.fr", "instructeur", 0),  # groupe member, any case
        (1003, "dsi@toulouse-metropole.fr", "usager", 0),  # invited co-author
    ]


def test_followers_count_as_instructeurs_without_a_descriptor(db):
    with db.atomic():
        store.save_dossiers(db, DEMARCHE, [node(1001), node(1003)])
    assert rows(db, "SELECT email, sender FROM messages WHERE email LIKE '%@ac-%' ORDER BY email") == [
        ("REFERENT.ENT@ac-toulouse.fr", "instructeur"),  # agent of a traitement
        ("agent.ent@ac-montpellier.fr", "instructeur"),  # follower
    ]


@pytest.mark.parametrize("email, sender", [
    ("contact@demarche.numerique.gouv.fr", "system"),
    ("Contact@TPS.apientreprise.fr", "system"),
    ("contact@demarches.numerique.gouv.fr", "system"),
    ("agent@ac-montpellier.fr", "instructeur"),
    ("mairie@example.fr", "usager"),
    (None, "usager"),
])
def test_classify_sender(email, sender):
    assert store.classify_sender(email, {"agent@ac-montpellier.fr"}) == sender


def test_files_rows(synced):
    got = rows(synced, "SELECT dossier_number, owner_kind, filename, content_type, byte_size, virus_scan "
                       "FROM files ORDER BY dossier_number, filename")
    assert got == [
        (1001, "message", "convention_ENT_signee.pdf", "application/pdf", 356810, "safe"),
        (1001, "champ", "deliberation_CM_2026-06-30.pdf", "application/pdf", 184233, "safe"),
        (1002, "champ", "délibération 2026-10.pdf", "application/pdf", 92011, "pending"),
        (1003, "message", "liste_ecoles.png", "image/png", 48213, "safe"),
    ]
    assert [f["filename"] for f in store.files_to_download(synced, DEMARCHE)] == [
        "deliberation_CM_2026-06-30.pdf", "convention_ENT_signee.pdf", "délibération 2026-10.pdf",
        "liste_ecoles.png"]


def test_update_replaces_children_exactly_and_keeps_download_state(synced, tmp_path):
    keys = {r[0]: r[1] for r in rows(synced, "SELECT filename, file_key FROM files WHERE dossier_number = 1001")}
    assert store.record_file_download(synced, keys["convention_ENT_signee.pdf"], tmp_path / "conv.pdf", True)
    assert store.record_file_download(synced, keys["deliberation_CM_2026-06-30.pdf"], tmp_path / "delib.pdf", True)

    changed = node(1001)
    changed["dateDerniereModification"] = "2026-10-20T09:00:00+02:00"
    repetition = changed["champs"][5]
    repetition["rows"] = repetition["rows"][:1]  # one school removed
    changed["champs"][8]["integerNumber"] = "1"
    changed["champs"][11]["files"] = []  # délibération removed
    changed["messages"] = changed["messages"][:3]  # the discarded one purged
    changed["labels"] = []
    with synced.atomic():
        counts = store.save_dossiers(synced, DEMARCHE, [changed])

    assert (counts.new, counts.updated, counts.unchanged) == (0, 1, 0)
    assert counts.removed_files == [tmp_path / "delib.pdf"]
    expected_champs = {c["id"] for c in changed["champs"]} | {c["id"] for c in repetition["rows"][0]["champs"]}
    assert {r[0] for r in rows(synced, "SELECT champ_id FROM champs WHERE dossier_number = 1001")} \
        == expected_champs
    assert rows(synced, "SELECT value FROM champs WHERE dossier_number = 1001 AND type = 'RepetitionChamp'") \
        == [(1,)]
    assert rows(synced, "SELECT count(*) FROM messages WHERE dossier_number = 1001") == [(3,)]
    assert rows(synced, "SELECT count(*) FROM dossier_labels WHERE dossier_number = 1001") == [(0,)]
    assert rows(synced, "SELECT filename, local_path, checksum_ok FROM files WHERE dossier_number = 1001") \
        == [("convention_ENT_signee.pdf", str(tmp_path / "conv.pdf"), 1)]
    assert rows(synced, "SELECT count(*) FROM champs WHERE dossier_number <> 1001") == [(12,)]


def test_a_stale_node_does_not_overwrite_a_newer_dossier(synced):
    stale = node(1001)
    stale["dateDerniereModification"] = "2026-10-01T09:00:00+02:00"
    stale["state"] = "en_instruction"
    with synced.atomic():
        counts = store.save_dossiers(synced, DEMARCHE, [stale])
    assert (counts.updated, counts.unchanged) == (0, 1)
    assert rows(synced, "SELECT state FROM dossiers WHERE number = 1001") == [("accepte",)]


def test_record_file_download_for_a_vanished_file_says_so(synced, tmp_path):
    assert store.record_file_download(synced, "no-such-key", tmp_path / "x.pdf", True) is False


def test_a_failed_checksum_keeps_the_file_in_the_download_list(synced, tmp_path):
    [key] = rows(synced, "SELECT file_key FROM files WHERE filename = 'liste_ecoles.png'")[0]
    store.record_file_download(synced, key, tmp_path / "liste.png", checksum_ok=False)
    assert "liste_ecoles.png" in [f["filename"] for f in store.files_to_download(synced)]
    store.record_file_download(synced, key, tmp_path / "liste.png", checksum_ok=True)
    assert "liste_ecoles.png" not in [f["filename"] for f in store.files_to_download(synced)]


# --- démarche descriptor ------------------------------------------------------------------------

def test_save_demarche(synced):
    assert rows(synced, "SELECT number, title, declarative, active_revision_id FROM demarches") == [
        (DEMARCHE, "ENT-École 2026-2027 : adhésion des collectivités (académies de Montpellier et Toulouse)",
         "accepte", "UHJvY2VkdXJlUmV2aXNpb24tODg=")]
    assert rows(synced, "SELECT private, count(*) FROM champ_descriptors GROUP BY private") == [(0, 15), (1, 3)]
    assert rows(synced, "SELECT label, options, other_option FROM champ_descriptors WHERE options IS NOT NULL "
                        "ORDER BY position") == [
        ("Qualité du signataire", '["Maire","Président(e)","Autre"]', 0),
        ("Services souhaités", '["Messagerie","Cahier de textes","Médiacentre"]', None)]
    assert rows(synced, "SELECT type FROM champ_descriptors WHERE parent_id IS NOT NULL ORDER BY position") == [
        ("CommuneChampDescriptor",), ("AnnuaireEducationChampDescriptor",)]
    assert rows(synced, "SELECT number, closed FROM groupes_instructeurs ORDER BY number") == [
        (11, 0), (12, 0), (13, 1)]
    assert rows(synced, "SELECT g.number, i.email FROM groupe_instructeur_members m "
                        "JOIN groupes_instructeurs g ON g.number = m.groupe_instructeur_number "
                        "JOIN instructeurs i ON i.id = m.instructeur_id ORDER BY 1, 2") == [
        (11, "agent.ent@ac-montpellier.fr"), (11, "ds-connector@ac-montpellier.fr"),
        (12, "Referent.ENT@ac-toulouse.fr"), (12, "ds-connector@ac-montpellier.fr")]


def test_save_demarche_again_replaces_descriptors_and_membership(synced):
    descriptor = load("demarche_descriptor")["demarche"]
    descriptor["activeRevision"]["annotationDescriptors"].pop()
    descriptor["groupeInstructeurs"] = descriptor["groupeInstructeurs"][:1]
    descriptor["groupeInstructeurs"][0]["instructeurs"].pop()
    with synced.atomic():
        store.save_demarche(synced, descriptor)
    assert rows(synced, "SELECT count(*) FROM champ_descriptors WHERE private = 1") == [(2,)]
    assert rows(synced, "SELECT groupe_instructeur_number, instructeur_id FROM groupe_instructeur_members") \
        == [(11, "SW5zdHJ1Y3RldXItNTAx")]
    assert rows(synced, "SELECT count(*) FROM demarches") == [(1,)]


# --- deletions ----------------------------------------------------------------------------------

def test_save_deleted_purges_children_and_keeps_a_tombstone(synced, tmp_path):
    [key] = rows(synced, "SELECT file_key FROM files WHERE dossier_number = 1002")[0]
    store.record_file_download(synced, key, tmp_path / "delib-1002.pdf", True)
    nodes = load("deleted_dossiers_page")["demarche"]["deletedDossiers"]["nodes"]
    with synced.atomic():
        paths = store.save_deleted(synced, DEMARCHE, nodes)
    assert paths == [tmp_path / "delib-1002.pdf"]
    for table in ("champs", "annotations", "messages", "files", "dossier_labels"):
        assert rows(synced, f"SELECT count(*) FROM {table} WHERE dossier_number = 1002") == [(0,)]
    assert rows(synced, "SELECT count(*) FROM dossiers WHERE number = 1002") == [(0,)]
    tombstones = rows(synced, "SELECT number, demarche_number, state, reason, date_suppression, recorded_at "
                              "FROM tombstones ORDER BY number")
    assert [t[:5] for t in tombstones] == [
        (987, DEMARCHE, "accepte", "expired", "2026-11-02T03:00:00+01:00"),
        (1002, DEMARCHE, "en_construction", "user_request", "2026-11-05T08:00:00+01:00")]

    with synced.atomic():  # idempotent
        assert store.save_deleted(synced, DEMARCHE, nodes) == []
    assert rows(synced, "SELECT number, demarche_number, state, reason, date_suppression, recorded_at "
                        "FROM tombstones ORDER BY number") == tombstones
    assert count(synced, "dossiers") == 2


def test_pending_flag_is_set_then_cleared_when_the_dossier_comes_back(synced):
    nodes = load("pending_deleted_dossiers_page")["demarche"]["pendingDeletedDossiers"]["nodes"]
    with synced.atomic():
        assert store.save_pending_deleted(synced, DEMARCHE, nodes) == 1
        assert store.save_pending_deleted(synced, DEMARCHE, nodes) == 0
    assert rows(synced, "SELECT number, pending_deletion, pending_deletion_date FROM dossiers "
                        "WHERE pending_deletion = 1") == [(1003, 1, "2026-11-04T10:00:00+01:00")]
    assert rows(synced, "SELECT number, reason FROM pending_deletions ORDER BY number") == [
        (1003, "instructeur_request"), (1010, "user_request")]  # 1010 is not known locally

    restored = node(1003)
    restored["dateDerniereModification"] = "2026-11-06T09:00:00+01:00"
    with synced.atomic():
        counts = store.save_dossiers(synced, DEMARCHE, [restored])
    assert counts.updated == 1
    assert rows(synced, "SELECT pending_deletion, pending_deletion_date FROM dossiers WHERE number = 1003") \
        == [(0, None)]
    assert rows(synced, "SELECT number FROM pending_deletions") == [(1010,)]


def test_an_unchanged_dossier_seen_again_also_leaves_the_trash(synced):
    with synced.atomic():
        store.save_pending_deleted(synced, DEMARCHE, [
            {"id": "x", "number": 1001, "state": "accepte", "reason": "instructeur_request",
             "dateSupression": "2026-11-04T10:00:00+01:00"}])
        counts = store.save_dossiers(synced, DEMARCHE, [node(1001)])
    assert counts.unchanged == 1
    assert rows(synced, "SELECT pending_deletion FROM dossiers WHERE number = 1001") == [(0,)]
    assert count(synced, "pending_deletions") == 0


def test_a_tombstoned_number_that_reappears_is_reinserted(synced):
    nodes = load("deleted_dossiers_page")["demarche"]["deletedDossiers"]["nodes"]
    with synced.atomic():
        store.save_deleted(synced, DEMARCHE, nodes)
        counts = store.save_dossiers(synced, DEMARCHE, [node(1002)])
    assert counts.new == 1
    assert rows(synced, "SELECT number FROM tombstones") == [(987,)]
    assert rows(synced, "SELECT count(*) FROM champs WHERE dossier_number = 1002") == [(9,)]


def test_confirm_vanished_tombstones_a_known_dossier(synced):
    paths = store.confirm_vanished(synced, 1003)
    assert paths == []
    assert rows(synced, "SELECT number, state, reason, date_suppression FROM tombstones") == [
        (1003, "en_instruction", "vanished", None)]
    assert rows(synced, "SELECT count(*) FROM messages WHERE dossier_number = 1003") == [(0,)]
    assert store.confirm_vanished(synced, 424242) == []  # unknown: nothing to do
    # DS's own record later replaces the local verdict
    with synced.atomic():
        store.save_deleted(synced, DEMARCHE, [{"id": "RGVsZXRlZERvc3NpZXItMzM=", "number": 1003,
                                               "state": "en_instruction", "reason": "expired",
                                               "dateSupression": "2026-11-20T03:00:00+01:00"}])
    assert rows(synced, "SELECT reason, date_suppression FROM tombstones WHERE number = 1003") == [
        ("expired", "2026-11-20T03:00:00+01:00")]


# --- quarantine ---------------------------------------------------------------------------------

def test_quarantine_counts_attempts_and_clears(synced):
    store.quarantine(synced, DEMARCHE, 1003, "invalid_null: Commune.code", '{"data": null}')
    store.quarantine(synced, DEMARCHE, 1003, "timeout", None)
    store.quarantine(synced, DEMARCHE, None, "timeout on page", None)
    assert rows(synced, "SELECT dossier_number, error, attempts FROM quarantine ORDER BY id") == [
        (1003, "timeout", 2), (None, "timeout on page", 1)]
    assert rows(synced, "SELECT quarantined FROM dossiers WHERE number = 1003") == [(1,)]
    store.clear_quarantine(synced, 1003)
    assert rows(synced, "SELECT quarantined FROM dossiers WHERE number = 1003") == [(0,)]
    assert rows(synced, "SELECT dossier_number FROM quarantine") == [(None,)]


def test_a_dossier_saved_again_leaves_the_quarantine(synced):
    store.quarantine(synced, DEMARCHE, 1001, "timeout", None)
    with synced.atomic():
        store.save_dossiers(synced, DEMARCHE, [node(1001)])
    assert rows(synced, "SELECT quarantined FROM dossiers WHERE number = 1001") == [(0,)]
    assert count(synced, "quarantine") == 0


# --- bookmarks ----------------------------------------------------------------------------------

def test_bookmark_cursor_is_never_overwritten_with_none(db):
    assert store.get_bookmark(db, DEMARCHE, "dossiers") is None
    since = "2026-10-01T00:00:00+02:00"
    with db.atomic():
        store.set_bookmark(db, DEMARCHE, "dossiers", updated_since=since, after_cursor="cursor-1",
                           cursor_since=since, max_seen="2026-10-15T09:00:00+02:00")
    with db.atomic():  # an empty page: endCursor null
        mark = store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor=None, cursor_since=since)
    assert (mark.after_cursor, mark.cursor_since, mark.updated_since, mark.max_seen) == (
        "cursor-1", since, since, "2026-10-15T09:00:00+02:00")
    assert mark.last_success_at is None
    assert store.get_bookmark(db, DEMARCHE, "deleted") is None


def test_a_cursor_needs_the_filter_that_minted_it(db):
    with db.atomic(), pytest.raises(ValueError, match="cursor_since"):
        store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor="cursor-1")


def test_unknown_stream_is_refused(db):
    with pytest.raises(ValueError, match="unknown stream 'dossier'"):
        store.get_bookmark(db, DEMARCHE, "dossier")


def test_max_seen_compares_instants_across_daylight_saving(db):
    with db.atomic():
        store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor="a", cursor_since=None,
                           max_seen="2026-10-25T02:30:00+02:00")  # 00:30 UTC
        store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor="b", cursor_since=None,
                           max_seen="2026-10-25T02:10:00+01:00")  # 01:10 UTC: later
        store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor="c", cursor_since=None,
                           max_seen="2026-10-24T23:00:00+02:00")  # earlier: ignored
    assert store.get_bookmark(db, DEMARCHE, "dossiers").max_seen == "2026-10-25T02:10:00+01:00"


def test_finish_stream_clears_the_cursor_and_caps_the_watermark_at_the_signpost(db):
    with db.atomic():
        store.set_bookmark(db, DEMARCHE, "dossiers", after_cursor="c", cursor_since=None,
                           max_seen="2026-11-03T17:45:12+01:00")
        mark = store.finish_stream(db, DEMARCHE, "dossiers", signpost="2026-11-03T15:00:00+00:00")
    assert (mark.after_cursor, mark.cursor_since) == (None, None)
    assert mark.updated_since == "2026-11-03T15:00:00+00:00"  # signpost < max_seen (16:45 UTC)
    assert mark.last_success_at is not None
    with db.atomic():
        mark = store.finish_stream(db, DEMARCHE, "dossiers", signpost="2026-11-04T09:00:00+00:00")
    assert mark.updated_since == "2026-11-03T17:45:12+01:00"  # max_seen < signpost


def test_finish_stream_with_nothing_seen_keeps_the_watermark(db):
    with db.atomic():
        store.set_bookmark(db, DEMARCHE, "deleted", updated_since="2026-10-01T00:00:00+02:00")
        mark = store.finish_stream(db, DEMARCHE, "deleted", signpost="2026-11-04T09:00:00+00:00")
    assert mark.updated_since == "2026-10-01T00:00:00+02:00"


def test_a_rolled_back_page_leaves_rows_and_bookmark_unchanged(synced):
    with synced.atomic():
        store.set_bookmark(synced, DEMARCHE, "dossiers", after_cursor="page-1", cursor_since=None)
    changed = node(1001)
    changed["dateDerniereModification"] = "2026-10-20T09:00:00+02:00"
    changed["state"] = "refuse"
    with pytest.raises(RuntimeError, match="boom"), synced.atomic():
        store.save_dossiers(synced, DEMARCHE, [changed])
        store.set_bookmark(synced, DEMARCHE, "dossiers", after_cursor="page-2", cursor_since=None)
        raise RuntimeError("boom")
    assert rows(synced, "SELECT state FROM dossiers WHERE number = 1001") == [("accepte",)]
    assert store.get_bookmark(synced, DEMARCHE, "dossiers").after_cursor == "page-1"


CRASHING_CHILD = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from connector import store
    db = store.open_db(Path(sys.argv[1]))
    nodes = json.loads(Path(sys.argv[2]).read_text())
    db.begin()
    store.save_dossiers(db, 4242, nodes)
    store.confirm_vanished(db, 1003)
    store.set_bookmark(db, 4242, "dossiers", after_cursor="page-2", cursor_since=None,
                       max_seen="2026-12-01T00:00:00+01:00")
    print("written", flush=True)
    os._exit(1)  # dies before COMMIT
""")


def test_a_process_killed_before_commit_leaves_rows_and_bookmark_unchanged(synced, db_path, tmp_path):
    with synced.atomic():
        store.set_bookmark(synced, DEMARCHE, "dossiers", after_cursor="page-1", cursor_since=None,
                           max_seen="2026-11-03T17:45:12+01:00")
    before = {t: rows(synced, f"SELECT * FROM {t} ORDER BY 1, 2") for t in
              ("dossiers", "champs", "messages", "files", "tombstones", "sync_state")}
    changed = [node(1001), node(1002)]
    for n in changed:
        n["dateDerniereModification"] = "2026-12-01T00:00:00+01:00"
        n["state"] = "sans_suite"
        n["champs"] = []
    nodes_file = tmp_path / "page2.json"
    nodes_file.write_text(json.dumps(changed))
    child = subprocess.run([sys.executable, "-c", CRASHING_CHILD, str(db_path), str(nodes_file)],
                           capture_output=True, text=True)
    assert (child.returncode, child.stdout) == (1, "written\n"), child.stderr
    synced.close()
    reopened = store.open_db(db_path)
    assert {t: rows(reopened, f"SELECT * FROM {t} ORDER BY 1, 2") for t in before} == before
    assert store.get_bookmark(reopened, DEMARCHE, "dossiers").after_cursor == "page-1"
    reopened.close()


# --- runs ---------------------------------------------------------------------------------------

def test_runs_record_counts_and_interrupted_runs(db):
    crashed = store.start_run(db, "daemon", [DEMARCHE])
    run = store.start_run(db, "once", [4243, DEMARCHE])
    store.finish_run(db, run, requests=5, pages=3, dossiers=250, new=200, updated=50, deleted=2,
                     quarantined=1, errors=0, status="partial")
    got = {r[0]: r[1:] for r in rows(db, "SELECT id, kind, demarches, status, requests, pages, dossiers, "
                                         "new, updated, deleted, quarantined, errors FROM sync_runs")}
    assert got == {
        crashed: ("daemon", "[4242]", "interrupted", 0, 0, 0, 0, 0, 0, 0, 0),
        run: ("once", "[4242, 4243]", "partial", 5, 3, 250, 200, 50, 2, 1, 0),
    }
    assert rows(db, "SELECT count(*) FROM sync_runs WHERE finished_at IS NULL") == [(0,)]
    with pytest.raises(ValueError, match="unknown run status 'done'"):
        store.finish_run(db, run, status="done")
