"""The DS client against the simulator over real HTTP: errors, retries, rate limits, mutations."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import structlog
from aiohttp import web
from tenacity import wait_exponential_jitter, wait_fixed

from connector.credentials import ApiToken
from connector.ds import operations, retry
from connector.ds.budget import RequestBudget
from connector.ds.client import DsClient, Result
from connector.errors import (
    ApiUnavailable,
    BadToken,
    DemarcheNotFound,
    DemarcheUnauthorized,
    InvalidQuery,
    MutationNotSent,
    MutationOutcomeUnknown,
    PageFailed,
    RateLimited,
    RedirectRefused,
    TokenExpired,
)
from connector.simulator.state import typed_id


@pytest.fixture
def simulator(make_simulator):
    """A smaller world than the shared fixture's: these tests need few dossiers."""
    return make_simulator(dossiers=24)


@pytest.fixture
def fast_backoff(monkeypatch):
    """Backoff in milliseconds: these tests are about what is retried, not how long we wait."""
    monkeypatch.setattr(retry, "backoff", wait_exponential_jitter(max=0.05, jitter=0.01))


def client(simulator, token: str | None = None, **kwargs) -> DsClient:
    kwargs.setdefault("budget", RequestBudget(6_000))
    return DsClient(simulator.url, ApiToken(token or simulator.token, "test"), **kwargs)


def demarche_number(simulator) -> int:
    return next(iter(simulator.world.demarches))


def other_demarche(simulator) -> int:
    return list(simulator.world.demarches)[1]


def next_minute() -> float:
    """The end of the current epoch minute: when DS's fixed rate-limit window resets."""
    return (int(time.time()) // 60 + 1) * 60


def pending_fault_count(simulator) -> int:
    return sum(f.count for f in simulator.sim.faults.pending)


def message_input(simulator) -> dict:
    """An envoyerMessage input DS accepts: a live dossier and an instructeur of its group."""
    world = simulator.world
    for d in world.dossiers.values():
        if d.state in ("en_construction", "en_instruction") and not d.archived and not (
            d.hidden_by_user_at or d.hidden_by_administration_at or d.hidden_by_expired_at
        ):
            groupe = next(g for g in world.demarches[d.demarche_number].groupes
                          if g.number == d.groupe_instructeur_number)
            if groupe.instructeur_ids:
                return {"input": {
                    "dossierId": typed_id("Dossier", d.number),
                    "instructeurId": typed_id("Instructeur", groupe.instructeur_ids[0]),
                    "body": "Bonjour, merci de nous retourner la convention signée.",
                }}
    raise AssertionError("no dossier can receive a message in this world")


class LocalServer:
    """A throwaway aiohttp server for faults the simulator cannot make (redirects, IP filtering)."""

    def __init__(self, handler, extra_routes=()):
        self.app = web.Application()
        self.app.router.add_post("/api/v2/graphql", handler)
        for method, path, route in extra_routes:
            self.app.router.add_route(method, path, route)

    async def __aenter__(self) -> str:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}/api/v2/graphql"

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


# -- plain reads -----------------------------------------------------------------------------


async def test_query_returns_data_and_counts(simulator):
    number = demarche_number(simulator)
    async with client(simulator) as ds:
        result = await ds.query("demarche_probe", {"demarcheNumber": number})
    assert result.data["demarche"]["number"] == number
    assert result.errors == [] and result.error_codes() == []
    assert ds.stats.requests == 1 and ds.stats.retries == 0
    assert ds.stats.bytes_received > 0


async def test_errors_that_do_not_raise_are_kept_with_their_codes(simulator):
    async with client(simulator) as ds:
        result = await ds.query("dossier", {"dossierNumber": 999_999_999})
    assert isinstance(result, Result)
    assert (result.data or {}).get("dossier") is None
    assert result.error_codes() == ["not_found"]


