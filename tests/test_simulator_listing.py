"""demarche.dossiers / deletedDossiers / pendingDeletedDossiers: DS's keyset pagination (docs/ds-api.md §4-6)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from simworld import by_depose, by_updated, connection, lean, listed, op, page_through, visible_dossiers

from connector.simulator.listing import decode_cursor, encode_cursor, micros
from connector.simulator.seed import CRETEIL, OCCITANIE, POITIERS
from connector.simulator.state import UTC, typed_id

LONG_AGO = "2000-01-01T00:00:00+01:00"


@pytest.fixture
def sim(make_simulator):
    return make_simulator(rate_limit=0)


def test_cursor_is_urlsafe_unpadded_base64_of_utc_nanoseconds_and_id():
    from datetime import datetime

    dt = datetime(2026, 10, 15, 7, 0, 1, 123456, tzinfo=UTC)
    cursor = encode_cursor((micros(dt), 20000042))
    assert "=" not in cursor
    assert base64.urlsafe_b64decode(cursor + "==").decode() == "2026-10-15T07:00:01.123456000Z;20000042"
    assert decode_cursor(cursor) == (micros(dt), 20000042)


@pytest.mark.parametrize("demarche", [OCCITANIE, POITIERS, CRETEIL])
def test_a_pass_in_depose_order_lists_every_visible_dossier_once_in_order(sim, demarche):
    numbers, _ = page_through(sim, demarche, first=4)
    assert numbers == by_depose(sim.world, demarche)


def test_a_pass_in_updated_order_lists_every_visible_dossier_once_in_order(sim):
    numbers, _ = page_through(sim, OCCITANIE, first=3, updatedSince=LONG_AGO)
    assert numbers == by_updated(sim.world, OCCITANIE)


def test_every_page_size_from_1_to_100_gives_the_same_pass(sim):
    expected = by_depose(sim.world, POITIERS)
    for first in range(1, 101):
        numbers, requests = page_through(sim, POITIERS, first=first)
        assert numbers == expected, first
        assert requests == max(1, -(-len(expected) // first))  # hasNextPage fetches first + 1 rows


def test_first_and_last_are_clamped_silently_at_100(make_simulator):
    sim = make_simulator(dossiers=300, rate_limit=0)
    expected = by_depose(sim.world, OCCITANIE)
    assert len(expected) > 100
    for args in ({"first": 250}, {}, {"last": 101}):
        status, answer, _ = sim.post(lean(n=OCCITANIE, **args))
        page = connection(answer)
        assert status == 200 and len(page["nodes"]) == 100
        got = [n["number"] for n in page["nodes"]]
        assert got == (expected[-100:] if "last" in args else expected[:100])
    numbers, requests = page_through(sim, OCCITANIE, first=1000)
    assert numbers == expected and requests == 2


def test_resume_is_strict_keyset_even_with_ties_on_updated_at(sim):
    dossiers = visible_dossiers(sim.world, OCCITANIE)[:6]
    same = dossiers[0].updated_at
    for d in dossiers:
        d.updated_at = same
    sim.sim.changed()
    numbers, _ = page_through(sim, OCCITANIE, first=2, updatedSince=LONG_AGO)
    assert numbers == by_updated(sim.world, OCCITANIE)
    tied = [n for n in numbers if n in {d.number for d in dossiers}]
    assert tied == sorted(d.number for d in dossiers)


def test_edge_cursors_and_end_cursor_encode_the_order_column(sim):
    world = sim.world
    for filters, column in (({}, "depose_at"), ({"updatedSince": LONG_AGO}, "updated_at")):
        page = connection(sim.post(lean(n=CRETEIL, first=3, **filters))[1])
        for edge in page["edges"]:
            d = world.dossiers[edge["node"]["number"]]
            assert decode_cursor(edge["cursor"]) == (micros(getattr(d, column)), d.number)
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]


def test_updated_since_is_inclusive_at_the_second(sim):
    d = visible_dossiers(sim.world, POITIERS)[0]
    d.updated_at = d.updated_at.replace(microsecond=0) + timedelta(days=400)  # the newest, on a whole second
    sim.sim.changed(d)
    at = d.updated_at.astimezone(UTC).isoformat()
    page = connection(sim.post(lean(n=POITIERS, updatedSince=at))[1])
    assert [n["number"] for n in page["nodes"]] == [d.number]
    later = (d.updated_at + timedelta(seconds=1)).isoformat()
    page = connection(sim.post(lean(n=POITIERS, updatedSince=later))[1])
    assert page["nodes"] == [] and page["pageInfo"]["endCursor"] is None


def test_created_since_filters_on_depose_at_and_yields_to_updated_since(sim):
    expected = by_depose(sim.world, OCCITANIE)
    pivot = sim.world.dossiers[expected[len(expected) // 2]]
    since = pivot.depose_at.isoformat()
    numbers, _ = page_through(sim, OCCITANIE, first=5, createdSince=since)
    assert numbers == [n for n in expected if sim.world.dossiers[n].depose_at >= pivot.depose_at]
    numbers, _ = page_through(sim, OCCITANIE, first=5, createdSince=since, updatedSince=LONG_AGO)
    assert numbers == by_updated(sim.world, OCCITANIE)


def test_a_dossier_modified_during_a_pass_reappears_later_in_it(sim):
    first_page = connection(sim.post(lean(n=OCCITANIE, first=5, updatedSince=LONG_AGO))[1])
    touched = first_page["nodes"][1]["number"]
    sim.control("touch", numbers=[touched])
    numbers = [n["number"] for n in first_page["nodes"]]
    rest, _ = page_through(sim, OCCITANIE, first=5, updatedSince=LONG_AGO)
    after = rest[rest.index(numbers[-1]) + 1:]
    assert after[-1] == touched
    assert numbers.count(touched) + after.count(touched) == 2


def test_the_page_after_the_last_is_empty_with_a_null_end_cursor(sim):
    page = connection(sim.post(lean(n=CRETEIL, first=100))[1])
    assert page["pageInfo"]["hasNextPage"] is False
    empty = connection(sim.post(lean(n=CRETEIL, first=100, after=page["pageInfo"]["endCursor"]))[1])
    assert empty["nodes"] == [] and empty["edges"] == []
    assert empty["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True, "startCursor": None,
                                 "endCursor": None}


def test_last_and_before_read_backwards(sim):
    expected = by_depose(sim.world, OCCITANIE)
    page = connection(sim.post(lean(n=OCCITANIE, last=3))[1])
    assert [n["number"] for n in page["nodes"]] == expected[-3:]
    assert page["pageInfo"]["hasPreviousPage"] is True and page["pageInfo"]["hasNextPage"] is False
    before = connection(sim.post(lean(n=OCCITANIE, last=3, before=page["pageInfo"]["startCursor"]))[1])
    assert [n["number"] for n in before["nodes"]] == expected[-6:-3]
    assert before["pageInfo"]["hasNextPage"] is True
    first_before = connection(sim.post(lean(n=OCCITANIE, first=2, before=page["pageInfo"]["startCursor"]))[1])
    assert [n["number"] for n in first_before["nodes"]] == expected[-5:-3]


def test_the_deprecated_desc_order_reads_from_the_end(sim):
    expected = by_depose(sim.world, OCCITANIE)
    page = connection(sim.post(lean(n=OCCITANIE, first=4, order="DESC"))[1])
    assert [n["number"] for n in page["nodes"]] == expected[::-1][:4]
    nxt = connection(sim.post(lean(n=OCCITANIE, first=4, order="DESC", after=page["pageInfo"]["endCursor"]))[1])
    assert [n["number"] for n in nxt["nodes"]] == expected[::-1][4:8]


@pytest.mark.parametrize("args, message", [
    ({"first": 2, "last": 2}, 'Arguments "first" and "last" are exclusive'),
    ({"first": -1}, 'Argument "first" must be a non-negative integer'),
    ({"last": -5}, 'Argument "last" must be a non-negative integer'),
    ({"after": "MjAyNi0xMC0xNVQwNzowMDowMS4wMDAwMDAwMDBaOzE", "before": "MjAyNi0xMC0xNVQwNzowMDowMS4wMDAwMDAwMDBaOzE"},
     'Arguments "before" and "after" are exclusive'),
    ({"after": "not a cursor"}, 'Invalid input: "not a cursor"'),
    ({"after": base64.urlsafe_b64encode(b"yesterday;12").decode()}, "Invalid input"),
])
def test_bad_paging_arguments_are_bad_requests(sim, args, message):
    status, answer, _ = sim.post(lean(n=CRETEIL, **args))
    assert status == 200 and answer["data"] is None
    (error,) = answer["errors"]
    assert error["message"].startswith(message)
    assert error["extensions"] == {"code": "bad_request"}
    assert error["path"] == ["demarche", "dossiers"]


def test_state_and_archived_filters(sim):
    world = sim.world
    for state in ("en_construction", "en_instruction", "accepte"):
        numbers, _ = page_through(sim, OCCITANIE, first=7, state=state)
        assert numbers == [n for n in by_depose(world, OCCITANIE) if world.dossiers[n].state == state]
    archived, _ = page_through(sim, OCCITANIE, first=7, archived=True)
    assert archived == [n for n in by_depose(world, OCCITANIE) if world.dossiers[n].archived]


def test_hidden_and_brouillon_dossiers_are_neither_listed_nor_fetched(make_simulator):
    sim = make_simulator(dossiers=300, rate_limit=0)
    world = sim.world
    unlisted = [d for d in world.dossiers.values() if not listed(d)]
    kinds = {("brouillon" if d.state == "brouillon" else "admin" if d.hidden_by_administration_at
              else "expired" if d.hidden_by_expired_at else "usager") for d in unlisted}
    assert kinds == {"brouillon", "admin", "expired", "usager"}
    listed_numbers = set()
    for demarche in world.demarches:
        listed_numbers |= set(page_through(sim, demarche, first=100)[0])
    assert not listed_numbers & {d.number for d in unlisted}
    for d in unlisted[:12]:
        status, answer, _ = sim.post(op("dossier", dossierNumber=d.number))
        assert status == 200 and answer["data"] is None
        assert answer["errors"][0]["message"] == "Dossier not found"
        assert answer["errors"][0]["extensions"] == {"code": "not_found"}
    kept = [d for d in world.dossiers.values() if d.hidden_by_user_at and listed(d)]
    assert kept, "the seed plants usager-deleted terminated dossiers"
    for d in kept:
        node = sim.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
        assert node["dateSuppressionParUsager"] is not None and d.number in listed_numbers


def _tombstones(sim, name, demarche, **variables):
    out, after = [], None
    while True:
        answer = sim.post(op(name, demarcheNumber=demarche, first=2, after=after, **variables))[1]
        assert "errors" not in answer, answer
        key = "deletedDossiers" if name == "deleted_dossiers_page" else "pendingDeletedDossiers"
        page = answer["data"]["demarche"][key]
        out += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


def test_deleted_dossiers_list_purged_ones_by_deletion_date(make_simulator):
    sim = make_simulator(dossiers=300, rate_limit=0)
    for demarche in sim.world.demarches:
        records = sorted((x for x in sim.world.deleted if x.demarche_number == demarche),
                         key=lambda x: (x.deleted_at, x.id))
        nodes = _tombstones(sim, "deleted_dossiers_page", demarche)
        assert [n["number"] for n in nodes] == [x.number for x in records]
        assert [n["id"] for n in nodes] == [typed_id("DeletedDossier", x.id) for x in records]
        assert {n["reason"] for n in nodes} <= {"expired", "instructeur_request", "manager_request",
                                               "procedure_removed", "user_expired", "user_removed", "user_request"}
    records = sorted(sim.world.deleted, key=lambda x: x.deleted_at)
    pivot = records[len(records) // 2]
    since = [n["number"] for n in _tombstones(sim, "deleted_dossiers_page", pivot.demarche_number,
                                               deletedSince=pivot.deleted_at.isoformat())]
    assert pivot.number in since
    assert all(x.deleted_at >= pivot.deleted_at for x in sim.world.deleted if x.number in since)


def test_pending_deleted_dossiers_is_the_trash_and_a_restore_brings_the_dossier_back(sim):
    d = visible_dossiers(sim.world, CRETEIL)[0]
    sim.control("hide", number=d.number, by="administration")
    assert d.number not in page_through(sim, CRETEIL, first=50)[0]
    nodes = _tombstones(sim, "pending_deleted_dossiers_page", CRETEIL)
    (node,) = [n for n in nodes if n["number"] == d.number]
    assert node["id"] == typed_id("DeletedDossier", d.number)
    assert node["reason"] == "instructeur_request" and node["state"] == d.state
    assert node["dateSupression"] is not None
    trash = {x.number for x in sim.world.dossiers.values()
             if x.demarche_number == CRETEIL and ((x.state != "brouillon" and x.hidden_by_administration_at)
                                                  or (x.state == "en_construction" and x.hidden_by_user_at))}
    assert {n["number"] for n in nodes} == trash
    sim.control("restore", number=d.number)
    assert d.number not in {n["number"] for n in _tombstones(sim, "pending_deleted_dossiers_page", CRETEIL)}
    assert page_through(sim, CRETEIL, first=50, updatedSince=LONG_AGO)[0][-1] == d.number


def test_a_purged_usager_deletion_is_backdated_to_its_hiding(sim):
    d = next(x for x in visible_dossiers(sim.world, CRETEIL) if x.state == "en_construction")
    hidden = sim.control("hide", number=d.number, by="usager")
    sim.control("advance", seconds=14 * 86400)
    purged = sim.control("purge", number=d.number)
    assert purged["reason"] == "user_request"
    assert purged["deleted_at"] == sim.world.deleted[-1].deleted_at.isoformat()
    assert sim.world.deleted[-1].deleted_at.isoformat() == hidden["updated_at"]
    nodes = _tombstones(sim, "deleted_dossiers_page", CRETEIL)
    assert d.number in {n["number"] for n in nodes}
    assert sim.post(op("dossier", dossierNumber=d.number))[1]["errors"][0]["extensions"]["code"] == "not_found"
