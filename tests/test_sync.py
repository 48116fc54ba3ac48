"""The sync engine end to end: real HTTP to the simulator, a real SQLite file, real downloads.

Expectations come from the simulator's World records with DS's rules written out here (docs/ds-api.md
§5-7), or from a direct GraphQL read of the same dossiers with the connector's own operation; never
from the connector's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from connector.simulator.state import SYSTEM_EMAIL, Champ, Dossier, World, typed_id
from connector.sync import engine
from syncenv import dump, read_db, remote_dossiers, simulator_config, sync, without_urls

# Bookkeeping a no-change sync may rewrite: the run log, when each stream last ran, and the signed
# URLs of files not downloaded yet, refreshed whenever DS serves their dossier again (they expire).
RUN_BOOKKEEPING = {"sync_runs": {"*"}, "sync_state": {"updated_at", "last_success_at"},
                   "files": {"url", "url_seen_at"}}


def visible(d: Dossier) -> bool:
    """DS's ``visible_by_administration.for_api_v2`` (docs/ds-api.md §5): no brouillon, nothing hidden by
    the administration or by automatic expiry, no en_construction dossier hidden by its usager."""
    if d.state == "brouillon" or d.hidden_by_administration_at or d.hidden_by_expired_at:
        return False
    return not (d.state == "en_construction" and d.hidden_by_user_at)


def expected_numbers(world: World, demarche: int) -> set[int]:
    return {d.number for d in world.dossiers.values() if d.demarche_number == demarche and visible(d)}


def sender(world: World, email: str) -> str:
    """docs/ds-api.md §7: system messages come from DS's contact address, instructeurs' from their own."""
    if email == SYSTEM_EMAIL:
        return "system"
    return "instructeur" if email in {i.email for i in world.instructeurs.values()} else "usager"


def world_files(d: Dossier) -> list[tuple]:
    """(owner_kind, filename, checksum, size, scan) of every file DS lists for the dossier: infected
    and integrity_error ones are dropped from the API, a soft-deleted message has none (§7)."""
    out = []

    def champs(kind: str, items: list[Champ]) -> None:
        for c in items:
            out.extend((kind, f.filename, f.checksum, f.size, f.virus_scan) for f in c.files)
            for row in c.rows:
                champs(kind, row.champs)

    champs("champ", d.champs)
    champs("annotation", d.annotations)
    for m in d.messages:
        if m.discarded_at is None:
            out.extend(("message", f.filename, f.checksum, f.size, f.virus_scan) for f in m.attachments)
    return sorted(f for f in out if f[4] not in ("infected", "integrity_error"))


def champ_rows(champs: list[dict]) -> set[tuple]:
    rows = set()
    for c in champs:
        rows.add((c["id"], None, c["__typename"], c["label"], c["stringValue"]))
        for row in c.get("rows") or []:
            rows |= {(x["id"], row["id"], x["__typename"], x["label"], x["stringValue"]) for x in row["champs"]}
    return rows


def typed_value(c: Champ) -> Any:
    """The ``value`` column DS's typed value should give, for the types checked here."""
    if c.type in ("CheckboxChamp", "YesNoChamp"):
        return None if c.value is None else int(bool(c.value))
    if c.type in ("MultipleDropDownListChamp", "DepartementChamp"):
        return None if c.value in (None, []) else json.dumps(c.value, ensure_ascii=False, separators=(",", ":"))
    if c.type == "CiviliteChamp":  # the World keeps the label, the API its enum (M, Mme)
        return {"M.": "M"}.get(c.value, c.value)
    return c.value