async def test_concurrent_requests_never_mix_their_answers(simulator):
    number = demarche_number(simulator)
    simulator.control("fault", kind="http_error", status=500, operation="getDossier")
    async with client(simulator) as ds:
        probe, dossier = await asyncio.gather(
            ds.query("demarche_probe", {"demarcheNumber": number}, retry=False),
            ds.query("dossier", {"dossierNumber": 1}, retry=False),
            return_exceptions=True,
        )
    assert isinstance(probe, Result) and probe.data["demarche"]["number"] == number
    assert isinstance(dossier, PageFailed) and dossier.status == 500


# -- errors for humans -----------------------------------------------------------------------


def auth_cases():
    return [
        ("bad token", lambda sim: "not-a-real-token", BadToken),
        ("revoked token", lambda sim: sim.control("token", revoked=True)["token"], BadToken),
        ("expired token", lambda sim: sim.control("token", expired=True)["token"], TokenExpired),
        ("token for another démarche",
         lambda sim: sim.control("token", demarches=[other_demarche(sim)])["token"], DemarcheUnauthorized),
    ]


@pytest.mark.parametrize("case,make_token,error", auth_cases(), ids=[c[0] for c in auth_cases()])
async def test_auth_failures_name_the_demarche_never_the_token(simulator, case, make_token, error):
    number = demarche_number(simulator)
    token = make_token(simulator)
    with structlog.testing.capture_logs() as logs:
        async with client(simulator, token) as ds:
            with pytest.raises(error) as raised:
                await ds.query("demarche_probe", {"demarcheNumber": number})
    message = str(raised.value)
    assert str(number) in message and "\n" not in message
    assert token not in message and token not in repr(raised.value.args)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert token not in repr(logs)
    assert ds.stats.requests == 1  # never retried


async def test_unknown_demarche_is_not_found(simulator):
    async with client(simulator) as ds:
        with pytest.raises(DemarcheNotFound, match="démarche 424242"):
            await ds.query("demarche_probe", {"demarcheNumber": 424242})
    assert ds.stats.requests == 1


async def test_forbidden_network_message_is_passed_on():
    """DS's own text names the IP to allow; the simulator cannot filter IPs, so a tiny server says it."""
    text = "Request issued from a forbidden network. Add 192.0.2.7/32 to your allowed adresses in your /profil"

    async def forbidden(_request):
        return web.json_response(
            {"errors": [{"message": text, "extensions": {"code": "forbidden"}}], "data": None}, status=403
        )

    async with LocalServer(forbidden) as url:
        async with DsClient(url, ApiToken("s3cr3t-token", "test")) as ds:
            with pytest.raises(BadToken) as raised:
                await ds.query("demarche_probe", {"demarcheNumber": 7})
    assert "192.0.2.7/32" in str(raised.value) and "démarche 7" in str(raised.value)
    assert "s3cr3t-token" not in str(raised.value)


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_refused_and_never_followed(status):
    followed = []

    async def redirect(_request):
        return web.Response(status=status, headers={"Location": "/elsewhere"})

    async def elsewhere(request):
        followed.append(request.method)
        return web.json_response({"data": {"demarche": None}})

    routes = [("*", "/elsewhere", elsewhere)]
    async with LocalServer(redirect, routes) as url:
        async with DsClient(url, ApiToken("s3cr3t-token", "test")) as ds:
            with pytest.raises(RedirectRefused, match="/elsewhere") as raised:
                await ds.query("demarche_probe", {"demarcheNumber": 7})
    assert followed == []
    assert ds.stats.requests == 1
    assert "s3cr3t-token" not in str(raised.value)


# -- invalid documents -----------------------------------------------------------------------


