"""Date helpers of the seeder: Paris days, French dates, calendar months, office hours, the clock's cap."""

from __future__ import annotations

import calendar
import random
from datetime import datetime, timedelta

from connector.simulator.state import PARIS, UTC


DAY = timedelta(days=1)

_MOIS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
         "novembre", "décembre")


def paris_day(dt: datetime) -> str:
    return dt.astimezone(PARIS).date().isoformat()


def fr_date(day: str) -> str:
    y, m, d = day.split("-")
    return f"{d} {_MOIS[int(m) - 1]} {y}"


def add_months(dt: datetime, months: int) -> datetime:
    """Calendar months later (earlier if negative), on the month's last day when the day does not exist."""
    month = dt.month - 1 + months
    year, month = dt.year + month // 12, month % 12 + 1
    return dt.replace(year=year, month=month, day=min(dt.day, calendar.monthrange(year, month)[1]))


def office_hours(rng: random.Random, t: datetime) -> datetime:
    """``t`` moved to a weekday between 8:00 and 18:00 Paris time, never earlier than ``t``."""
    local = t.astimezone(PARIS)
    if local.hour >= 18:
        local += DAY
    while local.weekday() >= 5:
        local += DAY
    if not 8 <= local.hour < 18:
        local = local.replace(hour=rng.randint(8, 17), minute=rng.randrange(60), second=rng.randrange(60),
                              microsecond=rng.randrange(1_000_000))
    out = local.astimezone(UTC)
    return out if out > t else t + timedelta(minutes=rng.uniform(3, 90))


def after(rng: random.Random, t: datetime, lo_days: float, hi_days: float, office: bool = True) -> datetime:
    out = t + timedelta(days=rng.uniform(lo_days, hi_days))
    return office_hours(rng, out) if office else out


def between(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    return lo + (hi - lo) * rng.random()


def not_after(rng: random.Random, t: datetime, lo: datetime, cap: datetime, office: bool = False) -> datetime:
    """``t``, or, when it falls after ``cap`` (an event still to come at the clock start), a date drawn
    uniformly between ``lo`` (the event before it) and ``cap``, in office hours when ``office`` and that
    still fits: such dates spread over the time they had, as DS's do, instead of piling up on ``cap``."""
    if t <= cap:
        return t
    out = between(rng, lo, cap)
    moved = office_hours(rng, out) if office else out
    return moved if moved <= cap else out


def deadline_day(depose_at: datetime, months: int = 2) -> str:
    """The convention deadline (issue 9): the Paris day of the dépôt plus ``months`` calendar months,
    clamped to the month's end; valid until 23:59:59 Paris that day."""
    return add_months(depose_at.astimezone(PARIS), months).date().isoformat()


def on_time(at: datetime, depose_at: datetime, months: int = 2) -> bool:
    """Received by the end of the deadline day (Europe/Paris)."""
    return paris_day(at) <= deadline_day(depose_at, months)
