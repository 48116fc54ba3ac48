"""The planner (``actions.plan_demarche``), one table row per case, on a real SQLite mirror and no server.

The mirror holds the hand-written DS fixtures of tests/data (the démarche's descriptor, with the
instructeur ``ds-connector@ac-montpellier.fr`` in every groupe, and dossier 1003), the dossier changed
as each row says: its state, its dépôt, a PDF received, archived, the usager gone. DS's clock is the
row's ``now``; the journal may already hold what earlier plans decided (``earlier``: the instants of
plans recorded first, as the daemon would have). A row lists the intents it must plan, in order, as
(kind, step, dedup key), and the decisions that explain doing nothing.

Dossier 1003 is déposé 2026-09-20 (Paris): its deadline day is 20 November 2026 (a Friday), J-15 is
5 November, J-3 is 17 November, the closure 21 November at 00:00 Paris.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector import store
from connector.config import DeadlineConfig, DemarcheConfig
from connector.followup.actions import plan_demarche, record_intents
from connector.followup.deadlines import PARIS
from connector.followup.profile import FollowupProfile

DATA = Path(__file__).parent / "data"
DEMARCHE, NUMBER, DEADLINE = 4242, 1003, "2026-11-20"
INSTRUCTEUR = "ds-connector@ac-montpellier.fr"
PROFILE = FollowupProfile("occitanie", True, {"convention_recue": "Q2hhbXAtMjAy", "statut": "Q2hhbXAtMjAz",
                                              "nombre_ecoles": "Q2hhbXAtMTA5"})
ALL_HOURS = DeadlineConfig(reminders=True, classer_sans_suite=True, weekdays=(0, 1, 2, 3, 4, 5, 6), hours=(0, 24))

OCTOBER = datetime(2026, 10, 20, 10, 0, tzinfo=PARIS)  # before J-15
J15 = datetime(2026, 11, 5, 10, 0, tzinfo=PARIS)
J3 = datetime(2026, 11, 17, 10, 0, tzinfo=PARIS)
LAST_DAY = datetime(2026, 11, 20, 23, 0, tzinfo=PARIS)
CLOSURE = datetime(2026, 11, 21, 10, 0, tzinfo=PARIS)  # a Saturday


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))["data"]


def node(**changes: Any) -> dict:
    """Dossier 1003 of the fixture page, without its messages, with ``changes`` (DS field names)."""
    nodes = load("dossiers_page")["demarche"]["dossiers"]["nodes"]
    n = copy.deepcopy(next(n for n in nodes if n["number"] == NUMBER))
    n["messages"] = []
    n.update(changes)
    return n


def pdf_message(at: str) -> dict:
    return {"id": "Q29tbWVudGFpcmUtOTAwMQ==", "email": "mairie@colomiers.fr", "body": "Voici la convention signée.",
            "createdAt": at, "discardedAt": None, "attachments": [{
                "filename": "convention.pdf", "contentType": "application/pdf", "checksum": "c2lnbmVk",
                "byteSize": "1024", "createdAt": at, "virusScanResult": "safe",
                "url": "https://demarche.numerique.gouv.fr/rails/active_storage/disk/x/convention.pdf"}]}


def key(kind: str, step: int | None = None) -> str:
    return f"reminder:{NUMBER}:{DEADLINE}:{step}" if kind == "reminder" else f"{kind}:{NUMBER}:{DEADLINE}"


# id, dossier node, settings, now, earlier plans recorded, expected intents (kind, step), expected
# decisions without an action (their rule), extra checks
PLANS = [
    pytest.param(node(), ALL_HOURS, OCTOBER, [], [], [], id="awaiting before J-15: nothing due"),
    pytest.param(node(), ALL_HOURS, J15, [], [("reminder", 0, key("reminder", 15))], [],
                 id="J-15 come: the J-15 reminder"),
    pytest.param(node(), ALL_HOURS, J15 + timedelta(days=1), [J15], [], [],
                 id="J-15 already in the journal: not planned twice"),
    pytest.param(node(), ALL_HOURS, J3, [J15], [("reminder", 0, key("reminder", 3))], [],
                 id="J-3 come after J-15 was planned: the J-3 reminder"),
    pytest.param(node(), ALL_HOURS, J3, [], [("reminder", 0, key("reminder", 3))], [],
                 id="J-3 come, J-15 never planned: only J-3, a missed reminder is not sent late"),
    pytest.param(node(), ALL_HOURS, LAST_DAY, [J15, J3], [], [],
                 id="the deadline day, both reminders planned: nothing more"),
    pytest.param(node(), replace(ALL_HOURS, reminders=False), J15, [], [], [],
                 id="reminders off: nothing even when due"),
    pytest.param(node(), ALL_HOURS, CLOSURE, [J15, J3], [
        ("closure_message", 1, key("closure_message")), ("closure_annotations", 2, key("closure_annotations")),
        ("classer_sans_suite", 3, key("classer_sans_suite"))], [],
        id="overdue en instruction: message, statut annotation, classer sans suite"),
    pytest.param(node(state="en_construction"), ALL_HOURS, CLOSURE, [], [
        ("closure_message", 1, key("closure_message")), ("closure_annotations", 2, key("closure_annotations")),
        ("passer_en_instruction", 3, key("passer_en_instruction")), ("classer_sans_suite", 4, key("classer_sans_suite"))],
        [], id="overdue en construction: passer en instruction before closing"),
    pytest.param(node(state="accepte"), ALL_HOURS, CLOSURE, [], [
        ("closure_message", 1, key("closure_message")), ("closure_annotations", 2, key("closure_annotations")),
        ("repasser_en_instruction", 3, key("repasser_en_instruction")),
        ("classer_sans_suite", 4, key("classer_sans_suite"))],
        [], id="overdue and accepté: repasser en instruction before closing"),
    pytest.param(node(), ALL_HOURS, CLOSURE, [CLOSURE], [], [],
                 id="the closure already planned: not planned twice"),
    pytest.param(node(), replace(ALL_HOURS, classer_sans_suite=False), CLOSURE, [], [], [],
                 id="overdue, classer_sans_suite off: nothing"),
    pytest.param(node(), replace(ALL_HOURS, grace_days=2), CLOSURE, [], [], [],
                 id="overdue within two grace days: nothing yet"),
    pytest.param(node(), replace(ALL_HOURS, grace_days=2), CLOSURE + timedelta(days=2), [], [
        ("closure_message", 1, key("closure_message")), ("closure_annotations", 2, key("closure_annotations")),
        ("classer_sans_suite", 3, key("classer_sans_suite"))], [], id="overdue, two grace days over: the closure"),
    pytest.param(node(archived=True), ALL_HOURS, CLOSURE, [], [],
                 ["rien envoyé : dossier archivé (messagerie fermée)"],
                 id="overdue but archived: nothing sent, and the decision says why"),
    pytest.param(node(connectionUsager="deleted"), ALL_HOURS, J15, [], [], ["rien envoyé : compte de l'usager supprimé"],
                 id="a reminder due but the usager's account deleted: nothing sent, and why"),
    pytest.param(node(messages=[pdf_message("2026-10-30T10:00:00+01:00")]), ALL_HOURS, CLOSURE, [], [], [],
                 id="a PDF received: no reminder, no closure"),
    pytest.param(node(state="refuse"), ALL_HOURS, CLOSURE, [], [], [], id="refused: nothing"),
]


@pytest.fixture
def mirror(tmp_path):
    db = store.open_db(tmp_path / "mirror.db")
    with db.atomic():
        store.save_demarche(db, load("demarche_descriptor")["demarche"])
    yield db
    db.close()


def plan(db, settings: DeadlineConfig, now: datetime, profile: FollowupProfile = PROFILE,
         instructeur: str | None = INSTRUCTEUR):
    return plan_demarche(db, DemarcheConfig(DEMARCHE, deadline=settings), profile, now, instructeur)


@pytest.mark.parametrize("dossier, settings, now, earlier, intents, reasons", PLANS)
def test_plan(mirror, dossier, settings, now, earlier, intents, reasons):
    with mirror.atomic():
        store.save_dossiers(mirror, DEMARCHE, [dossier])
    for then in earlier:
        record_intents(mirror, plan(mirror, settings, then))
    got = plan(mirror, settings, now)
    assert got.problem is None
    assert [(i["kind"], i["step"], i["dedup_key"]) for i in got.intents] == intents
    assert [d.rule for d in got.decisions if d.kind is None] == reasons
    assert [d.dedup_key for d in got.decisions if d.kind] == [i["dedup_key"] for i in got.intents]
    for i in got.intents:  # every intent names its dossier, instructeur and the window it waits for
        assert (i["dossier_number"], i["deadline"], i["instructeur_email"]) == (NUMBER, DEADLINE, INSTRUCTEUR)
        assert i["instructeur_id"] == "SW5zdHJ1Y3RldXItNTAy" and i["payload"]["instructeurId"] == i["instructeur_id"]
        assert i["payload"]["dossierId"] == dossier["id"]
        assert i["not_before"] == now.isoformat(timespec="seconds")  # every day, every hour: at once


def test_the_texts_an_intent_sends(mirror):
    """The reminder and the closure as DS receives them: the deadline in French, the dossier's
    number, the statut annotation's value (a text champ) and the state change."""
    with mirror.atomic():
        store.save_dossiers(mirror, DEMARCHE, [node(state="en_construction")])
    (reminder,) = plan(mirror, ALL_HOURS, J15).intents
    assert "20 novembre 2026" in reminder["payload"]["body"] and str(NUMBER) in reminder["payload"]["body"]
    assert reminder["rule"] == "relance J-15 : convention attendue au plus tard le 20 novembre 2026"
    message, annotations, passer, classer = plan(mirror, ALL_HOURS, CLOSURE).intents
    assert "20 novembre 2026" in message["payload"]["body"]
    assert annotations["payload"]["annotations"] == [{"id": "Q2hhbXAtMjAz", "value": {"text": "Classée sans suite"}}]
    assert passer["payload"]["disableNotification"] is True
    assert "20 novembre 2026" in classer["payload"]["motivation"]
    assert message["rule"] == "délai dépassé : rien reçu au 20 novembre 2026 (+0 j de grâce)"


