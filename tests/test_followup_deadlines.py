"""The deadline arithmetic (issue 9 §1): calendar months clamped to the month's end, the deadline day
valid until 23:59:59 Europe/Paris, across DST changes; reminder, closure and sending-window instants."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from connector.followup.deadlines import (
    PARIS, UTC, add_months, closure_at, deadline_day, deadline_end, fr_date, next_window, on_time, parse_ds,
    past_deadline, reminder_at,
)


@pytest.mark.parametrize("start, months, expected", [
    (date(2026, 7, 31), 2, date(2026, 9, 30)),    # 31 July -> 30 September
    (date(2028, 2, 29), 2, date(2028, 4, 29)),    # 29 February -> 29 April
    (date(2026, 12, 31), 2, date(2027, 2, 28)),   # 31 December -> 28 February
    (date(2027, 12, 31), 2, date(2028, 2, 29)),   # ... 29 in a leap year
    (date(2026, 12, 30), 2, date(2027, 2, 28)),
    (date(2026, 8, 31), 1, date(2026, 9, 30)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2026, 11, 15), 2, date(2027, 1, 15)),   # across the year
    (date(2026, 3, 15), 14, date(2027, 5, 15)),
    (date(2026, 4, 30), 2, date(2026, 6, 30)),
])
def test_calendar_months_clamped_to_the_end_of_a_shorter_month(start, months, expected):
    assert add_months(start, months) == expected


def test_the_reference_day_is_the_paris_day_of_the_instant():
    # 23:30 UTC on 31 July is already 1 August in Paris (UTC+2): the deadline is 1 October.
    assert deadline_day(datetime(2026, 7, 31, 23, 30, tzinfo=UTC)) == date(2026, 10, 1)
    assert deadline_day(parse_ds("2026-07-31T23:59:59+02:00")) == date(2026, 9, 30)
    assert deadline_day(parse_ds("2026-08-01T00:00:00+02:00")) == date(2026, 10, 1)


def test_the_last_second_of_the_deadline_day_and_the_first_of_the_next_across_the_autumn_dst_change():
    # Dépôt 25 August 2026 (UTC+2); deadline 25 October 2026, the day DST ends (UTC+1 from 03:00).
    day = deadline_day(parse_ds("2026-08-25T10:00:00+02:00"))
    assert day == date(2026, 10, 25)
    last = parse_ds("2026-10-25T23:59:59+01:00")
    first = parse_ds("2026-10-26T00:00:00+01:00")
    assert deadline_end(day) == last
    assert (first - last) == timedelta(seconds=1)
    assert on_time(last, day) and not on_time(first, day)
    assert not past_deadline(last, day) and past_deadline(first, day)
    # In UTC the day ended at 22:59:59Z, not 21:59:59Z (a UTC+2 offset would be off by an hour).
    assert not on_time(datetime(2026, 10, 25, 23, 0, 0, tzinfo=UTC), day)
    assert on_time(datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC), day)
    assert on_time(datetime(2026, 10, 25, 21, 59, 59, tzinfo=UTC), day)


def test_across_the_spring_dst_change():
    # Deadline 29 March 2026 (DST starts at 02:00 that day): its end is 23:59:59+02:00 = 21:59:59Z.
    day = deadline_day(parse_ds("2026-01-29T09:00:00+01:00"))
    assert day == date(2026, 3, 29)
    assert deadline_end(day) == datetime(2026, 3, 29, 21, 59, 59, tzinfo=UTC)
    assert on_time(datetime(2026, 3, 29, 21, 59, 59, tzinfo=UTC), day)
    assert not on_time(datetime(2026, 3, 29, 22, 0, 0, tzinfo=UTC), day)
    # A day of 23 hours: the day after begins 23 hours after the deadline day began.
    assert closure_at(day) - closure_at(day - timedelta(days=1)) == timedelta(hours=23)


def test_grace_days_reminders_and_french_dates():
    day = date(2026, 9, 30)
    assert closure_at(day) == datetime(2026, 10, 1, 0, 0, tzinfo=PARIS)
    assert closure_at(day, 3) == datetime(2026, 10, 4, 0, 0, tzinfo=PARIS)
    assert not past_deadline(datetime(2026, 10, 3, 23, 59, 59, tzinfo=PARIS), day, 3)
    assert past_deadline(datetime(2026, 10, 4, 0, 0, 0, tzinfo=PARIS), day, 3)
    assert reminder_at(day, 15) == datetime(2026, 9, 15, 0, 0, tzinfo=PARIS)
    assert reminder_at(day, 3) == datetime(2026, 9, 27, 0, 0, tzinfo=PARIS)
    assert fr_date(day) == "30 septembre 2026"
    assert fr_date(date(2027, 2, 1)) == "1er février 2027"
    assert fr_date(date(2026, 8, 15)) == "15 août 2026"


def test_the_sending_window():
    weekdays, hours = (0, 1, 2, 3, 4), (9, 17)
    friday_evening = datetime(2026, 10, 16, 18, 30, tzinfo=PARIS)
    assert next_window(friday_evening, weekdays, hours) == datetime(2026, 10, 19, 9, 0, tzinfo=PARIS)
    inside = datetime(2026, 10, 19, 10, 0, tzinfo=PARIS)
    assert next_window(inside, weekdays, hours) == inside
    early = datetime(2026, 10, 20, 7, 0, tzinfo=PARIS)
    assert next_window(early, weekdays, hours) == datetime(2026, 10, 20, 9, 0, tzinfo=PARIS)
    assert next_window(datetime(2026, 10, 20, 17, 0, tzinfo=PARIS), weekdays, hours) == datetime(
        2026, 10, 21, 9, 0, tzinfo=PARIS)
