"""The request budget, on an injected clock: no real sleeping, no dependence on the wall clock.

The budget promises two things: no 60-second window (sliding, so every epoch minute DS counts too)
ever holds more than ``per_minute`` requests, and a request never waits while the window has room.
"""

import asyncio
import math
import random

import pytest

from connector.ds.budget import RequestBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def budget(fake: FakeTime, per_minute: int = 300) -> RequestBudget:
    return RequestBudget(per_minute, clock=fake.clock, sleep=fake.sleep)


async def stamps(b: RequestBudget, fake: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await b.acquire()
        out.append(fake.now - 1_000.0)
    return out


def busiest_window(times: list[float], seconds: float = 60.0) -> int:
    """The most requests any window [t, t + seconds) holds (the busiest one starts at a request)."""
    times = sorted(times)
    busiest, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < t + seconds:
            j += 1
        busiest = max(busiest, j - i)
    return busiest


def test_busiest_window_counts_what_it_should():
    assert busiest_window([0, 59.9, 60, 60.1, 119]) == 4  # [59.9, 119.9) holds the last four
    assert busiest_window([0, 60, 120]) == 1
    assert busiest_window([]) == 0


async def test_below_the_budget_nothing_waits(fake):
    b = budget(fake)  # 300 a minute
    assert await stamps(b, fake, 300) == [0.0] * 300  # the whole budget at once: no spacing
    assert fake.slept == [] and b.waits == 0 and b.waited_seconds == 0


async def test_a_steady_load_under_the_budget_never_waits(fake):
    b = budget(fake, per_minute=300)
    for _ in range(3_000):  # 290 a minute for more than ten minutes
        assert await b.acquire() == 0
        fake.now += 60 / 290
    assert fake.slept == [] and b.waits == 0


async def test_a_full_window_waits_exactly_until_its_oldest_request_leaves_it(fake):
    b = budget(fake, per_minute=400)
    times = await stamps(b, fake, 1_000)
    assert times == [0.0] * 400 + [60.0] * 400 + [120.0] * 200  # as fast as the budget allows, no faster
    assert busiest_window(times) == 400
    assert b.waits == 2  # the 401st and the 801st waited (60 s each); the others went behind them at once
    assert b.waited_seconds == pytest.approx(120)


async def test_no_sliding_window_ever_exceeds_the_budget_over_a_long_bursty_run(fake):
    """Hours of random bursts (some larger than the budget) and idle gaps; every window of
    60 s starting at any request, and every epoch minute, holds at most ``per_minute`` requests, and a
    request waited only when the 60 s before it already held ``per_minute``."""
    rng = random.Random(10)
    per_minute = 50
    b = budget(fake, per_minute=per_minute)
    times: list[float] = []
    waited: list[bool] = []
    while fake.now - 1_000 < 20_000:  # five and a half hours
        for _ in range(rng.choice([1, 1, 2, 5, 20, 49, 50, 51, 130])):  # a burst of callers
            waited.append(await b.acquire() > 0)
            times.append(fake.now)
        fake.now += rng.choice([0.0, 0.01, 0.5, 3, 20, 59.9, 60, 61, 300])  # then idle
    assert len(times) > 2_000 and sum(waited) > 100  # the run did push the budget, often
    assert busiest_window(times) == per_minute  # never above, and reached
    epoch_minutes: dict[int, int] = {}
    for t in times:
        epoch_minutes[math.floor(t / 60)] = epoch_minutes.get(math.floor(t / 60), 0) + 1
    assert max(epoch_minutes.values()) <= per_minute
    for i, t in enumerate(times):
        if waited[i]:  # it waited only because the window was full, and exactly until it had room
            assert i >= per_minute and t == pytest.approx(times[i - per_minute] + 60)
        else:  # it went at once because the window had room
            assert i < per_minute or t - times[i - per_minute] >= 60


async def test_concurrent_callers_share_the_budget_in_order(fake):
    b = budget(fake, per_minute=2)
    done: list[tuple[int, float]] = []

    async def caller(i: int) -> None:
        await b.acquire()
        done.append((i, fake.now - 1_000.0))

    await asyncio.gather(*(caller(i) for i in range(5)))
    assert done == [(0, 0), (1, 0), (2, 60), (3, 60), (4, 120)]


async def test_hold_stops_every_caller_until_the_window_resets(fake):
    b = budget(fake, per_minute=300)
    await b.acquire()
    b.hold(12.5)
    waited = await b.acquire()
    assert waited == pytest.approx(12.5)
    assert fake.now - 1_000.0 == pytest.approx(12.5)
    # after the hold the window is DS's again: what is left of the budget goes at once
    assert await stamps(b, fake, 298) == [pytest.approx(12.5)] * 298
    assert await b.acquire() == pytest.approx(60 - 12.5)  # the 301st waits for the first to leave the window


async def test_a_hold_that_comes_in_during_a_wait_is_honoured(fake):
    b = budget(fake, per_minute=1)
    await b.acquire()
    real_sleep = fake.sleep

    async def sleep_and_get_refused(seconds: float) -> None:
        await real_sleep(seconds)
        if len(fake.slept) == 1:
            b.hold(30)  # another caller got a 429 while this one was waiting

    b._sleep = sleep_and_get_refused
    assert await b.acquire() == pytest.approx(90)


async def test_hold_never_shortens_an_earlier_hold(fake):
    b = budget(fake)
    b.hold(30)
    b.hold(5)
    assert await b.acquire() == pytest.approx(30)


async def test_waits_are_counted(fake):
    b = budget(fake, per_minute=1)
    assert await b.acquire() == 0
    assert await b.acquire() == pytest.approx(60)
    await b.acquire()
    assert b.waits == 2
    assert b.waited_seconds == pytest.approx(120)


@pytest.mark.parametrize("per_minute", [0, -5])
def test_nonsense_settings_are_refused(per_minute):
    with pytest.raises(ValueError):
        RequestBudget(per_minute)
