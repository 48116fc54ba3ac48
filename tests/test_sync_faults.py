"""The sync engine under faults: every kind the simulator injects, a poisoned dossier, and answers
the simulator cannot make (a reverse proxy in front of it rewrites them: that is the network edge).

Each faulted sync must end in the mirror a sync of the same seeded world makes without faults
(``reference``, built once): same rows, same watermarks; only connector timestamps may differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
import structlog
from aiohttp import web
from tenacity import wait_exponential_jitter

from connector.config import load_config
from connector.ds import retry
from connector.errors import PageFailed
from connector.simulator.seed import seed_world
from connector.status import WARNING, gather
from connector.sync.attachments import is_temporary
from conftest import SimulatorHandle
from syncenv import dump, read_db, remote_dossiers, simulator_config, sync, sync_async, without_urls, write_config

pytestmark = pytest.mark.slow  # every fault kind, each ending in a full mirror compared row by row

SEED, DOSSIERS, PAGE_SIZE = 7, 60, 20
BIG = 131274  # the démarche with the most dossiers in this world (30 visible)

# What only the connector's clock (or the temporary directory) decides.
CLOCKS = {
    "sync_runs": {"*"},
    "sync_state": {"updated_at", "last_success_at"},
    "demarches": {"synced_at"},
    "dossiers": {"synced_at"},
    "files": {"url", "url_seen_at", "local_path", "downloaded_at"},
    "tombstones": {"recorded_at"},
    "pending_deletions": {"recorded_at"},
    "quarantine": {"first_seen_at", "last_seen_at"},
    # how many writes (retries, quarantines included) the mirror took: its history, not DS's data
    "mirror_generations": {"generation"},
}
DOSSIER_TABLES = {"dossiers": "number", "champs": "dossier_number", "annotations": "dossier_number",
                  "messages": "dossier_number", "files": "dossier_number", "dossier_labels": "dossier_number"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The mirror of the seeded world synced without faults, and what that sync cost."""
    handle = SimulatorHandle(seed_world(seed=SEED, dossiers=DOSSIERS), 400)
    try:
        config = simulator_config(tmp_path_factory.mktemp("reference"), handle, page_size=PAGE_SIZE)
        report = sync(config)
        assert report.status == "ok"
        yield {"dump": dump(config, CLOCKS), "requests": report.requests}
    finally:
        handle.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Retries after milliseconds: these tests are about what ends in the mirror, not waiting."""
    monkeypatch.setattr(retry, "backoff", wait_exponential_jitter(max=0.05, jitter=0.01))


@pytest.fixture
def world(make_simulator) -> SimulatorHandle:
    return make_simulator(seed=SEED, dossiers=DOSSIERS)


def without(mirror: dict[str, list[tuple]], *numbers: int, tables: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """The mirror without these dossiers' rows (and without ``tables``)."""
    out = {}
    for table, rows in mirror.items():
        if table in tables:
            continue
        column = DOSSIER_TABLES.get(table)
        out[table] = [r for r in rows if column is None or dict(r)[column] not in numbers]
    return out


def visible_numbers(handle: SimulatorHandle, demarche: int) -> list[int]:
    """The démarche's dossier numbers, in DS's listing order."""
    return list(remote_dossiers(handle, demarche))


def events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


# --- every fault kind the simulator makes ------------------------------------------------------


