"""The request budget, on an injected clock: no real sleeping, no dependence on the wall clock."""

import asyncio

import pytest

from connector.ds.budget import RequestBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def budget(fake: FakeTime, per_minute: int = 300, burst: int | None = None) -> RequestBudget:
    return RequestBudget(per_minute, burst=burst, clock=fake.clock, sleep=fake.sleep)


async def stamps(b: RequestBudget, fake: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await b.acquire()
        out.append(fake.now - 1_000.0)
    return out


async def test_burst_goes_at_once_then_requests_are_spaced(fake):
    b = budget(fake, per_minute=60, burst=2)
    assert await stamps(b, fake, 5) == pytest.approx([0, 0, 1, 2, 3])


async def test_default_burst_is_one_second_of_rate(fake):
    b = budget(fake)  # 300/min: 5 per second
    assert b.burst == 5
    times = await stamps(b, fake, 7)
    assert times[:5] == pytest.approx([0] * 5)
    assert times[5:] == pytest.approx([0.2, 0.4])


async def test_no_minute_window_exceeds_per_minute_plus_burst(fake):
    b = budget(fake)
    times = await stamps(b, fake, 1_000)
    busiest = max(sum(1 for u in times if t <= u < t + 60) for t in times)
    assert busiest <= 300 + b.burst < 400  # DS's limit per token
    assert times[-1] == pytest.approx((1_000 - b.burst) / 5)  # and no slower than the rate


async def test_idle_time_refills_only_up_to_the_burst(fake):
    b = budget(fake, per_minute=60, burst=3)
    await stamps(b, fake, 3)
    fake.now += 3_600
    times = await stamps(b, fake, 5)
    assert [t - times[0] for t in times] == pytest.approx([0, 0, 0, 1, 2])


async def test_concurrent_callers_share_the_budget_in_order(fake):
    b = budget(fake, per_minute=60, burst=1)
    done: list[tuple[int, float]] = []

    async def caller(i: int) -> None:
        await b.acquire()
        done.append((i, fake.now - 1_000.0))

    await asyncio.gather(*(caller(i) for i in range(4)))
    assert done == [(0, 0), (1, 1), (2, 2), (3, 3)]


async def test_hold_stops_every_caller_until_the_window_resets(fake):
    b = budget(fake, per_minute=300)
    await b.acquire()
    b.hold(12.5)
    waited = await b.acquire()
    assert waited >= 12.5
    assert fake.now - 1_000.0 >= 12.5
    # the bucket restarts empty after a hold: requests resume at the rate, not in a burst
    before = fake.now
    await b.acquire()
    assert fake.now - before == pytest.approx(0.2)


async def test_hold_never_shortens_an_earlier_hold(fake):
    b = budget(fake)
    b.hold(30)
    b.hold(5)
    assert await b.acquire() >= 30


async def test_waits_are_counted(fake):
    b = budget(fake, per_minute=60, burst=1)
    assert await b.acquire() == 0
    assert await b.acquire() == pytest.approx(1)
    await b.acquire()
    assert b.waits == 2
    assert b.waited_seconds == pytest.approx(2)


@pytest.mark.parametrize("kwargs", [{"per_minute": 0}, {"per_minute": -5}, {"burst": 0}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RequestBudget(**kwargs)
