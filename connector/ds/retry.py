"""The retry policy for read queries, as named pieces (tenacity). Mutations are never retried.

- ``is_retryable(exc)``: network errors, HTTP timeouts, truncated bodies, HTTP 5xx, 429 and GraphQL
  ``timeout`` are worth another try; auth errors, redirects, ``invalid_null``, ``not_found`` and
  everything else are not.
- ``wait_for(retry_state)``: a 429's delay (from ``rate_limit_delay``), else exponential backoff
  with jitter, capped at a minute.
- ``read_retrying(max_seconds, before_sleep, unreachable_seconds)``: both, bounded by a total time
  (waits included, so a 429 counts against it) and a number of attempts; no connection at all
  (``DsUnreachable``: refused, a name that does not resolve, TLS) is given up after
  ``unreachable_seconds`` (15 s: a few quick tries for a proxy that restarts, not minutes for a wrong URL).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from connector.errors import ApiUnavailable, DsUnreachable, PageFailed, RateLimited

MAX_ATTEMPTS = 10
UNREACHABLE_SECONDS = 15.0
RATE_LIMIT_MIN_WAIT = 1.0  # docs/ds-api.md rule 4: clamp to [1, 61] s from the local clock
RATE_LIMIT_MAX_WAIT = 61.0
RATE_LIMIT_JITTER = 1.0  # so that several processes do not all knock at the start of the minute

backoff = wait_exponential_jitter(max=60, jitter=2)
wall_clock = time.time  # RateLimit-Reset is absolute epoch seconds: compared to this clock


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (RateLimited, ApiUnavailable)):
        return True
    if isinstance(exc, PageFailed):
        return (exc.status or 0) >= 500 or "timeout" in exc.codes
    return False


def rate_limit_delay(
    headers: Mapping[str, str], *, now: float | None = None, jitter: float | None = None
) -> float:
    """Seconds to wait after a 429: ``Retry-After`` if a proxy added one, else until DS's
    ``RateLimit-Reset`` (absolute epoch seconds), else until the next epoch minute (DS's windows
    are aligned on it); clamped to [1, 61] s, plus jitter."""
    now = wall_clock() if now is None else now
    jitter = random.uniform(0, RATE_LIMIT_JITTER) if jitter is None else jitter
    delay = _retry_after(headers.get("Retry-After"), now)
    if delay is None:
        delay = _float(headers.get("RateLimit-Reset"))
        delay = 60 - now % 60 if delay is None else delay - now
    return min(max(delay, RATE_LIMIT_MIN_WAIT), RATE_LIMIT_MAX_WAIT) + jitter


def wait_for(retry_state: RetryCallState) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, RateLimited):
        return exc.delay
    return backoff(retry_state)


def stop_unreachable(seconds: float) -> Callable[[RetryCallState], bool]:
    """Stop when DS cannot be reached at all and the next try would start after ``seconds``."""

    def stop(retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if not isinstance(exc, DsUnreachable):
            return False
        elapsed = retry_state.seconds_since_start or 0.0
        return elapsed + (retry_state.upcoming_sleep or 0.0) > seconds

    return stop


def read_retrying(
    max_seconds: float,
    before_sleep: Callable[[RetryCallState], None],
    unreachable_seconds: float = UNREACHABLE_SECONDS,
) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        wait=wait_for,
        stop=stop_before_delay(max_seconds) | stop_after_attempt(MAX_ATTEMPTS)
        | stop_unreachable(unreachable_seconds),
        before_sleep=before_sleep,
        reraise=True,
    )


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    seconds = _float(value)
    if seconds is not None:
        return seconds
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None
