"""Injected faults: every kind, its matching rules, and what a client sees (docs/ds-api.md §3-5, §12)."""

from __future__ import annotations

import asyncio
import http.client
import time
import urllib.error

import aiohttp
import pytest
from simworld import connection, lean, op, page_through, visible_dossiers

from connector.ds import operations
from connector.simulator.faults import Fault
from connector.simulator.seed import CRETEIL, OCCITANIE

PAGE = "dossiers_page"
LONG_AGO = "2000-01-01T00:00:00Z"


def full_page(first=10):
    return op(PAGE, demarcheNumber=OCCITANIE, first=first)


def test_a_rate_limit_fault_is_a_real_looking_429_once(simulator):
    simulator.control("fault", kind="rate_limit")
    window = int(time.time()) // 60
    status, body, headers = simulator.post(lean(n=CRETEIL))
    assert status == 429 and body.startswith("Calme toi, cowboy !")
    assert headers["RateLimit-Remaining"] == "0" and int(headers["RateLimit-Reset"]) in ((window + 1) * 60,
                                                                                        (window + 2) * 60)
    assert simulator.post(lean(n=CRETEIL))[0] == 200


def test_a_500_carries_ds_json_and_an_exception_id(simulator):
    simulator.control("fault", kind="http_error", status=500)
    status, body, _ = simulator.post(lean(n=CRETEIL))
    assert status == 500 and body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "Internal Server Error"
    assert error["extensions"]["code"] == "internal_server_error" and len(error["extensions"]["exception_id"]) == 36


@pytest.mark.parametrize("code", [502, 503, 504])
def test_proxy_errors(simulator, code):
    simulator.control("fault", kind="http_error", status=code, count=2)
    assert [simulator.post(lean(n=CRETEIL))[0] for _ in range(3)] == [code, code, 200]


def test_faults_match_by_operation_name_and_count(simulator):
    simulator.control("fault", kind="http_error", status=503, operation="getDossiersPage", count=2)
    assert simulator.post(lean(n=CRETEIL))[0] == 200  # an anonymous operation does not match
    assert simulator.post(op("demarche_probe", demarcheNumber=CRETEIL))[0] == 200
    assert simulator.post(full_page())[0] == 503
    assert simulator.post(full_page())[0] == 503
    assert simulator.post(full_page())[0] == 200
    assert simulator.sim.faults.pending == []


def test_a_slow_answer_still_answers(simulator):
    simulator.sim.inject("slow", delay=0.05)
    status, body, _ = simulator.post(lean(n=CRETEIL, first=2))
    assert status == 200 and len(connection(body)["nodes"]) == 2 and simulator.sim.faults.pending == []


def test_a_reset_closes_the_connection_unanswered(simulator):
    simulator.control("fault", kind="reset")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        simulator.post(lean(n=CRETEIL))
    assert simulator.post(lean(n=CRETEIL))[0] == 200


def test_a_truncated_body_is_shorter_than_its_content_length(simulator):
    simulator.control("fault", kind="truncate")

    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.post(simulator.url, json=lean(n=CRETEIL),
                                    headers={"Authorization": f"Bearer {simulator.token}"}) as response:
                assert response.status == 200
                return await response.read()

    with pytest.raises(aiohttp.ClientPayloadError):
        asyncio.run(fetch())


def test_a_timeout_answers_partial_data_with_timeout_errors(simulator):
    simulator.control("fault", kind="timeout", operation="getDossiersPage")
    status, body, _ = simulator.post(full_page())
    assert status == 200
    page = body["data"]["demarche"]["dossiers"]
    assert page["pageInfo"]["hasNextPage"] is True
    nodes = page["nodes"]
    assert [n is None for n in nodes] == [False] * 5 + [True] * 5
    assert [e["message"] for e in body["errors"]] == ["Timeout on Dossier.champs"] * 5
    assert {e["extensions"]["code"] for e in body["errors"]} == {"timeout"}
    assert [e["path"] for e in body["errors"]] == [["demarche", "dossiers", "nodes", i, "champs"] for i in range(5, 10)]
    again = simulator.post(full_page())[1]
    assert "errors" not in again and all(again["data"]["demarche"]["dossiers"]["nodes"])