async def test_invalid_document_makes_no_http_call(simulator, monkeypatch):
    from graphql import parse

    bad = parse("query getDemarcheProbe($n: Int!) { demarche(number: $n) { id nonExistingField } }")
    monkeypatch.setattr(operations, "document", lambda name: bad)
    simulator.control("fault", kind="http_error", status=500)  # consumed by any request that arrives
    async with client(simulator) as ds:
        with pytest.raises(InvalidQuery, match="nonExistingField"):
            await ds.query("demarche_probe", {"n": 1})
    assert ds.stats.requests == 0
    assert pending_fault_count(simulator) == 1


async def test_a_validated_document_is_remembered_and_only_that_text(simulator, monkeypatch, tmp_path):
    """A document validated once is not validated again by a later client (the verdict is kept in the
    state directory); another text under the same name is validated, and refused, before any request."""
    from graphql import parse

    from connector import schema
    from connector.ds.verdicts import Verdicts

    kept = tmp_path / "validated-queries"
    async with client(simulator, verdicts=kept) as ds:
        await ds.query("demarche_probe", {"demarcheNumber": demarche_number(simulator)})
    assert len(kept.read_text().split()) == 1

    def no_schema():  # a later run trusts the verdict: the schema is not even built
        raise AssertionError("validated again")

    monkeypatch.setattr(schema, "schema", no_schema)
    async with client(simulator, verdicts=kept) as ds:
        await ds.query("demarche_probe", {"demarcheNumber": demarche_number(simulator)})
    monkeypatch.undo()

    bad = parse("query getDemarcheProbe($demarcheNumber: Int!) "
                "{ demarche(number: $demarcheNumber) { id nonExistingField } }")
    monkeypatch.setattr(operations, "document", lambda name: bad)
    async with client(simulator, verdicts=kept) as ds:
        with pytest.raises(InvalidQuery, match="nonExistingField"):
            await ds.query("demarche_probe", {"demarcheNumber": demarche_number(simulator)})
    assert ds.stats.requests == 0
    assert len(kept.read_text().split()) == 1  # a refused document is not remembered
    assert not Verdicts(tmp_path / "missing" / "validated-queries").known("query { x }")


async def test_query_refuses_a_mutation_and_mutate_a_query(simulator):
    async with client(simulator) as ds:
        with pytest.raises(InvalidQuery, match="mutation"):
            await ds.query("envoyer_message", message_input(simulator))
        with pytest.raises(InvalidQuery, match="query"):
            await ds.mutate("demarche_probe", {"demarcheNumber": 1})
        with pytest.raises(InvalidQuery, match="no_such_operation"):
            await ds.query("no_such_operation", {})
    assert ds.stats.requests == 0


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"kind": "http_error", "status": 500},
    {"kind": "http_error", "status": 502},
    {"kind": "http_error", "status": 503},
    {"kind": "http_error", "status": 504},
    {"kind": "reset"},
    {"kind": "truncate"},
], ids=["500", "502", "503", "504", "reset", "truncated"])
async def test_transient_failures_are_retried_then_succeed(simulator, fast_backoff, fault):
    number = demarche_number(simulator)
    simulator.control("fault", **fault)
    with structlog.testing.capture_logs() as logs:
        async with client(simulator) as ds:
            result = await ds.query("demarche_probe", {"demarcheNumber": number})
    assert result.data["demarche"]["number"] == number
    assert ds.stats.requests == 2 and ds.stats.retries == 1
    assert [e["attempt"] for e in logs if e["event"] == "api.retry"] == [1]
    if fault.get("status") == 500:
        errors = [e for e in logs if e["event"] == "api.error"]
        assert errors and errors[0]["exception_id"]  # DS's id for its support


async def test_slow_answer_times_out_and_is_retried(simulator, fast_backoff):
    number = demarche_number(simulator)
    simulator.control("fault", kind="slow", delay=1)
    async with client(simulator, read_timeout=0.2) as ds:
        result = await ds.query("demarche_probe", {"demarcheNumber": number})
    assert result.data["demarche"]["number"] == number
    assert ds.stats.requests == 2


