"""The engine's parts on their own: the reconciliation's decision, the saver's fallback one dossier at
a time, the variables an operation accepts, the stop event, the démarches run concurrently."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from connector import store
from connector.config import load_config
from connector.credentials import ApiToken
from connector.ds.client import DsClient
from connector.errors import ConfigError, InvalidQuery
from connector.store.door import enter
from connector.store.mirror import Held
from connector.sync.engine import DemarcheReport
from connector.sync.reconcile import decide
from syncenv import dump, read_db, simulator_config, sync, write_config

DATA = Path(__file__).parent / "data"
DEMARCHE = 4242
OVERLAP = timedelta(minutes=10)
T = "2026-11-0{}T10:00:00+01:00"  # T.format(day)


# --- the reconciliation's decision, alone --------------------------------------------------------


def test_decide_fetches_what_differs_checks_what_vanished_unflags_and_retries():
    remote = {1: T.format(1), 2: T.format(2), 3: T.format(3), 5: T.format(5), 6: T.format(6)}
    mirror = Held(
        dates={1: T.format(1), 2: "2026-11-02T09:00:00+00:00",  # same instant, other offset: equal
               3: T.format(2), 4: T.format(4), 6: T.format(6), 7: T.format(7), 8: T.format(8)},
        in_trash=frozenset({6, 7}),
        quarantined=frozenset({3, 8, 9}),
    )
    plan = decide(remote, mirror, overlap=OVERLAP, page_size=100)
    assert plan.unflag == [6]  # in the trash, yet listed again
    assert plan.refetch == [3, 5]  # re-dated, and missing locally
    assert plan.check_vanished == [4, 8]  # held, not listed, not in the trash (7 is)
    assert plan.retry == [8, 9]  # quarantined, 3 is refetched anyway
    assert plan.refetch_since == "2026-11-03T09:50:00+01:00"  # one page from the oldest (3) beats 2 re-reads


def test_decide_prefers_a_dossiers_pass_when_it_costs_fewer_requests():
    remote = {n: T.format(1 + n % 9) for n in range(1, 301)}
    mirror = Held(dates={n: "2025-01-01T00:00:00+00:00" for n in range(1, 301)})
    plan = decide(remote, mirror, overlap=OVERLAP, page_size=100)
    assert plan.refetch == list(range(1, 301))
    assert plan.refetch_since == "2026-11-01T09:50:00+01:00"  # the oldest minus the overlap
    few = decide(remote, Held(dates={**mirror.dates, **{n: remote[n] for n in range(3, 301)}}),
                 overlap=OVERLAP, page_size=100)
    assert few.refetch == [1, 2] and few.refetch_since is None  # 2 re-reads < a 3-page pass


def test_decide_with_nothing_different_does_nothing():
    remote = {1: T.format(1), 2: T.format(2)}
    plan = decide(remote, Held(dates=dict(remote)), overlap=OVERLAP, page_size=100)
    assert (plan.unflag, plan.refetch, plan.check_vanished, plan.retry) == ([], [], [], [])


# --- the door's fallback one dossier at a time ---------------------------------------------------


def fixture_nodes() -> list[dict]:
    answer = json.loads((DATA / "dossiers_page.json").read_text(encoding="utf-8"))
    return answer["data"]["demarche"]["dossiers"]["nodes"]


def test_a_page_saved_one_dossier_at_a_time_keeps_the_file_urls_of_the_others(tmp_path):
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/api/v2/graphql", "x" * 40, [DEMARCHE]))
    db = store.open_db(config.database.path)
    nodes = fixture_nodes()
    broken = next(n for n in nodes if n["number"] == 1002)
    del broken["messages"][0]["createdAt"]  # valid for the engine, the saver chokes on it
    urls = {n["number"]: sorted(f["url"] for m in n["messages"] for f in m.get("attachments") or [])
            + sorted(f["url"] for c in n["champs"] for f in c.get("files") or []) for n in nodes}
    assert urls[1001] and urls[1003], "the fixture's other dossiers have files with URLs"
    given = copy.deepcopy(nodes)
    entry = enter(db, DEMARCHE, nodes)
    counts = entry.counts

    assert nodes == given, "the saver changed the caller's nodes"
    assert sorted(counts.changed) == [1001, 1003] and [n for n, _ in entry.quarantined] == [1002]
    for number in (1001, 1003):
        stored = sorted(u for (u,) in db.conn.execute("SELECT url FROM files WHERE dossier_number = ?", [number]))
        assert stored == sorted(urls[number]), number
    (raw,) = db.conn.execute("SELECT raw FROM dossiers WHERE number = 1001").fetchone()
    assert '"url"' not in raw
    db.close()


# --- variables checked against the operation -------------------------------------------------------


@pytest.mark.parametrize("variables, problem", [
    ({"demarcheNumber": 1, "first": 10, "after": None, "updatedSInce": T.format(1)},
     "unknown variable $updatedSInce"),
    ({"first": 10, "updatedSince": T.format(1)}, "required variable $demarcheNumber missing"),
    ({"demarcheNumber": None, "first": 10}, "required variable $demarcheNumber missing"),
])
def test_variables_the_operation_does_not_declare_or_needs_are_refused_before_sending(
        simulator, variables, problem):
    async def ask() -> DsClient:
        async with DsClient(simulator.url, ApiToken(simulator.token, "test")) as client:
            with pytest.raises(InvalidQuery) as caught:
                await client.query("dossiers_page", variables)
            assert any(problem in p for p in caught.value.problems), caught.value.problems
            await client.query("dossiers_page", {"demarcheNumber": min(simulator.world.demarches), "first": 1,
                                                 "updatedSince": T.format(1)})
            return client

    client = asyncio.run(ask())
    assert client.stats.requests == 1  # only the well-formed query went out


# --- stop: the run ends after the page being stored, and the next run resumes --------------------


BOOKKEEPING = {"sync_runs": {"*"}, "sync_state": {"*"}, "demarches": {"synced_at"}, "dossiers": {"synced_at"},
               "files": {"url", "url_seen_at", "downloaded_at", "local_path"}, "tombstones": {"recorded_at"},
               "pending_deletions": {"recorded_at"}, "quarantine": {"first_seen_at", "last_seen_at"}}


def test_stop_set_after_the_first_page_ends_the_run_stopped_and_the_next_run_resumes(simulator, tmp_path):
    config = simulator_config(tmp_path / "stopped", simulator, page_size=5)
    stop = asyncio.Event()
    seen: list[tuple[int, int]] = []
    log = structlog.get_logger("test")

    def progress(report: DemarcheReport) -> None:
        seen.append((report.number, report.pages))
        # progress also reports phases and deletion pages: wait for the first committed page of dossiers
        # (5 a page: every démarche of this world has at least two, none can be done before the stop)
        if report.dossiers and not stop.is_set():
            stop.set()
            log.info("test.stop_set")

    with structlog.testing.capture_logs() as logs:
        report = sync(config, progress=progress, stop=stop)

    assert report.status == "stopped" and report.stopped
    names = [e["event"] for e in logs]
    after_stop = names[names.index("test.stop_set"):]
    assert "api.request" not in after_stop, "a request was sent after the stop"
    assert "sync.demarche_done" not in names
    with read_db(config) as db:
        (status,) = db.execute("SELECT status FROM sync_runs").fetchone()
        committed = db.execute("SELECT count(*) FROM dossiers").fetchone()[0]
        cursors = db.execute("SELECT count(*) FROM sync_state WHERE stream = 'dossiers' "
                             "AND after_cursor IS NOT NULL").fetchone()[0]
    assert status == "stopped"
    assert committed == sum(report.total(k) for k in ("new",)) and committed >= 5
    assert cursors >= 1  # the stopped pass can resume

    with structlog.testing.capture_logs() as logs:
        again = sync(config)
    assert again.status == "ok"
    assert any(e["event"] == "sync.stream_resumed" for e in logs)

    fresh = simulator_config(tmp_path / "fresh", simulator, page_size=10)
    assert sync(fresh).status == "ok"
    assert dump(config, BOOKKEEPING) == dump(fresh, BOOKKEEPING)


# --- démarches concurrently -----------------------------------------------------------------------


def test_demarches_run_concurrently_and_each_log_line_names_its_own(simulator, tmp_path):
    config = simulator_config(tmp_path, simulator, page_size=5)
    assert config.sync.concurrency == 4 and len(config.demarches) > 1
    bound = structlog.contextvars.merge_contextvars
    with structlog.testing.capture_logs(processors=[bound]) as logs:
        report = sync(config)
    assert report.status == "ok"
    requests = [e for e in logs if e["event"] == "api.request" and "demarcheNumber" in e["variables"]]
    assert requests and all(e["demarche"] == e["variables"]["demarcheNumber"] for e in requests)
    order = [e["demarche"] for e in logs if e["event"] in ("api.request", "sync.demarche_done")]
    first_done = next(i for i, e in enumerate(logs) if e["event"] == "sync.demarche_done")
    # One after another, no other démarche would have asked DS anything before the first was done. (Its
    # pages need not be committed by then: a small démarche can be done before a loaded machine commits
    # a page of the others, all of them under way.)
    started = {e["demarche"] for e in logs[:first_done] if e["event"] == "api.request"}
    assert len(started) > 1, f"one démarche after another: {order}"


@pytest.mark.parametrize("value, expected", [
    ("0", "[sync] concurrency: 0 is out of range, must be 1 to 16"),
    ("17", "[sync] concurrency: 17 is out of range, must be 1 to 16"),
    ('"4"', "[sync] concurrency: expected an integer"),
])
def test_concurrency_is_checked(tmp_path, value, expected):
    path = write_config(tmp_path, "http://127.0.0.1:9/api/v2/graphql", "x" * 40, [1], extra=f"concurrency = {value}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_concurrency_is_read(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9/api/v2/graphql", "x" * 40, [1], extra="concurrency = 1")
    assert load_config(path).sync.concurrency == 1


def test_the_deletion_lists_are_read_while_the_dossier_pages_are(simulator, tmp_path):
    """No tail: each démarche's deleted and trash lists are asked before its last dossier page is
    committed (three streams at once), and every list still ends committed with its bookmark."""
    config = simulator_config(tmp_path, simulator, page_size=2)
    bound = structlog.contextvars.merge_contextvars
    with structlog.testing.capture_logs(processors=[bound]) as logs:
        report = sync(config)
    assert report.status == "ok"
    for demarche in (d.number for d in config.demarches):
        mine = [(i, e) for i, e in enumerate(logs) if e.get("demarche") == demarche]
        pages = [i for i, e in mine if e["event"] == "sync.page_committed" and e["stream"] == "dossiers"]
        assert len(pages) >= 3, demarche  # enough dossier pages for "while" to mean something
        for operation in ("getDeletedDossiersPage", "getPendingDeletedDossiersPage"):
            asked = next(i for i, e in mine if e["event"] == "api.request" and e.get("operation") == operation)
            assert asked < pages[-1], (demarche, operation)
        for stream in ("deleted", "pending_deleted"):
            assert any(e["event"] == "sync.page_committed" and e["stream"] == stream for _, e in mine)
    db = read_db(config)
    streams = {(n, s) for n, s in db.execute("SELECT demarche_number, stream FROM sync_state "
                                             "WHERE last_success_at IS NOT NULL AND after_cursor IS NULL")}
    assert {(d.number, s) for d in config.demarches for s in ("dossiers", "deleted", "pending_deleted")} <= streams