def md5_b64(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def on_disk(config) -> list[Path]:
    root = config.sync.download_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_downloads_are_intact(db) -> int:
    """Every downloaded row points at a file with the row's checksum and size; returns the count."""
    rows = db.execute("SELECT * FROM files WHERE local_path IS NOT NULL").fetchall()
    for row in rows:
        path = Path(row["local_path"])
        assert row["checksum_ok"] == 1 and row["downloaded_at"]
        assert path.stat().st_size == row["byte_size"] and md5_b64(path) == row["checksum"], row["filename"]
    return len(rows)


def downloaded_dossier(db: Any) -> tuple[int, list[Path]]:
    """The first dossier (by number) with downloaded attachments, and their local paths."""
    number = next(n for (n,) in db.execute(
        "SELECT dossier_number FROM files WHERE local_path IS NOT NULL ORDER BY dossier_number"))
    paths = [Path(p) for (p,) in db.execute(
        "SELECT local_path FROM files WHERE dossier_number = ? AND local_path IS NOT NULL", [number])]
    return number, paths


def one(world: World, demarche: int | None = None, **where: Any) -> Dossier:
    """The first visible dossier (by number) matching ``where``."""
    for d in sorted(world.dossiers.values(), key=lambda d: d.number):
        if visible(d) and (demarche is None or d.demarche_number == demarche) and all(
                getattr(d, k) == v for k, v in where.items()):
            return d
    raise LookupError(where)


def scalar(db, sql: str, *params: Any) -> Any:
    row = db.execute(sql, params).fetchone()
    return None if row is None else row[0]


# --- the full mirror -------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["none", "messages", "all"])
def test_full_sync_mirrors_exactly_what_the_simulator_holds(simulator, tmp_path, policy):
    world = simulator.world
    # A terminated dossier the usager deleted stays listed, with dateSuppressionParUsager (§5).
    kept = one(world, state="accepte")
    simulator.control("hide", number=kept.number, by="usager")
    hidden = [d for d in world.dossiers.values() if not visible(d)]
    assert {d.state for d in hidden} >= {"brouillon"}, "the seeded world lost its brouillons"
    assert any(d.hidden_by_administration_at for d in hidden) and any(d.hidden_by_expired_at for d in hidden)
    assert any(d.state == "en_construction" and d.hidden_by_user_at for d in hidden)

    config = simulator_config(tmp_path, simulator, attachments=policy)
    report = sync(config)

    assert report.status == "ok" and report.exit_code == 0
    db = read_db(config)
    total = 0
    for demarche in world.demarches:
        expected = expected_numbers(world, demarche)
        local = [n for (n,) in db.execute("SELECT number FROM dossiers WHERE demarche_number = ?", [demarche])]
        assert sorted(local) == sorted(expected)
        total += len(expected)
        remote = remote_dossiers(simulator, demarche)
        assert set(remote) == expected
        for number, node in remote.items():
            row = db.execute("SELECT * FROM dossiers WHERE number = ?", [number]).fetchone()
            assert json.loads(row["raw"]) == without_urls(node)
            assert (row["state"], row["date_derniere_modification"], row["id"]) == (
                node["state"], node["dateDerniereModification"], node["id"])
            for table, key in (("champs", "champs"), ("annotations", "annotations")):
                local_rows = db.execute(f"SELECT champ_id, row_id, type, label, string_value FROM {table} "
                                        "WHERE dossier_number = ?", [number]).fetchall()
                assert {tuple(r) for r in local_rows} == champ_rows(node[key])
                assert len(local_rows) == len(champ_rows(node[key]))
    assert report.total("new") == total and report.total("dossiers") == total
    assert report.requests == 4 * len(world.demarches)  # descriptor + one page of each stream
    assert not {d.number for d in hidden} & {n for (n,) in db.execute("SELECT number FROM dossiers")}
    assert scalar(db, "SELECT date_suppression_par_usager IS NOT NULL FROM dossiers WHERE number = ?",
                  kept.number) == 1

    # Typed champ values, against the World's records.
    checked = Counter()
    for d in filter(visible, world.dossiers.values()):
        for c in d.champs:
            if c.type in ("TextChamp", "CheckboxChamp", "YesNoChamp", "DropDownListChamp",
                          "MultipleDropDownListChamp", "DepartementChamp", "CiviliteChamp"):
                value = scalar(db, "SELECT value FROM champs WHERE dossier_number = ? AND champ_id = ?",
                               d.number, typed_id("Champ", c.stable_id))
                assert value == typed_value(c), (d.number, c.label)
                checked[c.type] += 1
    assert len(checked) == 7 and min(checked.values()) >= 5

    # Messages, with the sender DS does not give (§7): every kind is there.
    expected_messages = sorted(
        (typed_id("Commentaire", m.id), d.number, m.email, sender(world, m.email),
         "" if m.discarded_at else m.body, int(m.discarded_at is not None))
        for d in filter(visible, world.dossiers.values()) for m in d.messages)
    local_messages = sorted(tuple(r) for r in db.execute(
        "SELECT id, dossier_number, email, sender, body, discarded FROM messages"))
    assert local_messages == expected_messages
    assert {m[3] for m in local_messages} == {"system", "instructeur", "usager"}

    # File rows, and what the policy downloads.
    for d in filter(visible, world.dossiers.values()):
        local_files = sorted(tuple(r) for r in db.execute(
            "SELECT owner_kind, filename, checksum, byte_size, virus_scan FROM files WHERE dossier_number = ?",
            [d.number]))
        assert local_files == world_files(d)
    wanted = {"none": (), "messages": ("message",), "all": ("message", "champ", "annotation")}[policy]
    safe = Counter(r["owner_kind"] for r in db.execute("SELECT owner_kind FROM files WHERE virus_scan = 'safe'"))
    assert safe["message"] > 0 and safe["champ"] > 0
    assert scalar(db, "SELECT count(*) FROM files WHERE virus_scan = 'pending'") > 0
    downloaded = Counter(r["owner_kind"] for r in db.execute(
        "SELECT owner_kind FROM files WHERE local_path IS NOT NULL"))
    assert downloaded == Counter({k: safe[k] for k in wanted if safe[k]})
    assert scalar(db, "SELECT count(*) FROM files WHERE virus_scan != 'safe' AND local_path IS NOT NULL") == 0
    assert assert_downloads_are_intact(db) == len(on_disk(config)) == report.total("files")


def test_virus_scans_pending_files_wait_and_infected_ones_never_come(simulator, tmp_path, monkeypatch):
    world = simulator.world
    d = one(world, state="en_construction")
    # A file still being scanned, on a dossier nobody touches afterwards.
    scanned = one(world, state="accepte")
    (key,) = simulator.control("message", number=scanned.number, content_type="application/pdf",
                               filename="convention.pdf", virus_scan="pending")["attachments"]
    pending = next(f for m in scanned.messages for f in m.attachments if f.key == key)
    simulator.control("advance", seconds=3600)  # later changes move the watermark past the overlap
    infected = simulator.control("message", number=d.number, content_type="application/pdf",
                                 filename="virus.pdf", virus_scan="infected")
    config = simulator_config(tmp_path, simulator, attachments="messages")

    sync(config)
    db = read_db(config)
    row = db.execute("SELECT * FROM files WHERE checksum = ?", [pending.checksum]).fetchone()
    assert row["virus_scan"] == "pending" and row["local_path"] is None
    assert scalar(db, "SELECT count(*) FROM files WHERE filename = 'virus.pdf'") == 0
    assert scalar(db, "SELECT count(*) FROM messages WHERE id = ?", infected["id"]) == 1

    # The scan ends: DS does not bump the dossier (§7), so only the pending-scan re-read can see it,
    # and not before PENDING_SCAN_RECHECK.
    simulator.control("scan", key=pending.key)
    report = sync(config)
    assert report.requests == 3 * len(world.demarches) and report.total("rereads") == 0
    assert scalar(db, "SELECT local_path FROM files WHERE checksum = ?", pending.checksum) is None

    monkeypatch.setattr(engine, "PENDING_SCAN_RECHECK", timedelta(0))
    report = sync(config)
    # Only a re-read can see the finished scan (the dossier did not change): ours was re-read, and
    # maybe other dossiers the seed left with a scan under way.
    row = db.execute("SELECT * FROM files WHERE checksum = ?", [pending.checksum]).fetchone()
    assert row["virus_scan"] == "safe" and row["local_path"] is not None
    assert report.total("rereads") >= 1 and report.total("files") >= 1
    assert assert_downloads_are_intact(db) == len(on_disk(config))
    assert not [p for p in on_disk(config) if "virus" in p.name]


def test_a_scan_still_pending_a_day_later_is_left_to_the_full_pass(simulator, tmp_path, monkeypatch):
    """DS's scans take minutes; re-reading a stuck one at every sync would cost requests forever."""
    world = simulator.world
    scanned = one(world, state="accepte")
    (key,) = simulator.control("message", number=scanned.number, content_type="application/pdf",
                               filename="convention.pdf", virus_scan="pending")["attachments"]
    simulator.control("advance", seconds=2 * 86400)  # two days on, other dossiers change
    others = [next(d.number for d in world.dossiers.values()
                   if d.demarche_number == n and visible(d) and d.number != scanned.number)
              for n in world.demarches]
    simulator.control("touch", numbers=others)
    config = simulator_config(tmp_path, simulator, attachments="messages")
    monkeypatch.setattr(engine, "PENDING_SCAN_RECHECK", timedelta(0))
    sync(config)
    db = read_db(config)
    stuck = "SELECT virus_scan, local_path FROM files WHERE dossier_number = ? AND filename = 'convention.pdf'"
    simulator.control("scan", key=key)

    report = sync(config)
    assert report.total("rereads") == 0 and report.requests == 3 * len(world.demarches)
    assert tuple(db.execute(stuck, [scanned.number]).fetchone()) == ("pending", None)

    sync(config, full=True)
    virus_scan, local_path = db.execute(stuck, [scanned.number]).fetchone()
    assert virus_scan == "safe" and Path(local_path).is_file()


# --- incremental syncs -----------------------------------------------------------------------


def test_incremental_sync_follows_edits_new_dossiers_messages_purges_and_the_trash(simulator, tmp_path):
    world = simulator.world
    config = simulator_config(tmp_path, simulator, attachments="messages")
    sync(config)
    db = read_db(config)

    purged, purged_paths = downloaded_dossier(db)
    assert purged_paths and all(p.exists() for p in purged_paths)
    demarche = world.dossiers[purged].demarche_number
    edited, writer, trashed = [d for d in sorted(world.dossiers.values(), key=lambda d: d.number)
                               if d.demarche_number == demarche and visible(d) and d.number != purged][:3]
    text = next(c for c in edited.champs if c.type == "TextChamp" and c.value)
    simulator.control("champ", number=edited.number, stable_id=text.stable_id, value="École Jules-Ferry (modifié)")
    created = simulator.control("dossiers", demarche=demarche, count=2)["numbers"]
    message = simulator.control("message", number=writer.number, content_type="application/pdf",
                                filename="convention-signee.pdf")
    simulator.control("purge", number=purged, reason="instructeur_request")
    simulator.control("hide", number=trashed.number, by="administration")

    report = sync(config)

    assert report.status == "ok"
    assert scalar(db, "SELECT string_value FROM champs WHERE dossier_number = ? AND champ_id = ?",
                  edited.number, typed_id("Champ", text.stable_id)) == "École Jules-Ferry (modifié)"
    assert sorted(n for (n,) in db.execute(
        "SELECT number FROM dossiers WHERE number IN (?, ?)", created)) == sorted(created)
    assert scalar(db, "SELECT count(*) FROM champs WHERE dossier_number = ?", created[0]) == len(
        world.dossiers[created[0]].champs) + sum(len(r.champs) for c in world.dossiers[created[0]].champs
                                                 for r in c.rows)
    row = db.execute("SELECT m.sender, f.* FROM messages m JOIN files f ON f.owner_id = m.id WHERE m.id = ?",
                     [message["id"]]).fetchone()
    assert row["sender"] == "usager" and row["filename"] == "convention-signee.pdf"
    assert row["local_path"] and md5_b64(Path(row["local_path"])) == row["checksum"]
    tomb = db.execute("SELECT * FROM tombstones WHERE number = ?", [purged]).fetchone()
    assert tomb["reason"] == "instructeur_request" and tomb["demarche_number"] == demarche
    assert tomb["deleted_dossier_id"] and tomb["date_suppression"]
    for table, column in (("dossiers", "number"), ("champs", "dossier_number"), ("annotations", "dossier_number"),
                          ("messages", "dossier_number"), ("files", "dossier_number")):
        assert scalar(db, f"SELECT count(*) FROM {table} WHERE {column} = ?", purged) == 0, table
    assert not any(p.exists() for p in purged_paths)
    flagged = db.execute("SELECT pending_deletion, pending_deletion_date FROM dossiers WHERE number = ?",
                         [trashed.number]).fetchone()
    assert flagged["pending_deletion"] == 1 and flagged["pending_deletion_date"]
    assert scalar(db, "SELECT count(*) FROM champs WHERE dossier_number = ?", trashed.number) > 0
    assert (report.total("new"), report.total("updated"), report.total("deleted"), report.total("pending")) == (
        2, 2, 1, 1)

    simulator.control("restore", number=trashed.number)
    report = sync(config)
    assert scalar(db, "SELECT pending_deletion FROM dossiers WHERE number = ?", trashed.number) == 0
    assert scalar(db, "SELECT count(*) FROM pending_deletions WHERE number = ?", trashed.number) == 0
    assert report.total("updated") == 1

    # Nothing happened since: nothing changes, and each démarche costs one request per stream.
    before = dump(config, RUN_BOOKKEEPING)
    report = sync(config)
    assert dump(config, RUN_BOOKKEEPING) == before
    assert report.requests == 3 * len(world.demarches)
    assert (report.total("new"), report.total("updated"), report.total("deleted"), report.total("files")) == (
        0, 0, 0, 0)


def test_a_change_committed_late_inside_the_overlap_is_not_lost(simulator, tmp_path):
    """A transaction that commits after a sync moved past its updated_at (docs/ds-api.md §5): the next
    incremental sync re-reads ten minutes behind the watermark and finds it."""
    world = simulator.world
    config = simulator_config(tmp_path, simulator)
    sync(config)
    db = read_db(config)
    demarche = max(world.demarches, key=lambda n: len(expected_numbers(world, n)))
    newest = max((d for d in world.dossiers.values() if d.demarche_number == demarche and visible(d)),
                 key=lambda d: d.updated_at)
    late = min((d for d in world.dossiers.values() if d.demarche_number == demarche and visible(d)),
               key=lambda d: d.updated_at)
    text = next(c for c in late.champs if c.type == "TextChamp" and c.value)
    text.value = text.string_value = "Validé avant la fin de la synchronisation"
    late.updated_at = newest.updated_at - timedelta(minutes=7)
    simulator.sim.changed(late)

    report = sync(config)

    assert report.total("updated") == 1 and report.requests == 3 * len(world.demarches)
    assert scalar(db, "SELECT string_value FROM champs WHERE dossier_number = ? AND champ_id = ?",
                  late.number, typed_id("Champ", text.stable_id)) == "Validé avant la fin de la synchronisation"


def test_a_usager_deletion_backdated_by_two_weeks_is_still_purged(simulator, tmp_path):
    """DS purges an en_construction dossier its usager deleted about two weeks later, dated back to
    the deletion (docs/ds-api.md §6): the row lands far behind the deleted list's watermark."""
    world = simulator.world
    config = simulator_config(tmp_path, simulator, attachments="none")
    sync(config)
    db = read_db(config)
    deleted_by_usager = one(world, state="en_construction")
    simulator.control("hide", number=deleted_by_usager.number, by="usager")
    report = sync(config)
    assert report.total("pending") == 1
    assert scalar(db, "SELECT pending_deletion FROM dossiers WHERE number = ?", deleted_by_usager.number) == 1

    simulator.control("advance", seconds=14 * 86400)
    other = one(world, state="accepte")
    simulator.control("purge", number=other.number, reason="instructeur_request")
    sync(config)  # the deleted list's watermark moves two weeks past the usager's deletion
    record = simulator.control("purge", number=deleted_by_usager.number)
    assert record["deleted_at"] < scalar(db, "SELECT max(date_suppression) FROM tombstones")

    report = sync(config)
    assert report.total("deleted") == 1
    tomb = db.execute("SELECT * FROM tombstones WHERE number = ?", [deleted_by_usager.number]).fetchone()
    assert tomb["reason"] == "user_request" and tomb["state"] == "en_construction"
    assert scalar(db, "SELECT count(*) FROM dossiers WHERE number = ?", deleted_by_usager.number) == 0
    assert scalar(db, "SELECT count(*) FROM pending_deletions WHERE number = ?", deleted_by_usager.number) == 0


def test_a_sync_with_nothing_new_changes_nothing(simulator, tmp_path):
    config = simulator_config(tmp_path, simulator, attachments="all")
    sync(config)
    files = on_disk(config)
    before = dump(config, RUN_BOOKKEEPING)
    report = sync(config)
    assert dump(config, RUN_BOOKKEEPING) == before and on_disk(config) == files
    assert report.requests == 3 * len(simulator.world.demarches) and report.status == "ok"
    assert read_db(config).execute("SELECT count(*) FROM sync_runs WHERE status = 'ok'").fetchone()[0] == 2


# --- --full: what updatedSince cannot see ----------------------------------------------------


def test_a_full_sync_of_an_unchanged_mirror_changes_nothing(simulator, tmp_path):
    """The reconciliation lists 100 dossiers a request (number, date, state: a lean page, whatever
    the configured page size) and, when nothing differs, fetches nothing more."""
    config = simulator_config(tmp_path, simulator, page_size=20)
    sync(config)
    ignore = {**RUN_BOOKKEEPING, "demarches": {"synced_at"}}
    before = dump(config, ignore)

    report = sync(config, full=True)

    after = dump(config, ignore)
    assert [r for r in after.pop("sync_state") if ("stream", "listing") not in r] == before.pop("sync_state")
    assert after == before
    assert report.status == "ok" and report.total("rereads") == 0
    assert (report.total("new"), report.total("updated"), report.total("deleted")) == (0, 0, 0)
    assert report.requests == 5 * len(simulator.world.demarches)  # descriptor, 3 streams, listing


def test_full_sync_unflags_a_dossier_ds_lists_again(simulator, tmp_path):
    """A dossier flagged as in the trash that DS lists again (the flag outlived the trash entry, e.g.
    the mirror was restored from a backup) is not in the trash: the full pass says so."""
    world = simulator.world
    config = simulator_config(tmp_path, simulator, attachments="none")
    sync(config)
    number = one(world, state="accepte").number
    with closing(sqlite3.connect(config.database.path)) as db, db:
        db.execute("UPDATE dossiers SET pending_deletion = 1 WHERE number = ?", [number])
        db.execute("INSERT INTO pending_deletions (number, demarche_number, recorded_at) "
                   "SELECT number, demarche_number, '2026-01-01T00:00:00+00:00' FROM dossiers WHERE number = ?",
                   [number])

    sync(config)  # incremental: nothing tells it
    db = read_db(config)
    assert scalar(db, "SELECT pending_deletion FROM dossiers WHERE number = ?", number) == 1

    sync(config, full=True)
    assert scalar(db, "SELECT pending_deletion FROM dossiers WHERE number = ?", number) == 0
    assert scalar(db, "SELECT count(*) FROM pending_deletions WHERE number = ?", number) == 0


def test_full_sync_tombstones_a_dossier_hidden_by_automatic_expiry(simulator, tmp_path):
    world = simulator.world
    config = simulator_config(tmp_path, simulator, attachments="all")
    sync(config)
    db = read_db(config)
    number, paths = downloaded_dossier(db)
    simulator.control("hide", number=number, by="expired")

    report = sync(config)  # the limbo: in no list, so an incremental sync cannot tell
    assert report.total("deleted") == 0
    assert scalar(db, "SELECT pending_deletion FROM dossiers WHERE number = ?", number) == 0

    report = sync(config, full=True)
    assert report.status == "ok" and report.total("deleted") == 1
    tomb = db.execute("SELECT * FROM tombstones WHERE number = ?", [number]).fetchone()
    assert tomb["reason"] == "vanished" and tomb["demarche_number"] == world.dossiers[number].demarche_number
    for table, column in (("dossiers", "number"), ("champs", "dossier_number"), ("messages", "dossier_number"),
                          ("files", "dossier_number")):
        assert scalar(db, f"SELECT count(*) FROM {table} WHERE {column} = ?", number) == 0, table
    assert paths and not any(p.exists() for p in paths)
    local = {n for (n,) in db.execute("SELECT number FROM dossiers")}
    assert local == set().union(*(expected_numbers(world, n) for n in world.demarches))


@pytest.mark.parametrize("changed", [1, 3], ids=["one-by-one", "by-a-dossiers-pass"])
def test_full_sync_refetches_dossiers_changed_behind_the_watermark(simulator, tmp_path, changed):
    """Changes committed late (docs/ds-api.md §5, commit lag): their updated_at is older than the window an
    incremental sync re-reads, so only the reconciliation's listing sees their new date. A few are
    read by number, more by one dossiers pass from the oldest."""
    world = simulator.world
    config = simulator_config(tmp_path, simulator)
    sync(config)
    db = read_db(config)
    demarche = max(world.demarches, key=lambda n: len(expected_numbers(world, n)))
    oldest = sorted((d for d in world.dossiers.values() if d.demarche_number == demarche and visible(d)),
                    key=lambda d: d.updated_at)[:changed]
    edits = {}
    for n, d in enumerate(oldest):
        text = next(c for c in d.champs if c.type == "TextChamp" and c.value)
        text.value = text.string_value = edits[d.number, text.stable_id] = f"Valeur écrite en retard {n}"
        d.updated_at += timedelta(seconds=5)  # still far behind the watermark
        simulator.sim.changed(d)

    def stored() -> dict:
        return {(n, sid): scalar(db, "SELECT string_value FROM champs WHERE dossier_number = ? AND champ_id = ?",
                                 n, typed_id("Champ", sid)) for n, sid in edits}

    report = sync(config)
    assert report.total("updated") == 0 and not set(stored().values()) & set(edits.values())

    with structlog.testing.capture_logs() as logs:
        report = sync(config, full=True)
    assert report.status == "ok" and report.total("updated") == changed
    assert stored() == edits
    (reconciled,) = [e for e in logs if e["event"] == "sync.reconcile_listed" and e["differ"]]
    assert reconciled["differ"] == changed
    assert report.total("rereads") == (changed if changed == 1 else 0)
    for d in oldest:
        node = remote_dossiers(simulator, d.demarche_number)[d.number]
        assert json.loads(scalar(db, "SELECT raw FROM dossiers WHERE number = ?", d.number)) == without_urls(node)


def test_expired_file_urls_make_the_dossier_read_again(simulator, tmp_path):
    world = simulator.world
    config = simulator_config(tmp_path, simulator, attachments="none")
    sync(config)
    db = read_db(config)
    assert scalar(db, "SELECT count(*) FROM files WHERE url IS NOT NULL AND virus_scan = 'safe'") > 0
    simulator.control("advance", seconds=2 * 3600)  # DS file URLs live one hour

    config = simulator_config(tmp_path, simulator, attachments="messages")
    report = sync(config, full=True)

    assert report.status == "ok"
    safe = scalar(db, "SELECT count(*) FROM files WHERE owner_kind = 'message' AND virus_scan = 'safe'")
    assert report.total("files") == safe > 0
    assert report.total("rereads") == scalar(
        db, "SELECT count(DISTINCT dossier_number) FROM files WHERE owner_kind = 'message' AND virus_scan = 'safe'")
    assert assert_downloads_are_intact(db) == safe == len(on_disk(config))
    assert scalar(db, "SELECT count(*) FROM files WHERE owner_kind = 'champ' AND local_path IS NOT NULL") == 0
    assert report.total("updated") == 0 and len(world.demarches) == 3
