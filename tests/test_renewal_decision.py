"""The renewal decision (connector/followup/renewal.py), table-driven: one previous campaign, one new
campaign's dossiers, each school's status, holder and opening date before and after the cut-off."""

from __future__ import annotations

from datetime import date

import pytest

from connector.followup.renewal import Calendar, NewDossier, OpenSchool, decide, fr_date, reminder_due

CAL = Calendar(rentree=date(2026, 9, 1), new_schools=date(2026, 8, 29), cutoff=date(2026, 10, 29))
BEFORE, CUTOFF_DAY, AFTER = date(2026, 10, 15), date(2026, 10, 29), date(2026, 10, 30)

PREVIOUS = [
    OpenSchool("0000001A", 1, "S-A"), OpenSchool("0000002B", 1, "S-A"),  # A renews both
    OpenSchool("0000003C", 2, "S-B"), OpenSchool("0000004D", 2, "S-B"),  # B renews one, drops one
    OpenSchool("0000005E", 3, "S-C"),  # C files nothing
    OpenSchool("0000006F", 4, "S-E"), OpenSchool("0000007G", 5, "S-F"),  # E and F merge into G
    OpenSchool("0000008H", 6, "S-H"),  # H's new dossier is classé sans suite
    OpenSchool("0000009J", 7, "S-J"),  # J files after the cut-off
    OpenSchool("0000010K", 8, "S-K"), OpenSchool("0000010K", 9, "S-K2"),  # one school held twice
]
NEW = [
    NewDossier(11, "accepte", "S-A", date(2026, 6, 10), ("0000001A", "0000002B"), convention="received_on_time"),
    NewDossier(12, "en_construction", "S-B", date(2026, 9, 10), ("0000003C", "0000099N")),
    NewDossier(13, "accepte", "S-G", date(2026, 7, 1), ("0000006F", "0000007G"), convention="awaiting"),
    NewDossier(14, "sans_suite", "S-H", date(2026, 9, 20), ("0000008H",)),
    NewDossier(15, "accepte", "S-L", date(2026, 8, 20), ("0000098M",)),
    NewDossier(16, "accepte", "S-L2", date(2026, 8, 29), ("0000097L",)),
    NewDossier(17, "en_instruction", "S-K", date(2026, 10, 29), ("0000010K",)),
    NewDossier(18, "brouillon", "S-C", None, ("0000005E",)),  # never counts
    NewDossier(19, "refuse", "S-X", date(2026, 9, 1), ("0000098M",)),  # a live dossier lists it too
]
LATE = NewDossier(20, "accepte", "S-J", date(2026, 11, 2), ("0000009J",))

# uai: (status before the cut-off, after it, after J's late filing, holder change, opening date)
CASES = {
    "0000001A": ("renouvelee", "renouvelee", "renouvelee", False, date(2026, 9, 1)),
    "0000002B": ("renouvelee", "renouvelee", "renouvelee", False, date(2026, 9, 1)),
    "0000003C": ("renouvelee", "renouvelee", "renouvelee", False, date(2026, 9, 1)),
    "0000004D": ("en_attente", "non_renouvelee", "non_renouvelee", False, None),
    "0000005E": ("en_attente", "non_renouvelee", "non_renouvelee", False, None),
    "0000006F": ("renouvelee", "renouvelee", "renouvelee", True, date(2026, 9, 1)),
    "0000007G": ("renouvelee", "renouvelee", "renouvelee", True, date(2026, 9, 1)),
    "0000008H": ("fermee", "fermee", "fermee", False, None),
    "0000009J": ("en_attente", "non_renouvelee", "renouvelee", False, date(2026, 11, 2)),
    "0000010K": ("renouvelee", "renouvelee", "renouvelee", False, date(2026, 9, 1)),  # filed on the cut-off day
    "0000099N": ("nouvelle", "nouvelle", "nouvelle", False, date(2026, 9, 10)),  # between the two dates
    "0000098M": ("nouvelle", "nouvelle", "nouvelle", False, date(2026, 9, 1)),  # before the new-schools date
    "0000097L": ("nouvelle", "nouvelle", "nouvelle", False, date(2026, 8, 29)),  # on it: not before
}


@pytest.mark.parametrize("moment", [0, 1, 2], ids=["before", "after", "late_filing"])
def test_each_school(moment):
    new = NEW + ([LATE] if moment == 2 else [])
    today = BEFORE if moment == 0 else date(2026, 11, 3)
    rows = {r.uai: r for r in decide(PREVIOUS, new, CAL, today).schools}
    assert set(rows) == set(CASES)
    for uai, expected in CASES.items():
        row = rows[uai]
        assert row.status == expected[moment], uai
        assert row.changement_titulaire == expected[3], uai
        opening = expected[4] if row.status in ("renouvelee", "nouvelle") else None
        assert row.ouverture == opening, uai
        assert row.type == (row.status if row.status in ("renouvelee", "nouvelle") else None)
    if moment:
        assert rows["0000005E"].motif == "non renouvelée au 29 octobre 2026"
    assert rows["0000008H"].motif == "demande classée sans suite (dossier nº 14)"
    assert rows["0000010K"].dossier_precedent == 8  # the lowest dossier holds a school held twice
    assert rows["0000001A"].convention == "received_on_time" and rows["0000006F"].siret == "S-G"


def test_the_cutoff_day_is_still_pending():
    rows = {r.uai: r.status for r in decide(PREVIOUS, NEW, CAL, CUTOFF_DAY).schools}
    assert rows["0000005E"] == "en_attente"
    rows = {r.uai: r.status for r in decide(PREVIOUS, NEW, CAL, AFTER).schools}
    assert rows["0000005E"] == "non_renouvelee"


def test_communes_renewed_and_reminded():
    communes = {c.siret: c for c in decide(PREVIOUS, NEW, CAL, BEFORE).communes}
    assert {s for s, c in communes.items() if c.renewed} == {"S-A", "S-B", "S-K"}
    # C and J filed nothing and have a school pending; E and F were taken over by G (not reminded);
    # B filed (one school dropped); H filed (classé sans suite); K2's school is renewed by K.
    assert {s for s, c in communes.items() if c.remind} == {"S-C", "S-J"}
    assert communes["S-B"].pending_schools == 1 and not communes["S-B"].remind


def test_reminder_window_and_french_dates():
    assert not reminder_due(CAL, 15, date(2026, 10, 13))
    assert reminder_due(CAL, 15, date(2026, 10, 14)) and reminder_due(CAL, 15, CUTOFF_DAY)
    assert not reminder_due(CAL, 15, AFTER)
    assert fr_date(date(2026, 9, 1)) == "1er septembre 2026" and fr_date(date(2026, 8, 29)) == "29 août 2026"
