"""The simulator as slow as DS when asked: ``latency`` seconds added to every GraphQL answer, each
request waiting on its own, so concurrent requests overlap instead of queueing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from connector.simulator.app import create_app
from connector.simulator.seed import POITIERS, seed_world
from simworld import start_simulate

QUERY = {"query": f"{{ demarche(number: {POITIERS}) {{ number }} }}"}


async def _timed_posts(simulator, n: int) -> list[tuple[float, float]]:
    """``n`` concurrent POSTs: each one's (start, end) on the monotonic clock; every answer checked."""
    headers = {"Authorization": f"Bearer {simulator.token}"}

    async def one(session: aiohttp.ClientSession) -> tuple[float, float]:
        start = time.monotonic()
        async with session.post(simulator.url, json=QUERY, headers=headers) as response:
            assert response.status == 200
            assert await response.json() == {"data": {"demarche": {"number": POITIERS}}}
        return start, time.monotonic()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as session:
        return list(await asyncio.gather(*(one(session) for _ in range(n))))


async def test_concurrent_requests_are_delayed_independently(make_simulator):
    n, latency = 8, 0.3
    simulator = make_simulator(dossiers=6, latency=latency)
    intervals = await _timed_posts(simulator, n)
    assert all(end - start >= latency for start, end in intervals)  # every answer carries the latency
    # Served one after another (a blocking delay), the last answer would come n × latency = 2.4 s after
    # the first request, and the answers would arrive latency apart; waiting side by side, about 0.3 s.
    first, last = min(start for start, _ in intervals), max(end for _, end in intervals)
    assert last - first < n * latency * 0.6


async def test_no_latency_by_default_and_the_control_surface_sets_it(make_simulator):
    simulator = make_simulator(dossiers=6)
    assert simulator.sim.latency == 0
    assert simulator.control("latency", seconds=0.25) == {"latency": 0.25}
    [(start, end)] = await _timed_posts(simulator, 1)
    assert end - start >= 0.25
    with pytest.raises(RuntimeError, match="seconds must be 0 or more"):
        simulator.control("latency", seconds=-1)


def test_the_app_factory_refuses_a_negative_latency():
    with pytest.raises(ValueError, match="latency"):
        create_app(seed_world(seed=1, dossiers=1), latency=-0.5)


def test_simulate_latency_option_is_announced_and_applied():
    process, lines, url = start_simulate("--dossiers", "6", "--seed", "3", "--token", "test-token-123",
                                         "--latency", "0.4")
    try:
        assert "Latency: 0.4 s added to every GraphQL answer." in lines

        class Remote:
            token = "test-token-123"

        Remote.url = url
        [(start, end)] = asyncio.run(_timed_posts(Remote, 1))
        assert end - start >= 0.4
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_simulate_refuses_a_negative_latency():
    result = subprocess.run([sys.executable, "-m", "connector", "simulate", "--latency", "-1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--latency" in result.stderr and "Traceback" not in result.stderr