def next_minute() -> float:
    return (int(time.time()) // 60 + 1) * 60


@pytest.mark.parametrize("fault, extra_requests", [
    pytest.param({"kind": "rate_limit", "operation": "getDossiersPage"}, 1, id="429"),
    pytest.param({"kind": "http_error", "status": 500, "operation": "getDossiersPage", "count": 2}, 2, id="500"),
    pytest.param({"kind": "http_error", "status": 502, "operation": "getDemarcheDescriptor"}, 1, id="502"),
    pytest.param({"kind": "http_error", "status": 503, "operation": "getDeletedDossiersPage"}, 1, id="503"),
    pytest.param({"kind": "http_error", "status": 504, "operation": "getPendingDeletedDossiersPage"}, 1, id="504"),
    pytest.param({"kind": "slow", "delay": 1.0, "operation": "getDossiersPage"}, 0, id="slow"),
    pytest.param({"kind": "reset", "operation": "getDossiersPage"}, 1, id="reset"),
    pytest.param({"kind": "truncate", "operation": "getDossiersPage"}, 1, id="truncate"),
    pytest.param({"kind": "timeout", "operation": "getDossiersPage"}, 1, id="timeout"),
    pytest.param({"kind": "timeout", "field": "motivation", "keep": 2, "operation": "getDossiersPage"}, 1,
                 id="timeout-partial-data"),
])
def test_each_fault_ends_in_the_same_mirror(world, tmp_path, reference, monkeypatch, fault, extra_requests):
    monkeypatch.setattr(retry, "wall_clock", lambda: next_minute() - 1.0)  # a 429 resets in 1 s
    world.control("fault", **fault)
    config = simulator_config(tmp_path, world, page_size=PAGE_SIZE)

    report = sync(config)

    assert report.status == "ok" and world.sim.faults.pending == []
    assert report.requests == reference["requests"] + extra_requests
    assert report.retries == extra_requests and report.rate_limited == (fault["kind"] == "rate_limit")
    assert dump(config, CLOCKS) == reference["dump"]


def test_ds_failing_past_the_retries_fails_that_demarche_then_the_next_run_catches_up(
        world, tmp_path, reference, monkeypatch):
    monkeypatch.setattr(retry, "MAX_ATTEMPTS", 3)
    config = simulator_config(tmp_path, world, page_size=PAGE_SIZE)
    # démarches are synced concurrently: the three failures are aimed at the first one's requests
    world.control("fault", kind="http_error", status=503, operation="getDeletedDossiersPage", count=3,
                  for_demarche=config.demarches[0].number)

    report = sync(config)

    first, *others = report.demarches
    assert report.status == "partial" and report.exit_code == 75  # EX_TEMPFAIL: try again later
    assert isinstance(first.error, PageFailed) and "HTTP 503" in str(first.error)
    assert all(d.error is None and d.new > 0 for d in others)
    assert [tuple(r) for r in read_db(config).execute("SELECT status FROM sync_runs")] == [("partial",)]

    report = sync(config)
    assert report.status == "ok" and dump(config, CLOCKS) == reference["dump"]


def test_a_read_timeout_on_a_slow_answer_is_retried(world, tmp_path, reference):
    world.control("fault", kind="slow", delay=6.0, operation="getDossiersPage")
    config = simulator_config(tmp_path, world, page_size=PAGE_SIZE)
    config = replace(config, ds=replace(config.ds, read_timeout_seconds=3.0))  # margins for a loaded CI machine

    with structlog.testing.capture_logs() as logs:
        report = sync(config)

    assert report.status == "ok" and report.retries == 1
    assert [e["reason"] for e in events(logs, "api.retry")] == ["ApiUnavailable"]
    assert dump(config, CLOCKS) == reference["dump"]


def test_a_page_that_keeps_timing_out_is_asked_again_smaller(world, tmp_path, reference):
    config = simulator_config(tmp_path, world, page_size=PAGE_SIZE)
    # démarches are synced concurrently: every attempt at the first one's first page times out
    world.control("fault", kind="timeout", operation="getDossiersPage", count=retry.MAX_ATTEMPTS,
                  for_demarche=config.demarches[0].number)

    with structlog.testing.capture_logs() as logs:
        report = sync(config)

    assert report.status == "ok" and report.total("quarantined") == 0
    assert [(e["failed_size"], e["next_size"]) for e in events(logs, "sync.page_shrunk")] == [(PAGE_SIZE, 5)]
    assert dump(config, CLOCKS) == reference["dump"]


def test_dossiers_modified_during_pagination_end_in_their_final_state(world, tmp_path, reference):
    config = simulator_config(tmp_path, world, page_size=5, demarches=[BIG])
    world.control("fault", kind="modify", random=2, count=4, demarche=BIG, operation="getDossiersPage")

    report = sync(config)

    assert report.status == "ok" and world.sim.faults.pending == []
    db = read_db(config)
    remote = remote_dossiers(world, BIG)
    assert report.total("pages") > len(remote) / 5 + 2  # many dossier pages, then the two deletion lists
    local = {r["number"]: r for r in db.execute("SELECT number, raw, date_derniere_modification FROM dossiers")}
    assert set(local) == set(remote)
    for number, node in remote.items():
        assert json.loads(local[number]["raw"]) == without_urls(node)
    before = {dict(r)["number"]: dict(r)["date_derniere_modification"] for r in reference["dump"]["dossiers"]}
    moved = [n for n, node in remote.items() if node["dateDerniereModification"] != before[n]]
    assert 2 <= len(moved) <= 8  # 4 pages, 2 dossiers touched after each (the same one maybe twice)
    assert report.total("new") == len(remote) and report.total("updated") >= 1
    mine = dump(config, CLOCKS)
    for table in ("champs", "annotations", "messages", "files"):
        theirs = [r for r in reference["dump"][table] if dict(r)["dossier_number"] in remote]
        assert mine[table] == theirs, table
    bookmark = db.execute("SELECT * FROM sync_state WHERE stream = 'dossiers'").fetchone()
    assert bookmark["after_cursor"] is None
    assert bookmark["updated_since"] == max((n["dateDerniereModification"] for n in remote.values()),
                                            key=datetime.fromisoformat)


# --- a dossier DS cannot serve -----------------------------------------------------------------


def test_a_poisoned_dossier_is_quarantined_and_comes_back_after_a_full_sync(world, tmp_path, reference):
    order = visible_numbers(world, BIG)
    poisoned = order[len(order) // 2]
    world.control("poison", number=poisoned)
    config = simulator_config(tmp_path, world, page_size=PAGE_SIZE)

    report = sync(config)

    assert report.status == "partial" and report.exit_code == 65 and report.total("quarantined") == 1
    db = read_db(config)
    (row,) = db.execute("SELECT * FROM quarantine").fetchall()
    # The page shrinks down to the one dossier, which the lean listing names; DS's answer is kept.
    assert row["dossier_number"] == poisoned and row["demarche_number"] == BIG
    assert "Cannot return null for non-nullable field Commune.code" in row["error"]
    raw = json.loads(row["raw"])
    assert [e["extensions"]["code"] for e in raw["errors"]] == ["invalid_null"]
    assert raw["errors"][0]["path"][:3] == ["demarche", "dossiers", "nodes"]
    mirror = dump(config, CLOCKS)
    assert without(mirror, tables=("quarantine",)) == without(reference["dump"], poisoned, tables=("quarantine",))

    world.control("poison", number=poisoned, poisoned=False)
    report = sync(config, full=True)

    assert report.status == "ok" and db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    mirror = dump(config, CLOCKS)
    assert without(mirror, tables=("sync_state",)) == without(reference["dump"], tables=("sync_state",))


# --- answers only a proxy can break ------------------------------------------------------------


Rewrite = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
Corrupt = Callable[[str, bytes], bytes]


class Proxy:
    """A reverse proxy in front of the simulator. ``rewrite(request, answer)`` may change a GraphQL
    JSON answer on its way back; file URLs name the host that was called (docs/ds-api.md §1), so downloads
    come through the proxy too and ``corrupt(path, body)`` may change their bytes."""

    def __init__(self, simulator: SimulatorHandle, rewrite: Rewrite | None = None, corrupt: Corrupt | None = None):
        self.upstream = simulator.base_url
        self.rewrite = rewrite or (lambda request, answer: answer)
        self.corrupt = corrupt or (lambda path, body: body)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v2/graphql", self._graphql)
        app.router.add_get("/storage/{tail:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._session = aiohttp.ClientSession()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/v2/graphql"

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None and self._runner is not None
        await self._session.close()
        await self._runner.cleanup()

    async def _graphql(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type", "Host")}
        async with self._session.post(self.upstream + request.path, data=body, headers=headers) as answer:
            data, status, content_type = await answer.read(), answer.status, answer.content_type
        if content_type == "application/json":
            data = json.dumps(self.rewrite(json.loads(body), json.loads(data))).encode()
        return web.Response(status=status, body=data, content_type=content_type)

    async def _file(self, request: web.Request) -> web.Response:
        assert self._session is not None
        async with self._session.get(self.upstream + request.path_qs) as answer:
            data, status, content_type = await answer.read(), answer.status, answer.content_type
        return web.Response(status=status, body=self.corrupt(request.path, data) if status == 200 else data,
                            content_type=content_type)


async def sync_through(proxy_url: str, world: SimulatorHandle, tmp_path, **options: Any):
    config = load_config(write_config(tmp_path, proxy_url, world.token, sorted(world.world.demarches),
                                      page_size=PAGE_SIZE))
    assert world.url not in config.ds.url
    return config, await sync_async(config, **options)


def nodes_of(request: dict, answer: dict) -> list[dict]:
    """The dossier nodes of a getDossiersPage answer (none for other operations)."""
    if request.get("operationName") != "getDossiersPage":
        return []
    return ((answer.get("data") or {}).get("demarche") or {}).get("dossiers", {}).get("nodes") or []


async def test_an_unknown_champ_type_is_kept_raw_and_logged(world, tmp_path, reference):
    target = visible_numbers(world, BIG)[3]
    changed: dict[str, Any] = {}

    def rewrite(request: dict, answer: dict) -> dict:
        for node in nodes_of(request, answer):
            if node["number"] == target and not changed:
                champ = next(c for c in node["champs"] if c["__typename"] == "TextChamp" and c.get("text"))
                champ["__typename"] = "FutureChamp"
                champ["futureValue"] = {"niveaux": ["CP", "CE1"], "effectif": 48}
                del champ["text"]
                changed.update(champ)
        return answer

    with structlog.testing.capture_logs() as logs:
        async with Proxy(world, rewrite) as url:
            config, report = await sync_through(url, world, tmp_path)

    assert report.status == "ok" and report.total("quarantined") == 0
    db = read_db(config)
    row = db.execute("SELECT * FROM champs WHERE dossier_number = ? AND champ_id = ?",
                     [target, changed["id"]]).fetchone()
    assert row["type"] == "FutureChamp" and row["value"] is None
    assert row["string_value"] == changed["stringValue"]
    assert json.loads(row["raw"])["futureValue"] == {"niveaux": ["CP", "CE1"], "effectif": 48}
    (warning,) = events(logs, "store.unknown_champ_types")
    assert warning["log_level"] == "warning" and warning["types"] == {"FutureChamp": [target]}
    mirror = dump(config, CLOCKS)
    assert without(mirror, target) == without(reference["dump"], target)
    theirs = [r for r in reference["dump"]["champs"] if dict(r)["dossier_number"] == target]
    mine = [r for r in mirror["champs"] if dict(r)["dossier_number"] == target]
    assert [r for r in mine if dict(r)["champ_id"] != changed["id"]] == [
        r for r in theirs if dict(r)["champ_id"] != changed["id"]]


async def test_a_dossier_without_its_date_is_quarantined_raw_and_the_rest_saved(world, tmp_path, reference):
    target = visible_numbers(world, BIG)[5]
    broken = {"on": True}

    def rewrite(request: dict, answer: dict) -> dict:
        for node in nodes_of(request, answer):
            if node["number"] == target and broken["on"]:
                del node["dateDerniereModification"]
        return answer

    with structlog.testing.capture_logs() as logs:
        async with Proxy(world, rewrite) as url:
            config, report = await sync_through(url, world, tmp_path)
            assert report.status == "partial" and report.exit_code == 65 and report.total("quarantined") == 1
            db = read_db(config)
            (row,) = db.execute("SELECT * FROM quarantine").fetchall()
            assert row["dossier_number"] == target and "dateDerniereModification" in row["error"]
            raw = json.loads(row["raw"])
            assert raw["number"] == target and "dateDerniereModification" not in raw and raw["champs"]
            assert [e["dossier"] for e in events(logs, "sync.dossier_quarantined")] == [target]
            mirror = dump(config, CLOCKS)
            assert without(mirror, tables=("quarantine",)) == without(reference["dump"], target,
                                                                       tables=("quarantine",))

            broken["on"] = False
            _, report = await sync_through(url, world, tmp_path, full=True)

    assert report.status == "ok" and db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert without(dump(config, CLOCKS), tables=("sync_state",)) == without(reference["dump"], tables=("sync_state",))


async def test_a_malformed_page_is_asked_again_smaller(world, tmp_path, reference):
    def rewrite(request: dict, answer: dict) -> dict:
        if request.get("operationName") == "getDossiersPage" and request["variables"]["first"] == PAGE_SIZE \
                and request["variables"]["demarcheNumber"] == BIG and request["variables"]["after"] is None:
            answer["data"]["demarche"]["dossiers"] = "une erreur de sérialisation"
        return answer

    with structlog.testing.capture_logs() as logs:
        async with Proxy(world, rewrite) as url:
            config, report = await sync_through(url, world, tmp_path)

    assert report.status == "ok" and report.total("quarantined") == 0
    (shrunk,) = events(logs, "sync.page_shrunk")
    assert shrunk["demarche"] == BIG and "demarche.dossiers" in shrunk["error"]
    assert dump(config, CLOCKS) == reference["dump"]


async def test_a_dossier_whose_pages_are_always_malformed_is_quarantined_with_the_answer(world, tmp_path, reference):
    target = visible_numbers(world, BIG)[7]

    def rewrite(request: dict, answer: dict) -> dict:
        if any(node["number"] == target for node in nodes_of(request, answer)):
            answer["data"]["demarche"]["dossiers"] = ["pas", "une", "connexion"]
        return answer

    async with Proxy(world, rewrite) as url:
        config, report = await sync_through(url, world, tmp_path)

    assert report.status == "partial" and report.exit_code == 65 and report.total("quarantined") == 1
    db = read_db(config)
    (row,) = db.execute("SELECT * FROM quarantine").fetchall()
    assert row["dossier_number"] == target and "demarche.dossiers" in row["error"]
    assert json.loads(row["raw"])["data"]["demarche"]["dossiers"] == ["pas", "une", "connexion"]
    mirror = dump(config, CLOCKS)
    assert without(mirror, tables=("quarantine",)) == without(reference["dump"], target, tables=("quarantine",))


async def test_a_download_that_fails_its_checksum_makes_the_run_partial_and_is_tried_again_later(
        world, tmp_path, reference):
    corrupted: list[str] = []

    def corrupt(path: str, body: bytes) -> bytes:
        if corrupted:
            return body
        corrupted.append(unquote(path))
        return body[:-1] + bytes([body[-1] ^ 0xFF])  # the right size, the wrong bytes

    with structlog.testing.capture_logs() as logs:
        async with Proxy(world, corrupt=corrupt) as url:
            config, report = await sync_through(url, world, tmp_path)

    assert report.status == "partial" and report.exit_code == 65 and report.total("files_failed") == 1
    assert "1 file(s) failed" in report.summary()
    (mismatch,) = events(logs, "sync.file_checksum_mismatch")
    assert mismatch["got"] != mismatch["expected"] and corrupted[0].endswith("/" + mismatch["file"])
    db = read_db(config)
    row = db.execute("SELECT * FROM files WHERE checksum = ?", [mismatch["expected"]]).fetchone()
    assert row["local_path"] is None and row["downloaded_at"] is None  # nothing of it is on disk
    assert row["attempts"] == 1 and "checksum" in row["failed_reason"] and row["given_up_at"] is None
    assert row["next_try_at"] > row["url_seen_at"]
    fetched = [e for e in logs if e["event"] in ("sync.file_downloaded", "sync.file_checksum_mismatch")
               and e.get("file") == mismatch["file"] and e.get("dossier") == row["dossier_number"]]
    assert len(fetched) == 1, "fetched once in the run, not again at the end of its démarche"
    assert report.total("files") == db.execute("SELECT count(*) FROM files WHERE checksum_ok = 1").fetchone()[0]
    assert not [p for p in config.sync.download_dir.rglob("*") if is_temporary(p.name)]
    status = gather(config)
    assert status["health"]["code"] == WARNING
    assert [r for r in status["health"]["reasons"] if "1 file(s) failed to download" in r["reason"]]

    # The next run, before the backoff is over, leaves it alone; once it is over (and its URL
    # expired meanwhile: the dossier is re-read for a fresh one), the file comes.
    async with Proxy(world, corrupt=corrupt) as url:
        config, report = await sync_through(url, world, tmp_path)
    assert report.status == "ok" and report.total("files") == 0
    db.execute("UPDATE files SET next_try_at = '2000-01-01T00:00:00+00:00', url_seen_at = '2000-01-01T00:00:00+00:00' "
               "WHERE file_key = ?", [row["file_key"]])
    db.commit()
    async with Proxy(world, corrupt=corrupt) as url:
        config, report = await sync_through(url, world, tmp_path)
    assert report.status == "ok" and report.total("files") == 1 and report.total("rereads") == 1
    row = db.execute("SELECT * FROM files WHERE file_key = ?", [row["file_key"]]).fetchone()
    path = Path(row["local_path"])
    assert row["checksum_ok"] == 1 and row["failed_reason"] is None and row["attempts"] == 1
    assert base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode() == row["checksum"]
    skip = {"attempts", "next_try_at"}
    assert [tuple(p for p in r if p[0] not in skip) for r in dump(config, CLOCKS)["files"]] == \
        [tuple(p for p in r if p[0] not in skip) for r in reference["dump"]["files"]]
    assert not [r for r in gather(config)["health"]["reasons"] if "failed to download" in r["reason"]]
