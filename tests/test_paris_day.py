"""The day of an instant, the connector's one rule (``connector.store.values``): its Europe/Paris calendar
day, whatever offset the text carries. DS writes Paris offsets; the connector's own timestamps are UTC, so
their first 10 characters are the UTC day, wrong between 00:00 and 01:00 (winter) or 02:00 (summer) Paris.
The expected days are worked out by hand from the offsets (CET +01:00, CEST +02:00; the changes at 01:00
UTC on 29 March and 25 October 2026)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from connector.followup import deadlines
from connector.store import values
from connector.store.values import day_of, paris_day, parse_ds

CASES = [
    # (stored text, its Paris day)
    # 29 March 2026: 02:00 CET -> 03:00 CEST (01:00 UTC)
    ("2026-03-28T22:59:59+00:00", "2026-03-28"),  # 23:59:59 CET
    ("2026-03-28T23:00:00+00:00", "2026-03-29"),  # 00:00 CET
    ("2026-03-29T00:30:00+00:00", "2026-03-29"),  # 01:30 CET, the last hour before the change
    ("2026-03-29T01:30:00+00:00", "2026-03-29"),  # 03:30 CEST, just after it
    ("2026-03-29T21:59:59+00:00", "2026-03-29"),  # 23:59:59 CEST: the offset is +2 from now on
    ("2026-03-29T22:00:00+00:00", "2026-03-30"),  # 00:00 CEST (with +1 it would still be the 29th)
    # 25 October 2026: 03:00 CEST -> 02:00 CET (01:00 UTC)
    ("2026-10-24T21:59:59+00:00", "2026-10-24"),  # 23:59:59 CEST
    ("2026-10-24T22:30:00+00:00", "2026-10-25"),  # 00:30 CEST
    ("2026-10-25T00:30:00+00:00", "2026-10-25"),  # 02:30 CEST, the first 02:30
    ("2026-10-25T01:30:00+00:00", "2026-10-25"),  # 02:30 CET, the second
    ("2026-10-25T22:30:00+00:00", "2026-10-25"),  # 23:30 CET: the offset is +1 from now on
    ("2026-10-25T23:00:00+00:00", "2026-10-26"),  # 00:00 CET
    # 23:30 UTC is the next day in Paris, summer and winter; "Z" as DS may write it
    ("2026-01-15T23:30:00+00:00", "2026-01-16"),
    ("2026-07-15T23:30:00+00:00", "2026-07-16"),
    ("2026-10-14T22:30:00Z", "2026-10-15"),
    # 00:30 Paris is that day, whichever way it is written
    ("2026-01-16T00:30:00+01:00", "2026-01-16"),
    ("2026-07-16T00:30:00+02:00", "2026-07-16"),
    ("2026-07-15T22:30:00+00:00", "2026-07-16"),
    # a DS plain date (a DateChamp, a configured day) is a Paris day already
    ("2026-10-15", "2026-10-15"),
    # and a whole second before midnight Paris stays that day
    ("2026-12-31T23:59:59+01:00", "2026-12-31"),
    ("2026-12-31T22:59:59+00:00", "2026-12-31"),
    ("2026-12-31T23:00:00+00:00", "2027-01-01"),
]


@pytest.mark.parametrize(("text", "day"), CASES)
def test_the_day_of_an_instant_is_its_paris_day(text, day):
    assert day_of(text) == day
    assert paris_day(parse_ds(text)) == date.fromisoformat(day)


def test_the_first_ten_characters_are_not_the_rule():
    """The cases where the UTC string's own day differs (what ``substr(t, 1, 10)`` gave): the table
    above is not one a string cut would pass."""
    differs = [t for t, d in CASES if t[:10] != d]
    assert len(differs) >= 6


def test_no_text_no_day_and_a_bad_text_is_an_error():
    assert day_of(None) is None and day_of("") is None and parse_ds(None) is None
    with pytest.raises(ValueError):
        day_of("15/10/2026")


def test_an_aware_datetime_in_any_zone_has_the_same_day():
    at = datetime(2026, 10, 14, 22, 30, tzinfo=timezone.utc)
    assert paris_day(at) == paris_day(at.astimezone(values.PARIS)) == date(2026, 10, 15)


def test_one_definition_the_follow_up_uses_the_stores():
    assert deadlines.parse_ds is values.parse_ds
    assert deadlines.paris_day is values.paris_day
    assert deadlines.PARIS is values.PARIS
