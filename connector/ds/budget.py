"""The client-side request budget: a rate limiter shared by every démarche of the process.

DS throttles each token to 400 requests per fixed epoch minute (NOTES.md §3). The budget lets
``per_minute`` requests through per minute, spaced evenly, with at most ``burst`` at once after an
idle time (a token bucket, written as GCRA: one "theoretical arrival time" instead of a token count,
so no float drift). No 60-second window ever sees more than ``per_minute + burst`` requests: 305 with
the defaults, well under 400, and requests come spaced instead of in one burst per minute.

After a 429 the client calls ``hold(delay)``: every caller then waits for the window to reset, not
only the one that was refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

DEFAULT_PER_MINUTE = 300


class RequestBudget:
    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {per_minute}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.per_minute = per_minute
        self.burst = burst or max(1, per_minute // 60)
        self._interval = 60.0 / per_minute
        self._tolerance = (self.burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # when the bucket will be full again ("theoretical arrival time")
        self._lock = asyncio.Lock()
        self.waits = 0  # acquisitions that had to wait
        self.waited_seconds = 0.0

    async def acquire(self) -> float:
        """Wait until one more request may be sent, take it, and return the seconds waited."""
        waited = 0.0
        async with self._lock:  # first come, first served
            while True:
                tat, now = self._tat, self._clock()
                slot = max(tat - self._tolerance, now)
                if slot > now:
                    await self._sleep(slot - now)
                    waited += slot - now
                if self._tat == tat:  # no hold() came in while we slept
                    break
            self._tat = max(tat, slot) + self._interval
        if waited:
            self.waits += 1
            self.waited_seconds += waited
        return waited

    def hold(self, seconds: float) -> None:
        """Let no request through for ``seconds`` (DS answered 429); then one, then the steady rate."""
        self._tat = max(self._tat, self._clock() + seconds + self._tolerance)