async def test_graphql_timeout_is_retried(simulator, fast_backoff):
    number = demarche_number(simulator)
    simulator.control("fault", kind="timeout", keep=1)
    async with client(simulator) as ds:
        result = await ds.query("dossiers_page", {"demarcheNumber": number, "first": 4})
    assert result.errors == []
    assert len(result.data["demarche"]["dossiers"]["nodes"]) == 4
    assert ds.stats.retries == 1


async def test_persistent_graphql_timeout_fails_the_page_with_partial_data(simulator, fast_backoff):
    number = demarche_number(simulator)
    simulator.control("fault", kind="timeout", keep=1, count=1_000)
    # The attempts stop it (retry.MAX_ATTEMPTS), not the seconds: a loaded machine (the other test
    # workers) once took 3 s over the first attempt, and 3 s allowed no retry at all.
    async with client(simulator, max_retry_seconds=60) as ds:
        with pytest.raises(PageFailed) as raised:
            await ds.query("dossiers_page", {"demarcheNumber": number, "first": 4})
    failed = raised.value
    assert "timeout" in failed.codes
    assert failed.data is not None  # partial data for the engine
    assert 2 <= ds.stats.requests <= retry.MAX_ATTEMPTS  # retried, but not forever


async def test_invalid_null_fails_the_page_without_retry(simulator, fast_backoff):
    number = demarche_number(simulator)
    async with client(simulator) as ds:
        page = await ds.query("dossiers_page", {"demarcheNumber": number, "first": 3})
        poisoned = page.data["demarche"]["dossiers"]["nodes"][1]["number"]
        simulator.control("poison", number=poisoned)
        with pytest.raises(PageFailed) as raised:
            await ds.query("dossiers_page", {"demarcheNumber": number, "first": 3})
    assert "invalid_null" in raised.value.codes
    assert ds.stats.requests == 2 and ds.stats.retries == 0


async def test_retries_stop_within_the_total_time(simulator, monkeypatch):
    monkeypatch.setattr(retry, "backoff", wait_fixed(0.3))
    simulator.control("fault", kind="http_error", status=503, count=1_000)
    async with client(simulator, max_retry_seconds=1) as ds:
        with pytest.raises(PageFailed) as raised:
            await ds.query("demarche_probe", {"demarcheNumber": demarche_number(simulator)})
    assert raised.value.status == 503
    assert 2 <= ds.stats.requests <= 4 < retry.MAX_ATTEMPTS  # the time bound stopped it


async def test_retry_false_sends_once(simulator, fast_backoff):
    simulator.control("fault", kind="http_error", status=502, count=5)
    async with client(simulator) as ds:
        with pytest.raises(PageFailed):
            await ds.query("demarche_probe", {"demarcheNumber": demarche_number(simulator)}, retry=False)
    assert ds.stats.requests == 1 and pending_fault_count(simulator) == 4


# -- rate limits -----------------------------------------------------------------------------


async def test_429_is_waited_out_until_ratelimit_reset(simulator, monkeypatch):
    """The simulator's 429 carries DS's absolute RateLimit-Reset (the next epoch minute). The
    client's wall clock is set 1 s before it, so the wait is short whatever the real time is."""
    monkeypatch.setattr(retry, "wall_clock", lambda: next_minute() - 1.0)
    number = demarche_number(simulator)
    simulator.control("fault", kind="rate_limit")
    with structlog.testing.capture_logs() as logs:
        async with client(simulator) as ds:
            result = await ds.query("demarche_probe", {"demarcheNumber": number})
    assert result.data["demarche"]["number"] == number
    assert ds.stats.rate_limited == 1 and ds.stats.requests == 2
    assert 1.0 <= ds.stats.rate_limit_wait_seconds <= 1.0 + retry.RATE_LIMIT_JITTER
    limited = [e for e in logs if e["event"] == "api.rate_limited"]
    assert len(limited) == 1 and int(limited[0]["rate_limit_reset"]) % 60 == 0