def test_a_timeout_can_keep_chosen_dossiers_and_hit_another_field(simulator):
    simulator.sim.inject("timeout", keep=1, field="messages")
    body = simulator.post(full_page(first=3))[1]
    assert [n is None for n in body["data"]["demarche"]["dossiers"]["nodes"]] == [False, True, True]
    assert body["errors"][0]["message"] == "Timeout on Dossier.messages"


def test_a_poisoned_dossier_fails_with_invalid_null_wherever_its_champs_are_served(simulator):
    numbers = [n["number"] for n in connection(simulator.post(lean(n=OCCITANIE, first=5))[1])["nodes"]]
    simulator.control("poison", number=numbers[2])
    body = simulator.post(full_page(first=5))[1]
    nodes = body["data"]["demarche"]["dossiers"]["nodes"]
    # gh#12696: a commune without its INSEE code; Commune.code is non-null, CommuneChamp.commune is not
    (error,) = body["errors"]
    assert error["message"] == "Cannot return null for non-nullable field Commune.code"
    assert error["extensions"] == {"code": "invalid_null"}
    assert error["path"][:5] == ["demarche", "dossiers", "nodes", 2, "champs"]
    assert error["path"][-2:] == ["commune", "code"]
    assert nodes[2]["champs"][error["path"][5]]["commune"] is None
    alone = simulator.post(op("dossier", dossierNumber=numbers[2]))[1]
    assert alone["errors"][0]["extensions"] == {"code": "invalid_null"}
    # a lean selection still serves it: that is how a client names the dossier that breaks a page
    assert "errors" not in simulator.post(lean(n=OCCITANIE, first=5))[1]
    simulator.control("poison", number=numbers[2], poisoned=False)
    assert "errors" not in simulator.post(op("dossier", dossierNumber=numbers[2]))[1]


def test_modify_bumps_dossiers_right_after_the_page_is_served(simulator):
    first_page = connection(simulator.post(lean(n=OCCITANIE, first=4, updatedSince=LONG_AGO))[1])
    target = first_page["nodes"][0]["number"]
    simulator.control("fault", kind="modify", numbers=[target])
    before = simulator.world.dossiers[target].updated_at
    second = simulator.post(lean(n=OCCITANIE, first=4, updatedSince=LONG_AGO,
                                 after=first_page["pageInfo"]["endCursor"]))[1]
    assert target not in [n["number"] for n in connection(second)["nodes"]]  # served before the change
    assert simulator.world.dossiers[target].updated_at > before
    rest, _ = page_through(simulator, OCCITANIE, first=4, updatedSince=LONG_AGO)
    assert rest[-1] == target


def test_modify_random_dossiers_of_a_demarche(simulator):
    visible = {d.number: d.updated_at for d in visible_dossiers(simulator.world, CRETEIL)}
    simulator.sim.inject("modify", random=3, demarche=CRETEIL)
    simulator.post(lean(n=OCCITANIE, first=1))
    changed = [n for n, at in visible.items() if simulator.world.dossiers[n].updated_at != at]
    assert len(changed) == 3


@pytest.mark.parametrize("params", [{"kind": "boom"}, {"kind": "http_error", "status": 418}, {"kind": "slow",
                                                                                          "count": 0}])
def test_bad_fault_requests_are_refused(simulator, params):
    with pytest.raises(ValueError):
        Fault(**params)
    with pytest.raises(RuntimeError, match="400"):
        simulator.control("fault", **params)


def test_operation_names_of_the_connector_documents_are_matchable():
    assert operations.operation_name(PAGE) == "getDossiersPage"
