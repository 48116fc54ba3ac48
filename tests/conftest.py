"""The shared DS simulator fixture: a real aiohttp server on a free loopback port, in its own thread.

``simulator`` is a small seeded world (seed 7, 60 dossiers); ``make_simulator(...)`` builds others.
The server has its own event loop, so async tests, sync tests and CLI subprocesses can all call it.

The suite runs on every core (pytest-xdist, ``-n auto --dist worksteal`` in pyproject.toml): each
worker takes half of the tests in order, and an idle one takes half of what another has left.
Nothing here listens on a fixed port or writes outside ``tmp_path`` (each worker has its own), and a
module-scoped fixture (a synced world, a built wheel) is built once per worker that runs the
module's tests. Collection puts the longest tests first (``LONGEST``, then the other ``slow``
ones), so that they start at once while the quick ones fill the other workers: no worker is left
alone with a minute-long test at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from connector.simulator.app import GRAPHQL_PATH, create_app
from connector.simulator.core import Simulator
from connector.simulator.control import PREFIX, Listener
from connector.simulator.state import World


# The longest tests (seconds, alone on a 2-core machine), in the order they start: a name no longer
# there only loses its place.
LONGEST = (
    "test_sync_crash.py::test_sigkill_at_random_moments_loses_and_duplicates_nothing",  # 47
    "test_packaging.py::test_wheel_in_a_fresh_venv_imports_every_module_and_runs_the_demo",  # 11 + 16 of venv
    "test_followup_campaign.py::test_two_months_of_campaign",  # 10
    "test_followup_crash.py::",  # 8
)


def _rank(item: pytest.Item) -> int:
    for rank, name in enumerate(LONGEST):
        if name in item.nodeid:
            return rank
    return len(LONGEST) + (item.get_closest_marker("slow") is None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: the longest first, then the other slow ones, then the rest


class ServedApp:
    """An aiohttp ``app`` served on 127.0.0.1:<free port> from a thread with its own event loop
    (``site``: the aiohttp site class, the simulator's ``Listener`` or ``web.TCPSite``); ``port``."""

    def __init__(self, app: web.Application, name: str, site: Any = web.TCPSite):
        self.app = app
        self._site = site
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"{name} did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(self._site(self._runner, "127.0.0.1", 0).start())
        self.port = self._runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


class SimulatorHandle(ServedApp):
    """A running simulator: ``url``, ``base_url``, ``token``, ``world``, ``sim`` and ``control()``."""

    def __init__(self, world: World, rate_limit: int, latency: float = 0.0):
        self.world = world
        app = create_app(world, rate_limit=rate_limit, latency=latency)
        self.sim: Simulator = app["sim"]
        self.token = next(iter(world.tokens))
        super().__init__(app, "ds-simulator", Listener)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = self.base_url + GRAPHQL_PATH

    def control(self, path: str, **payload: Any) -> dict[str, Any]:
        """POST to ``/_sim/<path>`` (runs on the server's loop); the JSON answer, or RuntimeError."""
        request = urllib.request.Request(self.base_url + PREFIX + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"/_sim/{path}: {exc.code} {exc.read().decode()}") from None

    def post(self, body: Any, *, token: str | None = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        """A synchronous POST to the GraphQL endpoint: status, body (JSON when it parses), headers."""
        sent = {"Content-Type": "application/json", "Authorization": f"Bearer {token or self.token}"}
        sent.update(headers or {})
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, headers={k: v for k, v in sent.items() if v is not None},
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, payload, got = exc.code, exc.read(), dict(exc.headers)
        try:
            return status, json.loads(payload), got
        except ValueError:
            return status, payload.decode(), got


@pytest.fixture
def make_simulator() -> Iterator[Any]:
    started: list[SimulatorHandle] = []

    def make(seed: int = 7, dossiers: int = 60, world: World | None = None, rate_limit: int = 400,
             latency: float = 0.0) -> SimulatorHandle:
        if world is None:
            from connector.simulator.seed import seed_world

            world = seed_world(seed=seed, dossiers=dossiers)
        handle = SimulatorHandle(world, rate_limit, latency)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture
def simulator(make_simulator: Any) -> SimulatorHandle:
    return make_simulator()