async def test_real_rate_limit_is_detected_and_holds_the_budget(simulator):
    simulator.control("rate_limit", limit=1)
    number = demarche_number(simulator)
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async with client(simulator, budget=RequestBudget(6_000, sleep=record)) as ds:
        with pytest.raises(RateLimited) as raised:
            for _ in range(3):  # at most one epoch-minute boundary can pass between these
                await ds.query("demarche_probe", {"demarcheNumber": number}, retry=False)
        delay = raised.value.delay
        assert 1 <= delay <= retry.RATE_LIMIT_MAX_WAIT + retry.RATE_LIMIT_JITTER
        assert slept == []
        await ds.budget.acquire()  # any caller, not only the one refused, now waits for the reset
    assert sum(slept) == pytest.approx(delay, abs=0.5)


# -- mutations -------------------------------------------------------------------------------


async def test_mutation_runs_once(simulator):
    simulator.control("log/reset")
    async with client(simulator) as ds:
        result = await ds.mutate("envoyer_message", message_input(simulator))
    assert result.data["dossierEnvoyerMessage"]["message"]["id"]
    assert [e["outcome"] for e in simulator.control("log")["mutations"]] == ["ok"]


async def test_mutation_payload_errors_come_back_as_data(simulator):
    read_only = simulator.control("token", write_access=False)["token"]
    async with client(simulator, read_only) as ds:
        result = await ds.mutate("envoyer_message", message_input(simulator))
    payload = result.data["dossierEnvoyerMessage"]
    assert payload["message"] is None
    assert payload["errors"] == [{"message": "Le jeton utilisé est configuré seulement en lecture"}]


async def test_mutation_with_a_revoked_token_raises_the_auth_error(simulator):
    simulator.control("log/reset")
    revoked = simulator.control("token", revoked=True)["token"]
    async with client(simulator, revoked) as ds:
        with pytest.raises(BadToken) as raised:
            await ds.mutate("envoyer_message", message_input(simulator))
    assert revoked not in str(raised.value)
    assert simulator.control("log")["mutations"] == []


async def test_mutation_cut_after_running_is_unknown_and_not_resent(simulator):
    simulator.control("log/reset")
    simulator.control("fault", kind="truncate", count=2)
    async with client(simulator) as ds:
        with pytest.raises(MutationOutcomeUnknown):
            await ds.mutate("envoyer_message", message_input(simulator))
    assert len(simulator.control("log")["mutations"]) == 1  # DS did run it, exactly once
    assert ds.stats.requests == 1 and pending_fault_count(simulator) == 1


@pytest.mark.parametrize("fault", [{"kind": "http_error", "status": 502}, {"kind": "reset"}],
                         ids=["502", "reset"])
async def test_mutation_failing_after_being_sent_is_unknown_and_sent_once(simulator, fault):
    simulator.control("log/reset")
    simulator.control("fault", count=3, **fault)
    async with client(simulator) as ds:
        with pytest.raises(MutationOutcomeUnknown):
            await ds.mutate("envoyer_message", message_input(simulator))
    assert ds.stats.requests == 1
    assert pending_fault_count(simulator) == 2  # one request reached the server, no retry


async def test_mutation_refused_by_the_rate_limit_was_not_sent(simulator, monkeypatch):
    monkeypatch.setattr(retry, "wall_clock", lambda: next_minute() - 5.0)
    simulator.control("log/reset")
    simulator.control("fault", kind="rate_limit")
    async with client(simulator) as ds:
        with pytest.raises(MutationNotSent) as raised:
            await ds.mutate("envoyer_message", message_input(simulator))
    assert 5.0 <= raised.value.delay <= 5.0 + retry.RATE_LIMIT_JITTER
    assert simulator.control("log")["mutations"] == []