def test_outside_the_sending_window_actions_wait_for_its_next_opening(mirror):
    """Saturday 21 November: a window of weekdays 9-17 (Paris) opens on Monday 23 at 09:00 (08:00 UTC)."""
    with mirror.atomic():
        store.save_dossiers(mirror, DEMARCHE, [node()])
    got = plan(mirror, replace(ALL_HOURS, weekdays=(0, 1, 2, 3, 4), hours=(9, 17)), CLOSURE)
    assert {i["not_before"] for i in got.intents} == {"2026-11-23T08:00:00+00:00"}


def test_a_profile_without_a_statut_champ_closes_without_the_annotation(mirror):
    with mirror.atomic():
        store.save_dossiers(mirror, DEMARCHE, [node()])
    profile = FollowupProfile("occitanie", True, {"convention_recue": "Q2hhbXAtMjAy"})
    got = plan(mirror, ALL_HOURS, CLOSURE, profile)
    assert [(i["kind"], i["step"]) for i in got.intents] == [("closure_message", 1), ("classer_sans_suite", 2)]


@pytest.mark.parametrize("instructeur, problem", [
    pytest.param("nobody@ac-toulouse.fr", "[ds] instructeur_email 'nobody@ac-toulouse.fr' is not an instructeur of "
                 "démarche 4242", id="an instructeur_email DS does not know: the plan says so"),
    pytest.param(None, "[ds] instructeur_email is not set: the connector cannot act on DS",
                 id="no instructeur_email: the plan says so"),
])
def test_without_a_known_instructeur_the_plan_says_why(mirror, instructeur, problem):
    with mirror.atomic():
        store.save_dossiers(mirror, DEMARCHE, [node()])
    got = plan(mirror, ALL_HOURS, J15, instructeur=instructeur)
    assert got.problem == problem
    assert [i["instructeur_id"] for i in got.intents] == [None]  # planned; the run refuses to send it


def test_statuses_are_counted_even_when_nothing_may_be_written(mirror):
    with mirror.atomic():
        store.save_dossiers(mirror, DEMARCHE, [node()])
    got = plan(mirror, DeadlineConfig(), CLOSURE)
    assert (got.statuses, got.intents, got.decisions, got.problem) == ({"overdue": 1}, [], [], None)
