"""``previous = N`` and ``[demarches.renewal]``: values, defaults (no reminder sent unless asked), and
check-config's problems: previous not configured, the same démarche, another profile, a missing date."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import RenewalConfig, parse_config, superseded_by
from connector.errors import ConfigError

RENEWAL = {"cutoff": "2026-10-29", "new_schools": "2026-08-29", "rentree": "2026-09-01"}


def _parse(*demarches: dict) -> object:
    return parse_config({"demarches": list(demarches)}, Path("."), "c.toml")


def _problems(*demarches: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _parse(*demarches)
    return err.value.problems


def test_defaults_send_nothing_and_the_previous_campaign_is_superseded():
    config = _parse({"number": 1}, {"number": 2, "previous": 1, "renewal": RENEWAL})
    r = config.demarches[1].renewal
    assert isinstance(r, RenewalConfig) and not r.reminders
    assert (str(r.cutoff), str(r.new_schools), str(r.rentree), r.reminder_days) == (
        "2026-10-29", "2026-08-29", "2026-09-01", 15)
    assert (r.weekdays, r.hours) == ((0, 1, 2, 3, 4), (9, 17))
    assert superseded_by(config, 1) == 2 and superseded_by(config, 2) is None
    assert config.demarches[0].renewal is None and config.demarches[0].previous is None


def test_values():
    config = _parse({"number": 1}, {"number": 2, "previous": 1, "renewal": {
        **RENEWAL, "reminders": True, "reminder_days": 10, "weekdays": ["mon", "TUE"], "hours": [8, 12],
        "reminder_template": "Bonjour {collectivite}, dossier {dossier}, avant le {date_limite}"}})
    r = config.demarches[1].renewal
    assert (r.reminders, r.reminder_days, r.weekdays, r.hours) == (True, 10, (0, 1), (8, 12))


def test_previous_not_configured_same_demarche_other_profile_all_listed():
    problems = _problems(
        {"number": 1, "profile": "poitiers"},
        {"number": 2, "previous": 9, "renewal": RENEWAL},
        {"number": 3, "previous": 3, "renewal": RENEWAL},
        {"number": 4, "previous": 1, "profile": "occitanie", "renewal": RENEWAL},
        {"number": 5, "previous": 4},
        {"number": 6, "renewal": RENEWAL},
    )
    text = "\n".join(problems)
    assert "number = 2 previous: démarche 9 is not configured" in text
    assert "number = 3 previous: 3 is this same démarche" in text
    assert "number = 4 previous: démarche 1 has another profile (poitiers, not occitanie)" in text
    assert "number = 5 previous: add a [demarches.renewal] table" in text
    assert "number = 6 [renewal]: set previous = N" in text


def test_bad_renewal_values_listed_at_once():
    problems = _problems({"number": 1}, {"number": 2, "previous": 1, "renewal": {
        "cutoff": "29/10/2026", "new_schools": "2026-11-02", "reminders": "yes", "reminder_days": 0,
        "hours": [17, 9], "reminder_template": "{commune}", "cut_off": 1}})
    text = "\n".join(problems)
    for expected in ("cutoff: expected a date", "rentree: missing", "reminders: expected true or false",
                     "hours: expected [start, end]", "reminder_template: unknown placeholder",
                     "cut_off: unknown key"):
        assert expected in text, (expected, text)


def test_check_config_shows_the_pair_of_the_example(tmp_path, monkeypatch):
    from connector.commands.check_config import summary as check

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ds-api-token").write_text("c2VjcmV0LXV1aWQ7c3VwZXItc2VjcmV0LXZhbHVl\n")
    (creds / "ds-api-token").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    summary = check(example)
    assert "12346  (renews 12345, cut-off 2027-10-29, reminders off)" in summary