async def test_mutation_to_an_unreachable_server_was_not_sent():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with DsClient(f"http://127.0.0.1:{port}/api/v2/graphql", ApiToken("t", "test")) as ds:
        with pytest.raises(MutationNotSent, match="not sent"):
            await ds.mutate("envoyer_message", {"input": {"dossierId": "x", "instructeurId": "y", "body": "b"}})
        with pytest.raises(ApiUnavailable):
            await ds.query("demarche_probe", {"demarcheNumber": 1}, retry=False)


@pytest.fixture
def debug_logs():
    """Capture every structlog event, DEBUG included, whatever an earlier test configured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(0))
    with structlog.testing.capture_logs() as logs:
        yield logs
    structlog.configure(**saved)


async def test_message_bodies_stay_out_of_the_logs(simulator, debug_logs):
    variables = message_input(simulator)
    async with client(simulator) as ds:
        await ds.mutate("envoyer_message", variables)
    logs = debug_logs
    requests = [e for e in logs if e["event"] == "api.request"]
    assert requests and variables["input"]["body"] not in repr(logs)


# -- the retry policy, piece by piece ---------------------------------------------------------


@pytest.mark.parametrize("headers,delay", [
    ({"RateLimit-Reset": "1060", "RateLimit-Remaining": "0"}, 20),  # DS: absolute epoch seconds
    ({"RateLimit-Reset": "1040.5"}, 1),  # already past on our clock: at least 1 s
    ({"RateLimit-Reset": "9999"}, 61),  # a skewed clock never makes us wait for ages
    ({"Retry-After": "7", "RateLimit-Reset": "1060"}, 7),  # a proxy's Retry-After wins
    ({"Retry-After": "Thu, 01 Jan 1970 00:17:32 GMT"}, 12),  # ...also as an HTTP-date
    ({}, 40),  # nothing said: DS's windows end on the epoch minute
    ({"RateLimit-Reset": "soon", "Retry-After": "nan"}, 40),
], ids=["reset", "reset-past", "reset-far", "retry-after", "retry-after-date", "none", "garbage"])
def test_rate_limit_delay(headers, delay):
    assert retry.rate_limit_delay(headers, now=1040.0, jitter=0) == pytest.approx(delay)


def test_rate_limit_delay_adds_bounded_jitter():
    delays = {retry.rate_limit_delay({"RateLimit-Reset": "1060"}, now=1040.0) for _ in range(20)}
    assert len(delays) > 1 and all(20 <= d <= 20 + retry.RATE_LIMIT_JITTER for d in delays)


@pytest.mark.parametrize("exc,retryable", [
    (RateLimited("429", 3), True),
    (ApiUnavailable("reset"), True),
    (PageFailed("500", codes=["internal_server_error"], errors=[], status=500), True),
    (PageFailed("502", codes=[], errors=[], status=502), True),
    (PageFailed("timeout", codes=["timeout"], errors=[], status=200), True),
    (PageFailed("null", codes=["invalid_null"], errors=[], status=200), False),
    (BadToken("403"), False),
    (TokenExpired("401"), False),
    (DemarcheUnauthorized("no"), False),
    (DemarcheNotFound("no"), False),
    (RedirectRefused("301"), False),
    (InvalidQuery("bad"), False),
    (MutationOutcomeUnknown("?"), False),
    (ValueError("bug"), False),
])
def test_is_retryable(exc, retryable):
    assert retry.is_retryable(exc) is retryable


def failed_attempt(exc: BaseException, attempt: int):
    from tenacity import RetryCallState

    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_wait_honours_a_rate_limit_delay_else_backs_off_exponentially():
    assert retry.wait_for(failed_attempt(RateLimited("429", 42.5), 1)) == 42.5
    first = retry.wait_for(failed_attempt(ApiUnavailable("reset"), 1))
    assert 1 <= first <= 3
    assert 8 <= retry.wait_for(failed_attempt(ApiUnavailable("reset"), 4)) <= 10
    assert retry.wait_for(failed_attempt(ApiUnavailable("reset"), 30)) <= 60
