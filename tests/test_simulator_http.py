"""The HTTP surface: routing, tokens, Rack::Attack, request errors, files, typenames (docs/ds-api.md §1-4, §7, §12)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request

import pytest
from aiohttp.test_utils import make_mocked_request
from simworld import find, lean, op, visible_dossiers

from connector.simulator.auth import RateLimiter, bearer_token
from connector.simulator.control import _loopback
from connector.simulator.seed import CRETEIL, OCCITANIE, POITIERS
from connector.simulator.state import typed_id

FORBIDDEN = {"errors": [{"message": "Without a token, only persisted queries are allowed",
                         "extensions": {"code": "forbidden"}}], "data": None}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


# --- routing and tokens --------------------------------------------------------------------


def test_only_post_on_the_graphql_path_is_routed(simulator):
    for path in ("/api/v2/graphql", "/", "/graphql", "/api/v1/procedures"):
        status, body, headers = _get(simulator.base_url + path)
        assert status == 404 and headers["Content-Type"].startswith("text/html"), path
    status, body, _ = simulator.post({"query": "{ __typename }"}, headers={})
    assert status == 200


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer nope", "nope"])
def test_a_missing_or_unknown_token_is_a_403(simulator, authorization):
    status, body, _ = simulator.post(op("demarche_probe", demarcheNumber=OCCITANIE),
                                     headers={"Authorization": authorization})
    assert (status, body) == (403, FORBIDDEN)


def test_revoked_and_expired_tokens(simulator):
    revoked = simulator.control("token", revoked=True)["token"]
    expired = simulator.control("token", expired=True)["token"]
    assert simulator.post(op("demarche_probe", demarcheNumber=OCCITANIE), token=revoked)[:2] == (403, FORBIDDEN)
    status, body, _ = simulator.post(op("demarche_probe", demarcheNumber=OCCITANIE), token=expired)
    assert (status, body) == (401, {"errors": [{"message": "Token expired", "extensions": {"code": "unauthorized"}}],
                                    "data": None})


@pytest.mark.parametrize("form", ["Bearer {t}", "Bearer token={t}", 'Token token="{t}"', "Bearer  {t} , extra=1"])
def test_rails_token_header_forms_are_accepted(simulator, form):
    status, body, _ = simulator.post(op("demarche_probe", demarcheNumber=POITIERS),
                                     headers={"Authorization": form.format(t=simulator.token)})
    assert status == 200 and body["data"]["demarche"]["number"] == POITIERS


def test_bearer_token_parsing_keeps_base64_padding():
    assert bearer_token("Bearer YWJjOzEyMw==") == "YWJjOzEyMw=="
    assert bearer_token("Bearer token=YWJjOzEyMw==") == "YWJjOzEyMw=="
    assert bearer_token("bearer x") is None and bearer_token(None) is None


def test_a_token_not_covering_the_demarche_gets_data_null_and_unauthorized(simulator):
    token = simulator.control("token", demarches=[CRETEIL])["token"]
    status, body, _ = simulator.post(op("demarche_probe", demarcheNumber=OCCITANIE), token=token)
    assert status == 200 and body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "An object of type Demarche was hidden due to permissions"
    assert error["path"] == ["demarche"] and error["extensions"] == {"code": "unauthorized"}
    d = visible_dossiers(simulator.world, OCCITANIE)[0]
    error = simulator.post(op("dossier", dossierNumber=d.number), token=token)[1]["errors"][0]
    assert error["message"] == "An object of type Dossier was hidden due to permissions"
    assert simulator.post(op("demarche_probe", demarcheNumber=CRETEIL), token=token)[1]["data"]["demarche"]


def test_unknown_demarche_and_dossier_numbers_are_not_found(simulator):
    body = simulator.post(op("demarche_probe", demarcheNumber=4242))[1]
    assert body["data"] is None and body["errors"][0]["message"] == "Demarche not found"
    assert body["errors"][0]["extensions"] == {"code": "not_found"}
    body = simulator.post(op("dossier", dossierNumber=1))[1]
    assert body["errors"][0]["message"] == "Dossier not found"


# --- the rate limit ------------------------------------------------------------------------


def test_rate_limiter_uses_fixed_windows_aligned_on_the_epoch_minute():
    limiter = RateLimiter(2)
    assert [limiter.hit("a", 120.0), limiter.hit("a", 150.5), limiter.hit("b", 151.0)] == [None, None, None]
    assert limiter.hit("a", 179.9) == 180  # the 3rd request of the window: reset = window end
    assert limiter.hit("a", 180.0) is None  # a new window, not a sliding one
    assert RateLimiter(0).hit("a", 1.0) is None


def test_the_429_is_plain_text_with_an_absolute_reset_and_no_retry_after(make_simulator):
    sim = make_simulator(rate_limit=3)
    other = sim.control("token")["token"]
    for _attempt in range(3):  # redo the sequence if it straddled a minute boundary
        window = int(time.time()) // 60
        answers = [sim.post(lean(n=CRETEIL, first=1)) for _ in range(4)]
        unauthenticated = sim.post(lean(n=CRETEIL, first=1), headers={"Authorization": None})
        second_token = sim.post(lean(n=CRETEIL, first=1), token=other)
        if int(time.time()) // 60 == window:
            break
        sim.sim.limiter.hit("reset the window", 0)
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    status, body, headers = answers[3]
    assert body.startswith("Calme toi, cowboy !") and "Calm down, cowboy!" in body
    assert headers["RateLimit-Remaining"] == "0"
    assert int(headers["RateLimit-Reset"]) == (window + 1) * 60
    assert "Retry-After" not in headers and "Content-Type" not in headers and "RateLimit-Limit" not in headers
    assert unauthenticated[0] == 403 and second_token[0] == 200


# --- request errors ------------------------------------------------------------------------


def test_an_unparsable_body_is_a_400_bad_request(simulator):
    status, body, _ = simulator.post(None, raw=b'{"query": "{ __typename }"')
    assert status == 400 and body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "bad_request"}


def test_variables_may_be_a_json_string_and_bad_ones_are_400s(simulator):
    query = op("demarche_probe", demarcheNumber=POITIERS)
    as_string = {**query, "variables": json.dumps(query["variables"])}
    assert simulator.post(as_string)[1]["data"]["demarche"]["number"] == POITIERS
    status, body, _ = simulator.post({**query, "variables": "{not json"})
    assert status == 400 and body["errors"][0]["extensions"] == {"code": "graphql_parse_failed"}
    status, body, _ = simulator.post({**query, "variables": [1, 2]})
    assert status == 400 and body["errors"][0]["extensions"] == {"code": "bad_request"}
    assert body["errors"][0]["message"].startswith("Unexpected parameter")


@pytest.mark.parametrize("body, message", [
    ({"query": "query a { __typename } query b { __typename }"}, "An operation name is required"),
    ({"query": "query a { __typename }", "operationName": "zz"}, 'No operation named "zz"'),
    ({"variables": {}}, "No query string was present"),
    ({"query": "{ demarche(number: 1) { nope } }"}, "Cannot query field 'nope' on type 'Demarche'."),
    ({"query": "{ demarche(number: 1) { id "}, "Syntax Error"),
    ({"query": "query q($n: Int!) { demarche(number: $n) { id } }"}, "Variable '$n' has invalid value"),
])
def test_request_errors_are_200_with_errors_and_no_data(simulator, body, message):
    status, answer, _ = simulator.post(body)
    assert status == 200 and "data" not in answer
    assert answer["errors"][0]["message"].startswith(message)


def test_documents_deeper_than_15_are_refused(simulator):
    def nest(repetitions, leaf):  # demarche > dossiers > nodes > champs, then rows > champs each time
        inner = leaf
        for _ in range(repetitions):
            inner = f"... on RepetitionChamp {{ rows {{ champs {{ {inner} }} }} }}"
        return f"{{ demarche(number: {CRETEIL}) {{ dossiers(first: 1) {{ nodes {{ champs {{ {inner} }} }} }} }} }}"

    ok = simulator.post({"query": nest(5, "id")})[1]  # 4 + 2 * 5 + 1 = 15
    assert "errors" not in ok
    refused = simulator.post({"query": nest(6, "__typename")})[1]  # introspection fields do not count
    assert refused == {"errors": [{"message": "Query has depth of 16, which exceeds max depth of 15"}]}


def test_groupe_instructeurs_closed_argument_is_a_500_like_ds(simulator):
    query = f"{{ demarche(number: {OCCITANIE}) {{ groupeInstructeurs(closed: false) {{ id }} }} }}"
    status, body, _ = simulator.post({"query": query})
    assert status == 500
    (error,) = body["errors"]
    assert error["message"] == "Internal Server Error" and error["extensions"]["code"] == "internal_server_error"
    assert len(error["extensions"]["exception_id"]) == 36


# --- the dossier's fields ------------------------------------------------------------------


def test_demarche_descriptor_has_typed_ids_and_descriptor_typenames(simulator):
    dem = simulator.post(op("demarche_descriptor", demarcheNumber=OCCITANIE))[1]["data"]["demarche"]
    world_dem = simulator.world.demarches[OCCITANIE]
    revision = next(r for r in world_dem.revisions if r.id == world_dem.active_revision_id)
    assert [d["id"] for d in dem["activeRevision"]["annotationDescriptors"]] == [
        typed_id("Champ", d.stable_id) for d in revision.annotation_descriptors]
    assert [d["__typename"] for d in dem["activeRevision"]["annotationDescriptors"]] == [
        f"{d.type}Descriptor" for d in revision.annotation_descriptors]
    instructeurs = {i["id"] for g in dem["groupeInstructeurs"] for i in g["instructeurs"]}
    assert instructeurs == {typed_id("Instructeur", i) for g in world_dem.groupes for i in g.instructeur_ids}


CHAMP_TYPENAMES = "query q($n: Int!) { dossier(number: $n) { champs { __typename id ... on CheckboxChamp { v: value } } } }"


def test_champ_typenames_depend_on_the_fragments_in_the_document(simulator):
    d = find(simulator.world, demarche_number=OCCITANIE)
    real = {f"Champ-{c.stable_id}": c.type for c in d.champs}
    plain = simulator.post({"query": CHAMP_TYPENAMES, "variables": {"n": d.number}})[1]["data"]["dossier"]["champs"]
    shown = {base64.b64decode(c["id"]).decode(): c["__typename"] for c in plain}
    fallback = {"DepartementChamp": "TextChamp", "DropDownListChamp": "TextChamp", "HeaderSectionChamp": "TextChamp",
                "ExplicationChamp": "TextChamp", "YesNoChamp": "CheckboxChamp"}
    assert shown == {k: fallback.get(v, v) for k, v in real.items()}
    assert all(isinstance(c["v"], bool) for c in plain if c["__typename"] == "CheckboxChamp")
    full = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]["champs"]
    assert {base64.b64decode(c["id"]).decode(): c["__typename"] for c in full} == real


def test_champs_annotations_and_messages_by_id(simulator):
    d = find(simulator.world, demarche_number=OCCITANIE)
    champ, message = d.champs[1], d.messages[0]
    query = ("query q($n: Int!, $c: ID, $m: ID) { dossier(number: $n) { champs(id: $c) { id } "
             "annotations(id: $c) { id } messages(id: $m) { id } } }")
    variables = {"n": d.number, "c": typed_id("Champ", champ.stable_id), "m": typed_id("Commentaire", message.id)}
    got = simulator.post({"query": query, "variables": variables})[1]["data"]["dossier"]
    assert got == {"champs": [{"id": variables["c"]}], "annotations": [], "messages": [{"id": variables["m"]}]}


def test_repetition_rows_and_child_champ_ids(simulator):
    d = next(x for x in visible_dossiers(simulator.world, CRETEIL) if any(c.rows for c in x.champs))
    rep = next(c for c in d.champs if c.rows)
    node = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
    shown = next(c for c in node["champs"] if c["id"] == typed_id("Champ", rep.stable_id))
    assert [r["id"] for r in shown["rows"]] == [typed_id("Row", r.id) for r in rep.rows]
    assert [c["id"] for c in shown["rows"][0]["champs"]] == [
        typed_id("Champ", f"{c.stable_id}|{rep.rows[0].id}") for c in rep.rows[0].champs]


def test_a_degraded_demandeur_is_incomplete_only_with_the_fragment(simulator):
    d = find(simulator.world, demarche_number=POITIERS)
    d.demandeur = {"__typename": "PersonneMoraleIncomplete", "siret": "21860194200015"}
    simulator.sim.changed(d)
    with_fragment = simulator.post(op("dossier", dossierNumber=d.number))[1]
    assert with_fragment["data"]["dossier"]["demandeur"] == {"__typename": "PersonneMoraleIncomplete",
                                                             "siret": "21860194200015"}
    query = ("query q($n: Int!) { dossier(number: $n) { number demandeur { __typename "
             "... on PersonneMorale { siret siegeSocial } } } }")
    body = simulator.post({"query": query, "variables": {"n": d.number}})[1]
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "Cannot return null for non-nullable field PersonneMorale.siegeSocial"
    assert error["extensions"] == {"code": "invalid_null"}
    assert error["path"] == ["dossier", "demandeur", "siegeSocial"]


def test_usager_of_a_deleted_account(simulator):
    d = find(simulator.world, demarche_number=OCCITANIE)
    d.connection_usager = "deleted"
    simulator.sim.changed(d)
    node = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
    assert node["usager"] == {"id": "<deleted>", "email": d.usager_email} and node["connectionUsager"] == "deleted"


# --- files ---------------------------------------------------------------------------------


def _pdf_message(simulator):
    d = find(simulator.world, demarche_number=CRETEIL)
    simulator.control("message", number=d.number, content_type="application/pdf", size=54_321,
                      filename="convention signée.pdf")
    node = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
    return d, node["messages"][-1]["attachments"][0]


def test_a_file_url_serves_the_exact_bytes_until_it_expires(simulator):
    _d, f = _pdf_message(simulator)
    assert f["byteSize"] == "54321" and f["contentType"] == "application/pdf" and f["virusScanResult"] == "safe"
    assert f["url"].startswith(simulator.base_url + "/")
    status, data, headers = _get(f["url"])
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert len(data) == 54_321 and data.startswith(b"%PDF")
    assert base64.b64encode(hashlib.md5(data).digest()).decode() == f["checksum"]
    assert _get(f["url"].replace("temp_url_sig=", "temp_url_sig=0"))[0] == 403
    simulator.control("advance", seconds=3601)
    assert _get(f["url"])[0] == 403


def test_file_urls_use_the_host_that_was_called(simulator):
    d, _f = _pdf_message(simulator)
    body = simulator.post(op("dossier", dossierNumber=d.number), headers={"Host": "ds.example.test:8080"})[1]
    assert body["data"]["dossier"]["messages"][-1]["attachments"][0]["url"].startswith(
        "http://ds.example.test:8080/storage/")


def test_infected_files_are_dropped_and_a_finished_scan_does_not_touch_the_dossier(simulator):
    d = find(simulator.world, demarche_number=CRETEIL)
    simulator.control("message", number=d.number, content_type="application/pdf", virus_scan="pending")
    pending = simulator.world.dossiers[d.number].messages[-1].attachments[0]
    simulator.control("message", number=d.number, content_type="application/pdf", virus_scan="infected")
    before = d.updated_at
    node = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
    assert [len(m["attachments"]) for m in node["messages"][-2:]] == [1, 0]
    assert node["messages"][-2]["attachments"][0]["virusScanResult"] == "pending"
    simulator.control("scan", key=pending.key)
    node = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
    assert node["messages"][-2]["attachments"][0]["virusScanResult"] == "safe"
    assert simulator.world.dossiers[d.number].updated_at == before


# --- the control surface -------------------------------------------------------------------


def test_control_answers_loopback_peers_only(simulator):
    def peer(ip):
        class Transport:
            def get_extra_info(self, name, default=None):
                return (ip, 5555) if name == "peername" else default

            def is_closing(self):
                return False

        return make_mocked_request("POST", "/_sim/world", transport=Transport())

    assert _loopback(peer("127.0.0.1")) and _loopback(peer("::1"))
    assert not _loopback(peer("192.0.2.7")) and not _loopback(peer("2001:db8::1"))
    assert simulator.control("world")["demarches"][0]["number"] == OCCITANIE
    with pytest.raises(RuntimeError, match="400"):
        simulator.control("hide", number=1)
    with pytest.raises(RuntimeError, match="404"):
        simulator.control("nonsense")


def test_usager_and_web_ui_actions_move_the_dates_ds_moves(simulator):
    world = simulator.world
    d = next(x for x in visible_dossiers(world, CRETEIL) if x.state == "en_construction")
    fetch = lambda: simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]  # noqa: E731
    before = fetch()
    simulator.control("advance", seconds=30)
    assert simulator.control("champ", number=d.number, stable_id=2954306, value="DUPONT")["string_value"] == "DUPONT"
    edited = fetch()
    assert edited["dateDerniereModificationChamps"] == edited["dateDerniereModification"]
    assert edited["dateDerniereModification"] > before["dateDerniereModification"]
    assert edited["dateDerniereModificationAnnotations"] == before["dateDerniereModificationAnnotations"]
    assert next(c for c in edited["champs"] if c["id"] == typed_id("Champ", 2954306))["stringValue"] == "DUPONT"
    simulator.control("advance", seconds=30)
    simulator.control("message", number=d.number, kind="signed_pdf")
    replied = fetch()
    assert replied["dateDerniereModification"] > edited["dateDerniereModification"]
    assert replied["dateDerniereModificationChamps"] == edited["dateDerniereModificationChamps"]
    assert replied["messages"][-1]["email"].endswith(d.usager_email.split("@")[1])
    simulator.control("advance", seconds=30)
    assert simulator.control("state", number=d.number, state="en_instruction")["state"] == "en_instruction"
    decided = fetch()
    assert decided["state"] == "en_instruction" and decided["messages"][-1]["email"] == "contact@demarche.numerique.gouv.fr"
    assert decided["datePassageEnInstruction"] == decided["dateDerniereModification"]


def test_a_purged_brouillon_leaves_no_tombstone(simulator):
    brouillon = next(d for d in simulator.world.dossiers.values() if d.state == "brouillon")
    deleted = len(simulator.world.deleted)
    assert simulator.control("purge", number=brouillon.number) == {"id": None}
    assert brouillon.number not in simulator.world.dossiers and len(simulator.world.deleted) == deleted


def test_the_fast_executor_answers_exactly_what_graphql_core_answers(simulator):
    from graphql import execute_sync, parse

    from connector.ds import operations
    from connector.simulator.execution import FastExecutor
    from connector.simulator.resolvers import RequestContext

    world = simulator.world
    numbers = [d.number for d in visible_dossiers(world, OCCITANIE)]
    world.dossiers[numbers[1]].demandeur = {"__typename": "PersonneMoraleIncomplete", "siret": "21310555400017"}
    simulator.sim.changed()
    simulator.sim.poison(numbers[3])
    document = parse(operations.source("dossiers_page"))
    ctx = RequestContext(simulator.sim, world.tokens[simulator.token], "http://ds.test", world.clock.now(),
                         frozenset())  # as if no fragment were there: fallback typenames, and an invalid_null
    # (the degraded PersonneMorale); the poisoned commune is served as a TextChamp, so it does not fail
    args = {"context_value": ctx, "variable_values": {"demarcheNumber": OCCITANIE, "first": 20}}
    fast = execute_sync(simulator.sim.schema, document, executor_class=FastExecutor, **args)
    plain = execute_sync(simulator.sim.schema, document, **args)
    assert fast.data == plain.data and fast.data["demarche"]["dossiers"]["nodes"][0] is not None
    assert [e.formatted for e in fast.errors] == [e.formatted for e in plain.errors]
    assert len(fast.errors) == 1
