"""``[demarches.deadline]``: defaults (everything that writes to DS off), values, and every problem
listed at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import DeadlineConfig, parse_config
from connector.errors import ConfigError


def _parse(deadline: object) -> object:
    return parse_config({"demarches": [{"number": 1, "deadline": deadline}, {"number": 2}]}, Path("."), "c.toml")


def test_defaults_write_nothing_to_ds():
    config = parse_config({"demarches": [{"number": 1}]}, Path("."), "c.toml")
    d = config.demarches[0].deadline
    assert d == DeadlineConfig() and not d.reminders and not d.classer_sans_suite
    assert (d.reference, d.months, d.reminder_days, d.grace_days) == ("date_depot", 2, (15, 3), 0)


def test_values():
    config = _parse({"reference": "date_passage_en_instruction", "months": 3, "reminders": True,
                     "reminder_days": [3, 30, 7], "classer_sans_suite": True, "grace_days": 5,
                     "weekdays": ["MON", "wed"], "hours": [8, 12],
                     "reminder_template": "Relance {dossier} avant le {date_limite}"})
    d = config.demarches[0].deadline
    assert (d.reference, d.months, d.reminders, d.reminder_days, d.classer_sans_suite, d.grace_days) == (
        "date_passage_en_instruction", 3, True, (30, 7, 3), True, 5)
    assert d.weekdays == (0, 2) and d.hours == (8, 12)
    assert config.demarches[1].deadline == DeadlineConfig()


def test_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        _parse({"reference": "date_traitement", "months": 0, "reminders": "yes", "reminder_days": [0, 400],
                "weekdays": ["monday"], "hours": [17, 9], "closure_template": "{commune} {dossier",
                "motivation_template": "Hors délai : {ville}", "grace": 3})
    text = "\n".join(err.value.problems)
    for expected in ("reference: 'date_traitement' is not one of date_depot, date_passage_en_instruction",
                     "months: 0 is out of range", "reminders: expected true or false",
                     "reminder_days: 0, 400 out of range", "weekdays: expected a non-empty array",
                     "hours: expected [start, end]", "closure_template: not a valid template",
                     "motivation_template: unknown placeholder(s) {ville}",
                     "grace: unknown key (did you mean 'grace_days'?)"):
        assert expected in text, text
    assert len(err.value.problems) == 9


def test_not_a_table():
    with pytest.raises(ConfigError) as err:
        _parse(True)
    assert "deadline: expected a table ([demarches.deadline]), got a boolean" in "\n".join(err.value.problems)
