"""The follow-up's pure decisions, one table row per case, no server: the convention status of a
dossier (``conventions.evaluate``), the next step shown beside it (``next_step``), which reminder is
due (``due_reminder``), why nothing may be sent (``blocked``), and what DS's answer to a mutation
means (``actions.classify``).

Every row's id says the rule it holds; a failure names the row and shows the fields that differ.
The DS answer texts are the ones DS sends (the simulator's ``mutations.py`` holds the same strings).
The simulator tests (test_followup_conventions.py, test_followup_actions.py) run the same rules end
to end through HTTP and SQLite.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from connector.config import DeadlineConfig
from connector.followup import conventions
from connector.followup.actions import classify
from connector.followup.conventions import Status, blocked, due_reminder, evaluate, next_step
from connector.followup.deadlines import PARIS, closure_at, reminder_at
from connector.followup.profile import FollowupProfile
from connector.store.followup import Action

# A dossier déposé on 2 September 2026 (Paris summer time): its deadline day is 2 November 2026,
# valid until 23:59:59+01:00 (winter time by then).
DEPOT = "2026-09-02T10:15:03+02:00"
DAY = date(2026, 11, 2)
LAST_SECOND = "2026-11-02T23:59:59+01:00"
NEXT_DAY = "2026-11-03T00:00:00+01:00"
BEFORE = datetime(2026, 10, 1, 12, 0, tzinfo=PARIS)  # DS's clock, a month before the deadline
AFTER = datetime(2026, 11, 10, 12, 0, tzinfo=PARIS)  # ... a week after it

DATE_ID, BOX_ID, STATUT_ID = "Q2hhbXAtMjAx", "Q2hhbXAtMjAy", "Q2hhbXAtMjAz"
PROFILE = FollowupProfile("occitanie", True, {"date_reception": DATE_ID, "convention_recue": BOX_ID,
                                               "statut": STATUT_ID})
SETTINGS = DeadlineConfig()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def pdf(key: str = "f1", *, name: str = "convention.pdf", scan: str | None = "safe",
        content_type: str = "application/pdf") -> dict[str, Any]:
    return {"file_key": key, "filename": name, "content_type": content_type, "virus_scan": scan}


def other(key: str = "f2", content_type: str = "application/vnd.openxmlformats-officedocument.wordprocessingml"
          ".document", name: str = "convention.docx") -> dict[str, Any]:
    return {"file_key": key, "filename": name, "content_type": content_type, "virus_scan": "safe"}


def message(when: str, *files: dict[str, Any], id: str = "m1") -> dict[str, Any]:
    return {"id": id, "created_at": when, "files": list(files)}


def dossier(**changes: Any) -> dict[str, Any]:
    base = {"number": 1001, "state": "en_instruction", "date_depot": DEPOT,
            "date_passage_en_instruction": "2026-09-20T09:00:00+02:00"}
    return {**base, **changes}


def box(value: Any, updated_at: str = "2026-10-05T11:00:00+02:00") -> dict[str, dict[str, Any]]:
    return {BOX_ID: {"champ_id": "box-champ", "value": value, "updated_at": updated_at}}


def reception(value: str | None) -> dict[str, dict[str, Any]]:
    return {DATE_ID: {"champ_id": "date-champ", "value": value, "updated_at": "2026-11-20T09:00:00+01:00"}}


# --- conventions.evaluate -----------------------------------------------------------------------

# id, dossier, messages, annotations, now, keyword arguments, expected fields of the Status
EVALUATE = [
    pytest.param(dossier(state="refuse"), [message("2026-09-10T10:00:00+02:00", pdf())], {}, BEFORE, {},
                 {"status": "not_applicable", "rule": "refusé"},
                 id="refused: no convention is due, even with a PDF"),
    pytest.param(dossier(state="sans_suite"), [], {}, AFTER, {},
                 {"status": "not_applicable", "rule": "déjà classé sans suite"},
                 id="closed by an instructeur: not applicable"),
    pytest.param(dossier(state="sans_suite"), [], {}, AFTER, {"closed_by_us": True},
                 {"status": "overdue", "deadline": DAY},
                 id="closed by the connector for the deadline: stays overdue"),
    pytest.param(dossier(date_depot=None), [message("2026-09-10T10:00:00+02:00", pdf())], {}, BEFORE, {},
                 {"status": "not_applicable", "rule": "pas de date de référence (date_depot)", "deadline": None},
                 id="no dépôt date: no deadline to count from"),
    pytest.param(dossier(date_passage_en_instruction=None), [], {}, AFTER,
                 {"settings": replace(SETTINGS, reference="date_passage_en_instruction")},
                 {"status": "not_applicable", "rule": "pas de date de référence (date_passage_en_instruction)"},
                 id="reference is the passage en instruction, not passed yet: not applicable"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf())], {}, BEFORE, {},
                 {"status": "received_on_time", "rule": "PDF reçu dans la messagerie", "deadline": DAY,
                  "reference_at": DEPOT, "received_at": "2026-09-10T10:00:00+02:00",
                  "proof_message_id": "m1", "proof_file_key": "f1", "proof_annotation_id": None},
                 id="a safe PDF in the messagerie: received on time, with its proof"),
    pytest.param(dossier(), [message(LAST_SECOND, pdf())], {}, AFTER, {},
                 {"status": "received_on_time", "received_at": LAST_SECOND},
                 id="a PDF at 23:59:59 Paris on the deadline day is on time"),
    pytest.param(dossier(), [message(NEXT_DAY, pdf())], {}, AFTER, {},
                 {"status": "received_late", "received_at": NEXT_DAY},
                 id="a PDF at 00:00:00 Paris the day after is late"),
    pytest.param(dossier(), [message("2026-11-02T23:30:00+00:00", pdf())], {}, AFTER, {},
                 {"status": "received_late"},
                 id="23:30 UTC on the deadline day is already the next Paris day: late"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00",
                                     pdf(name="CONVENTION.PDF", content_type="application/octet-stream"))],
                 {}, BEFORE, {}, {"status": "received_on_time"},
                 id="a PDF known only by its name (any case) counts"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf(name="convention", content_type="APPLICATION/PDF"))],
                 {}, BEFORE, {}, {"status": "received_on_time"},
                 id="a PDF known only by its content type (any case) counts"),
    pytest.param(dossier(), [message("2026-09-01T10:00:00+02:00", pdf())], {}, BEFORE, {},
                 {"status": "awaiting", "rule": "en attente avant la date limite"},
                 id="a PDF sent before the reference date does not count"),
    pytest.param(dossier(), [message("2026-09-25T10:00:00+02:00", pdf())], {}, BEFORE,
                 {"settings": replace(SETTINGS, reference="date_passage_en_instruction")},
                 {"status": "received_on_time", "reference_at": "2026-09-20T09:00:00+02:00",
                  "deadline": date(2026, 11, 20)},
                 id="reference is the passage en instruction: the deadline counts from it"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf())], {}, BEFORE,
                 {"settings": replace(SETTINGS, reference="date_passage_en_instruction")},
                 {"status": "awaiting"},
                 id="reference is the passage en instruction: a PDF sent between dépôt and passage does not count"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf())], {}, BEFORE,
                 {"settings": replace(SETTINGS, months=1)},
                 {"status": "received_on_time", "deadline": date(2026, 10, 2)},
                 id="months = 1: the deadline is a month after the dépôt"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf(scan="pending"))], {}, AFTER, {},
                 {"status": "to_confirm", "rule": "PDF reçu, analyse antivirus en cours", "proof_file_key": "f1",
                  "received_at": None},
                 id="a PDF still being scanned: to confirm, never overdue"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf(scan=None))], {}, BEFORE, {},
                 {"status": "received_on_time"},
                 id="a PDF without a scan result counts as safe"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf(scan="infected"))], {}, BEFORE, {},
                 {"status": "awaiting", "proof_file_key": None},
                 id="an infected PDF is as if not sent (before the deadline: awaiting)"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf(scan="integrity_error"))], {}, AFTER, {},
                 {"status": "overdue", "rule": "rien reçu à la date limite"},
                 id="a PDF that failed its integrity check is as if not sent (after the deadline: overdue)"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf("f1"), pdf("f2", name="annexe.pdf"))], {},
                 BEFORE, {},
                 {"status": "to_review", "rule": "2 PDF dans le même message : à examiner", "proof_file_key": "f1"},
                 id="two PDFs in one message: a person chooses"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", other())], {}, BEFORE, {},
                 {"status": "to_review", "proof_message_id": "m1", "proof_file_key": "f2",
                  "rule": "réponse avec un fichier non PDF (application/vnd.openxmlformats-officedocument."
                          "wordprocessingml.document) : à examiner"},
                 id="a Word file only: to review, naming its type"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", other(content_type="image/jpeg", name="scan.jpg"))],
                 {}, AFTER, {}, {"status": "to_review"},
                 id="a photo after the deadline is still to review, not overdue"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00")], {}, BEFORE, {},
                 {"status": "awaiting"},
                 id="a reply without a file changes nothing"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", other()),
                             message("2026-09-12T10:00:00+02:00", pdf(), id="m2")], {}, BEFORE, {},
                 {"status": "received_on_time", "proof_message_id": "m2"},
                 id="a Word file then a PDF: the PDF counts"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf()),
                             message(NEXT_DAY, pdf("f3"), id="m2")], {}, AFTER, {},
                 {"status": "received_on_time", "proof_message_id": "m1"},
                 id="the first PDF decides, a later one does not make it late"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", pdf(scan="pending"))], box(1), BEFORE, {},
                 {"status": "received_on_time", "proof_annotation_id": "box-champ", "proof_message_id": None},
                 id="a PDF being scanned, but an instructeur ticked 'convention reçue': received"),
    pytest.param(dossier(), [message("2026-09-10T10:00:00+02:00", other())], reception("2026-10-20"), AFTER, {},
                 {"status": "received_on_time", "received_at": "2026-10-20", "proof_annotation_id": "date-champ",
                  "rule": "annotation « date de réception » d'un instructeur"},
                 id="a Word file settled by the reception date annotation"),
    pytest.param(dossier(), [], reception("2026-11-03"), AFTER, {},
                 {"status": "received_late", "received_at": "2026-11-03"},
                 id="a reception date the day after the deadline: late"),
    pytest.param(dossier(), [], reception(""), AFTER, {},
                 {"status": "overdue"},
                 id="an empty reception date is no reception"),
    pytest.param(dossier(), [], box("true", updated_at=NEXT_DAY), AFTER, {},
                 {"status": "received_late", "received_at": NEXT_DAY},
                 id="the box ticked the day after the deadline (its own date): late"),
    pytest.param(dossier(), [], {**box(1), **reception("2026-11-05")}, AFTER, {},
                 {"status": "received_late", "proof_annotation_id": "date-champ"},
                 id="the reception date wins over the box's own date"),
    pytest.param(dossier(), [], box(0), AFTER, {},
                 {"status": "overdue"},
                 id="an unticked box is no reception"),
    pytest.param(dossier(), [], {"other-descriptor": {"champ_id": "x", "value": 1, "updated_at": DEPOT}}, AFTER, {},
                 {"status": "overdue"},
                 id="an annotation the profile does not map is ignored"),
    pytest.param(dossier(), [], box(1), AFTER, {"profile": FollowupProfile("occitanie", True, {})},
                 {"status": "overdue"},
                 id="a profile without the reception annotations reads none"),
    pytest.param(dossier(), [], {}, at(LAST_SECOND), {},
                 {"status": "awaiting"},
                 id="nothing received, DS's clock at the deadline day's last second: still awaiting"),
    pytest.param(dossier(), [], {}, at(NEXT_DAY), {},
                 {"status": "overdue", "rule": "rien reçu à la date limite", "deadline": DAY},
                 id="nothing received, DS's clock at 00:00 Paris the day after: overdue"),
]


@pytest.mark.parametrize("facts, messages, annotations, now, options, expected", EVALUATE)
def test_evaluate(facts, messages, annotations, now, options, expected):
    options = dict(options)
    settings = options.pop("settings", SETTINGS)
    profile = options.pop("profile", PROFILE)
    got = asdict(evaluate(facts, messages, annotations, profile, settings, now, **options))
    assert {k: got[k] for k in expected} == expected


# --- conventions.next_step ----------------------------------------------------------------------

ON = replace(SETTINGS, reminders=True, classer_sans_suite=True)
AWAITING = Status("awaiting", "en attente avant la date limite", DEPOT, DAY)
OVERDUE = Status("overdue", "rien reçu à la date limite", DEPOT, DAY)
J15, J3, CLOSURE = reminder_at(DAY, 15), reminder_at(DAY, 3), closure_at(DAY)
SENT_J15 = {f"reminder:1001:{DAY}:15": "sent"}
SENT_BOTH = {**SENT_J15, f"reminder:1001:{DAY}:3": "sent"}

# status, dossier, settings, now, journal keys, expected (next action, from when)
NEXT_STEP = [
    pytest.param(replace(AWAITING, status="received_on_time"), dossier(), ON, BEFORE, {}, (None, None),
                 id="received on time: nothing next"),
    pytest.param(replace(AWAITING, status="received_late"), dossier(), ON, AFTER, {}, (None, None),
                 id="received late: nothing next"),
    pytest.param(replace(AWAITING, status="not_applicable"), dossier(), ON, BEFORE, {}, (None, None),
                 id="not applicable: nothing next"),
    pytest.param(replace(AWAITING, deadline=None), dossier(), ON, BEFORE, {}, (None, None),
                 id="no deadline: nothing next"),
    pytest.param(replace(AWAITING, status="to_confirm"), dossier(), ON, BEFORE, {},
                 ("relire le dossier (analyse antivirus en cours)", None),
                 id="to confirm: the next sync re-reads the dossier"),
    pytest.param(replace(AWAITING, status="to_review"), dossier(), ON, AFTER, {},
                 ("examen par un instructeur", None),
                 id="to review: a person looks, the connector does nothing"),
    pytest.param(AWAITING, dossier(), ON, BEFORE, {}, ("relance J-15", J15.isoformat()),
                 id="awaiting before J-15: the J-15 reminder, at 00:00 Paris that day"),
    pytest.param(AWAITING, dossier(), ON, J15 + timedelta(hours=1), {}, ("relance J-15", J15.isoformat()),
                 id="J-15 has come and it is not sent yet: the J-15 reminder, due since then"),
    pytest.param(AWAITING, dossier(), ON, J15 + timedelta(hours=1), SENT_J15, ("relance J-3", J3.isoformat()),
                 id="J-15 sent: the J-3 reminder next"),
    pytest.param(AWAITING, dossier(), ON, J3 + timedelta(hours=1), {}, ("relance J-3", J3.isoformat()),
                 id="J-15 missed and J-3 come: J-3, the missed one is not sent late"),
    pytest.param(AWAITING, dossier(), ON, J3 + timedelta(hours=1), SENT_BOTH,
                 ("classement sans suite", CLOSURE.isoformat()),
                 id="both reminders sent: the closure at 00:00 Paris the day after the deadline"),
    pytest.param(AWAITING, dossier(), replace(ON, classer_sans_suite=False), J3 + timedelta(hours=1), SENT_BOTH,
                 ("constat du dépassement", CLOSURE.isoformat()),
                 id="both reminders sent, closure off: only the finding that the deadline passed"),
    pytest.param(AWAITING, dossier(), replace(ON, reminders=False), BEFORE, {},
                 ("classement sans suite", CLOSURE.isoformat()),
                 id="reminders off: no reminder, the closure next"),
    pytest.param(AWAITING, dossier(), replace(ON, grace_days=3), J3 + timedelta(hours=1), SENT_BOTH,
                 ("classement sans suite", closure_at(DAY, 3).isoformat()),
                 id="three grace days push the closure three days on"),
    pytest.param(AWAITING, dossier(), replace(ON, reminder_days=(7,)), BEFORE, {},
                 ("relance J-7", reminder_at(DAY, 7).isoformat()),
                 id="reminder_days = [7]: the J-7 reminder only"),
    pytest.param(AWAITING, dossier(archived=1), ON, BEFORE, {}, ("classement sans suite", CLOSURE.isoformat()),
                 id="archived (messagerie closed): no reminder planned"),
    pytest.param(AWAITING, dossier(connection_usager="deleted"), ON, BEFORE, {},
                 ("classement sans suite", CLOSURE.isoformat()),
                 id="the usager's account is deleted: no reminder planned"),
    pytest.param(OVERDUE, dossier(), replace(ON, classer_sans_suite=False), AFTER, {},
                 ("aucune (classer_sans_suite désactivé)", None),
                 id="overdue, closure off: nothing, and it says why"),
    pytest.param(OVERDUE, dossier(pending_deletion=1), ON, AFTER, {},
                 ("aucune (dossier dans la corbeille)", None),
                 id="overdue in the trash: nothing, and it says why"),
    pytest.param(OVERDUE, dossier(), ON, AFTER, {}, ("classement sans suite", CLOSURE.isoformat()),
                 id="overdue, closure on: classement sans suite"),
    pytest.param(replace(OVERDUE, rule="classé sans suite par le connecteur (délai dépassé)"),
                 dossier(state="sans_suite"), ON, AFTER, {}, (None, None),
                 id="already closed by the connector: nothing next"),
]


@pytest.mark.parametrize("status, facts, settings, now, keys, expected", NEXT_STEP)
def test_next_step(status, facts, settings, now, keys, expected):
    assert next_step(status, facts, settings, now, keys) == expected


# --- conventions.due_reminder and closure_due ---------------------------------------------------

# now, status, reminder days, expected step due
DUE_REMINDER = [
    pytest.param(J15 - timedelta(seconds=1), AWAITING, (15, 3), None, id="the second before J-15: none"),
    pytest.param(J15, AWAITING, (15, 3), 15, id="00:00 Paris on J-15: J-15"),
    pytest.param(J3 - timedelta(seconds=1), AWAITING, (15, 3), 15, id="between J-15 and J-3: still J-15"),
    pytest.param(J3, AWAITING, (15, 3), 3, id="00:00 Paris on J-3: J-3 (the most recent)"),
    pytest.param(at(LAST_SECOND), AWAITING, (15, 3), 3, id="the deadline day's last second: J-3"),
    pytest.param(at(NEXT_DAY), AWAITING, (15, 3), None, id="the deadline passed: no reminder any more"),
    pytest.param(J3, replace(AWAITING, status="to_review"), (15, 3), None, id="not awaiting: no reminder"),
    pytest.param(J3, replace(AWAITING, deadline=None), (15, 3), None, id="no deadline: no reminder"),
    pytest.param(J3, AWAITING, (), None, id="no reminder days: none"),
    pytest.param(J3, AWAITING, (30, 15), 15, id="other days: the most recent come"),
]


@pytest.mark.parametrize("now, status, days, expected", DUE_REMINDER)
def test_due_reminder(now, status, days, expected):
    assert due_reminder(status, replace(ON, reminder_days=days), now) == expected


# now, status, grace days, expected
CLOSURE_DUE = [
    pytest.param(CLOSURE - timedelta(seconds=1), OVERDUE, 0, False, id="the deadline day's last second: not yet"),
    pytest.param(CLOSURE, OVERDUE, 0, True, id="00:00 Paris the day after: due"),
    pytest.param(CLOSURE, OVERDUE, 2, False, id="two grace days: not the day after"),
    pytest.param(closure_at(DAY, 2), OVERDUE, 2, True, id="two grace days: due at their end"),
    pytest.param(AFTER, replace(OVERDUE, status="to_review"), 0, False, id="to review: never closed by the connector"),
    pytest.param(AFTER, replace(OVERDUE, status="to_confirm"), 0, False, id="to confirm: never closed"),
    pytest.param(AFTER, replace(OVERDUE, deadline=None), 0, False, id="no deadline: never closed"),
]


@pytest.mark.parametrize("now, status, grace, expected", CLOSURE_DUE)
def test_closure_due(now, status, grace, expected):
    assert conventions.closure_due(status, replace(ON, grace_days=grace), now) is expected


# --- conventions.blocked ------------------------------------------------------------------------

BLOCKED = [
    pytest.param({}, None, id="a live dossier: nothing blocks"),
    pytest.param({"archived": 1}, "dossier archivé (messagerie fermée)", id="archived: the messagerie is closed"),
    pytest.param({"pending_deletion": 1}, "dossier dans la corbeille", id="in the trash (seen by the sync)"),
    pytest.param({"date_suppression_par_administration": "2026-10-01T10:00:00+02:00"}, "dossier dans la corbeille",
                 id="in the trash (DS's date)"),
    pytest.param({"date_suppression_par_usager": "2026-10-01T10:00:00+02:00"}, "dossier supprimé par l'usager",
                 id="deleted by the usager"),
    pytest.param({"connection_usager": "deleted"}, "compte de l'usager supprimé", id="the usager's account deleted"),
    pytest.param({"connection_usager": "france_connect"}, None, id="a FranceConnect usager: nothing blocks"),
    pytest.param({"archived": 1, "connection_usager": "deleted"}, "dossier archivé (messagerie fermée)",
                 id="archived and account deleted: archived is said first"),
]


@pytest.mark.parametrize("changes, expected", BLOCKED)
def test_blocked(changes, expected):
    assert blocked(dossier(**changes)) == expected


# --- actions.classify: what DS's answer to a mutation means -------------------------------------

READ_ONLY = "Le jeton utilisé est configuré seulement en lecture"
NO_RIGHTS = "L’instructeur n’a pas les droits d’accès à ce dossier"


def action(kind: str, operation: str) -> Action:
    return Action(id=1, demarche_number=4242, dossier_number=1001, kind=kind, step=1, dedup_key=f"{kind}:1001",
                  rule="r", deadline=DAY.isoformat(), operation=operation, payload={}, instructeur_id="i",
                  instructeur_email="e", state="sending", attempts=1, not_before=None, ds_answer=None,
                  last_error=None, remote_id=None, created_at="", sending_at=None, sending_ds_at=None, sent_at=None,
                  updated_at="")


MESSAGE = action("reminder", "envoyer_message")
CLOSE = action("classer_sans_suite", "classer_sans_suite")
PASSER = action("passer_en_instruction", "passer_en_instruction")
REPASSER = action("repasser_en_instruction", "repasser_en_instruction")
ANNOTATE = action("closure_annotations", "modifier_annotations")


def payload(key: str, *messages: str, **fields: Any) -> dict[str, Any]:
    return {key: {"errors": [{"message": m} for m in messages] or None, **fields}}


# action, data, top-level errors, expected (outcome, reason or the start of it, remote id)
CLASSIFY = [
    pytest.param(MESSAGE, payload("dossierEnvoyerMessage", message={"id": "Q29tbWVudGFpcmUtOQ=="}), [],
                 ("sent", None, "Q29tbWVudGFpcmUtOQ=="), id="a message sent: its id is the remote id"),
    pytest.param(CLOSE, payload("dossierClasserSansSuite", dossier={"id": "RG9zc2llci0xMDAx"}), [],
                 ("sent", None, "RG9zc2llci0xMDAx"), id="a state change done: the dossier's id"),
    pytest.param(MESSAGE, {"dossierEnvoyerMessage": {"errors": [], "message": None}}, [],
                 ("sent", None, None), id="an empty errors list is no error"),
    pytest.param(MESSAGE, {"dossierEnvoyerMessage": None},
                 [{"message": "Dossier not found", "extensions": {"code": "not_found"}}],
                 ("failed", "DS refused: Dossier not found", None), id="top-level not_found: failed, DS's words"),
    pytest.param(MESSAGE, None,
                 [{"message": "An object of type Dossier was hidden due to permissions",
                   "extensions": {"code": "unauthorized"}}],
                 ("failed", "DS refused: An object of type Dossier was hidden due to permissions", None),
                 id="top-level unauthorized without data: failed"),
    pytest.param(MESSAGE, None, [], ("failed", "DS refused: no answer", None),
                 id="neither data nor errors: failed, 'no answer'"),
    pytest.param(MESSAGE, payload("dossierEnvoyerMessage", READ_ONLY), [],
                 ("failed", f"DS refused: {READ_ONLY} (the API token is read-only: give it write access)", None),
                 id="a read-only token: failed, and how to fix it"),
    pytest.param(CLOSE, payload("dossierClasserSansSuite", NO_RIGHTS), [],
                 ("failed", f"DS refused: {NO_RIGHTS} (the instructeur is not in the dossier's groupe instructeur)",
                  None), id="an instructeur outside the groupe: failed, and why"),
    pytest.param(CLOSE, payload("dossierClasserSansSuite", "Le dossier est déjà classé sans suite"), [],
                 ("sent", "already done: Le dossier est déjà classé sans suite", None),
                 id="closing a dossier already closed: done already"),
    pytest.param(PASSER, payload("dossierPasserEnInstruction", "Le dossier est déjà en instruction"), [],
                 ("sent", "already done: Le dossier est déjà en instruction", None),
                 id="passer en instruction a dossier already there: done already"),
    pytest.param(REPASSER, payload("dossierRepasserEnInstruction", "Le dossier est déjà en instruction"), [],
                 ("sent", "already done: Le dossier est déjà en instruction", None),
                 id="repasser en instruction a dossier already there: done already"),
    pytest.param(CLOSE, payload("dossierClasserSansSuite", "Le dossier est déjà en instruction"), [],
                 ("failed", "DS refused: « Le dossier est déjà en instruction » — DS's misleading answer", None),
                 id="closing answered 'déjà en instruction': DS's misleading blank-annotation answer, failed"),
    pytest.param(PASSER, payload("dossierPasserEnInstruction", "Le dossier est déjà accepté"), [],
                 ("failed", "DS refused: Le dossier est déjà accepté", None),
                 id="passer en instruction an accepted dossier: failed (the plan repasses instead)"),
    pytest.param(ANNOTATE, payload("dossierModifierAnnotations", "« Statut » doit être dans les options proposées",
                                   annotations=[{"id": "a1"}]), [],
                 ("failed", "DS saved some annotations but refused others: « Statut »", None),
                 id="annotations saved in part: failed, saying some were saved"),
    pytest.param(ANNOTATE, payload("dossierModifierAnnotations", "L‘annotation \"x\" n’existe pas", annotations=[]),
                 [], ("failed", "DS refused: L‘annotation", None), id="no annotation saved: failed"),
    pytest.param(MESSAGE, payload("dossierEnvoyerMessage", "Le champ « Votre message » ne peut être vide",
                                  "Il n’est pas possible d’envoyer un message sur un dossier supprimé"), [],
                 ("failed", "DS refused: Le champ « Votre message » ne peut être vide; Il n’est pas possible", None),
                 id="several payload errors: all of them, in order"),
]


@pytest.mark.parametrize("act, data, errors, expected", CLASSIFY)
def test_classify(act, data, errors, expected):
    outcome, reason, remote = classify(act, data, errors)
    want_outcome, want_reason, want_remote = expected
    assert (outcome, remote) == (want_outcome, want_remote)
    if want_reason is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(want_reason), reason
