"""Pure date arithmetic of the convention deadline, in Europe/Paris (no I/O, no clock).

- The deadline day is the reference day (the Paris calendar day of ``dateDepot``, or of the passage en
  instruction) plus N calendar months, clamped to the end of a shorter month: 31 July + 2 → 30
  September, 29 February + 2 → 29 April, 31 December + 2 → 28/29 February.
- It is valid until 23:59:59 Europe/Paris that day: something received at instant ``t`` is on time iff
  ``t``'s Paris calendar day is not after the deadline day (DS dates are whole seconds). The first
  instant past it is 00:00:00 Paris the next day, whatever the UTC offset (DST included).
- Reminders fall N days before the deadline day, at 00:00 Paris; the closure after ``grace_days``
  full days past it. A sending window (weekdays, hours) delays an action to its next opening.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone

# The day of an instant is one rule for the whole connector, kept in the store (exports and the store
# need it too, and cannot import the follow-up); named here for the follow-up's date arithmetic.
from connector.store.values import PARIS, paris_day, parse_ds  # noqa: F401 (parse_ds: re-exported)

UTC = timezone.utc

MOIS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
        "novembre", "décembre")
JOURS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, on the month's last day when that day does not exist."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def deadline_day(reference: datetime, months: int = 2) -> date:
    return add_months(paris_day(reference), months)


def start_of(day: date) -> datetime:
    """00:00:00 Europe/Paris on ``day`` (as an aware datetime in UTC)."""
    return datetime.combine(day, time(0), tzinfo=PARIS).astimezone(UTC)


def deadline_end(day: date) -> datetime:
    """The last second of the deadline day: 23:59:59 Europe/Paris."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=PARIS).astimezone(UTC)


def on_time(received_at: datetime, day: date) -> bool:
    """Received by 23:59:59 Paris on the deadline day (DS dates are whole seconds)."""
    return paris_day(received_at) <= day


def past_deadline(now: datetime, day: date, grace_days: int = 0) -> bool:
    """``now`` is after the deadline day plus ``grace_days`` full days (Paris)."""
    return now >= start_of(day + timedelta(days=1 + grace_days))


def reminder_at(day: date, days_before: int) -> datetime:
    """When the reminder "N days before" becomes due: 00:00 Paris, N days before the deadline day."""
    return start_of(day - timedelta(days=days_before))


def closure_at(day: date, grace_days: int = 0) -> datetime:
    return start_of(day + timedelta(days=1 + grace_days))


def fr_date(day: date) -> str:
    """The French long date: "30 septembre 2026", "1er octobre 2026"."""
    return f"{'1er' if day.day == 1 else day.day} {MOIS[day.month - 1]} {day.year}"


def in_window(at: datetime, weekdays: tuple[int, ...], hours: tuple[int, int]) -> bool:
    """``at`` (Paris) falls on one of ``weekdays`` (0 = Monday) within [start hour, end hour)."""
    local = at.astimezone(PARIS)
    return local.weekday() in weekdays and hours[0] <= local.hour < hours[1]


def next_window(at: datetime, weekdays: tuple[int, ...], hours: tuple[int, int]) -> datetime:
    """``at`` if inside the sending window, else the window's next opening (Paris hours)."""
    if in_window(at, weekdays, hours):
        return at
    local = at.astimezone(PARIS)
    day = local.date()
    for offset in range(8):
        candidate = day + timedelta(days=offset)
        opening = datetime.combine(candidate, time(hours[0]), tzinfo=PARIS)
        if candidate.weekday() in weekdays and opening > local:
            return opening.astimezone(UTC)
    raise ValueError("the sending window has no weekday")
