"""The client-side request budget: a rate limiter shared by every démarche of the process.

DS throttles each token to 400 requests per fixed epoch minute (docs/ds-api.md §3). The budget lets at
most ``per_minute`` requests start in ANY sliding 60-second window, which bounds every epoch minute
DS counts too, and nothing more: while the window has room a request goes at once, without spacing,
so a sync runs as fast as DS answers and only waits when it would really go over. It remembers the
start times of the last ``per_minute`` requests (a ring of at most 400 floats); request ``k +
per_minute`` may start 60 s after request ``k``, never earlier.

After a 429 the client calls ``hold(delay)``: every caller then waits for DS's window to reset, not
only the one that was refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

DEFAULT_PER_MINUTE = 300
WINDOW_SECONDS = 60.0


class RequestBudget:
    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque(maxlen=per_minute)  # start times of the last per_minute requests
        self._held_until = float("-inf")  # hold(): no request before this
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop _lock serves
        self.waits = 0  # acquisitions that had to wait
        self.waited_seconds = 0.0

    def _ready_at(self) -> float:
        """The earliest moment the next request may start."""
        ready = self._held_until
        if len(self._sent) == self.per_minute:  # the window is full: wait for its oldest to leave it
            ready = max(ready, self._sent[0] + WINDOW_SECONDS)
        return ready

    async def acquire(self) -> float:
        """Wait until one more request may be sent, take it, and return the seconds waited."""
        waited = 0.0
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # one budget per process lives across runs, each its own asyncio.run
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:  # first come, first served
            now = self._clock()
            while (ready := self._ready_at()) > now:
                held = self._held_until
                await self._sleep(ready - now)
                waited += ready - now
                # trust the sleep (asyncio may wake within its clock resolution of the deadline);
                # look again only when a hold() came in meanwhile
                now = max(self._clock(), ready) if self._held_until == held else self._clock()
            self._sent.append(now)
        if waited:
            self.waits += 1
            self.waited_seconds += waited
        return waited

    def resize(self, per_minute: int) -> None:
        """A new ``per_minute`` (the config was reloaded); the requests already started still count."""
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {per_minute}")
        if per_minute != self.per_minute:
            self.per_minute = per_minute
            self._sent = deque(self._sent, maxlen=per_minute)

    def hold(self, seconds: float) -> None:
        """Let no request through for ``seconds`` (DS answered 429); an earlier, longer hold stays."""
        self._held_until = max(self._held_until, self._clock() + seconds)
