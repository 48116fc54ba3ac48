"""The convention status of each dossier, from the mirror alone (issue 9 §1; read-only, always on).

Rules, in order (each status row carries the rule that decided it, and the message, file or
annotation that proves it):

1. ``refuse`` → not_applicable; ``sans_suite`` → not_applicable, unless the connector itself closed it
   for the deadline (then overdue, closed).
2. Received: the first message from the usager (not the system, not an instructeur; a co-author's
   address counts) created at or after the reference date, with a PDF attachment (content type
   ``application/pdf`` or a name ending in ``.pdf``, any case). Its scan ``safe`` → received on time or
   late (by the Paris day of the message, see ``deadlines``); ``pending`` → to_confirm (re-read, never
   missing); infected files are not in DS's lists at all. A first PDF message with several PDFs →
   to_review.
3. Or an instructeur's annotation (the profile's "convention reçue" checkbox, or its reception date):
   received, dated by the reception date (else the annotation's own date). It settles to_review and
   to_confirm too: a person looked.
4. No PDF, but a reply with another file (Word, ODT, image) → to_review: a person must look.
5. Otherwise awaiting until the deadline day's end, then overdue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connector.config import DeadlineConfig
from connector.followup import deadlines
from connector.followup.profile import FollowupProfile
from connector.store import followup as store

REFERENCE_COLUMNS = {"date_depot": "date_depot", "date_passage_en_instruction": "date_passage_en_instruction"}
UNSAFE_SCANS = ("infected", "integrity_error")


@dataclass(frozen=True)
class Status:
    status: str
    rule: str
    reference_at: str | None = None
    deadline: date | None = None
    received_at: str | None = None
    proof_message_id: str | None = None
    proof_file_key: str | None = None
    proof_annotation_id: str | None = None


def is_pdf(f: dict[str, Any]) -> bool:
    return (f.get("content_type") or "").lower() == "application/pdf" or (f.get("filename") or "").lower().endswith(".pdf")


def evaluate(dossier: dict[str, Any], messages: list[dict[str, Any]], annotations: dict[str, dict[str, Any]],
             profile: FollowupProfile, settings: DeadlineConfig, now: datetime, *, closed_by_us: bool = False) -> Status:
    """The status of one dossier. ``messages``: its usager messages with their ``files``;
    ``annotations``: descriptor id -> annotation row; ``now``: DS's clock."""
    state = dossier["state"]
    reference_text = dossier.get(REFERENCE_COLUMNS[settings.reference])
    reference = deadlines.parse_ds(reference_text)
    day = deadlines.deadline_day(reference, settings.months) if reference else None
    base = {"reference_at": reference_text, "deadline": day}
    if state == "refuse":
        return Status("not_applicable", "refusé", **base)
    if state == "sans_suite":
        if closed_by_us:
            return Status("overdue", "classé sans suite par le connecteur (délai dépassé)", **base)
        return Status("not_applicable", "déjà classé sans suite", **base)
    if reference is None or day is None:
        return Status("not_applicable", f"pas de date de référence ({settings.reference})", **base)

    found = _from_messages(messages, reference)
    if found is not None and found.status == "received":
        return _received(found, day, base)
    noted = _from_annotations(annotations, profile)
    if noted is not None:
        return _received(noted, day, base)
    if found is not None:
        return Status(found.status, found.rule, proof_message_id=found.proof_message_id,
                      proof_file_key=found.proof_file_key, **base)
    if deadlines.past_deadline(now, day):
        return Status("overdue", "rien reçu à la date limite", **base)
    return Status("awaiting", "en attente avant la date limite", **base)


@dataclass(frozen=True)
class _Found:
    status: str  # received | to_confirm | to_review
    rule: str
    at: datetime | None = None
    at_text: str | None = None
    proof_message_id: str | None = None
    proof_file_key: str | None = None
    proof_annotation_id: str | None = None


def _from_messages(messages: list[dict[str, Any]], reference: datetime) -> _Found | None:
    other: _Found | None = None
    for m in messages:
        at = deadlines.parse_ds(m["created_at"])
        if at is None or at < reference:
            continue
        files = [f for f in m.get("files", []) if (f.get("virus_scan") or "safe") not in UNSAFE_SCANS]
        pdfs = [f for f in files if is_pdf(f)]
        if pdfs:
            if len(pdfs) > 1:
                return _Found("to_review", f"{len(pdfs)} PDF dans le même message : à examiner", at, m["created_at"],
                              m["id"], pdfs[0]["file_key"])
            if (pdfs[0].get("virus_scan") or "safe") == "pending":
                return _Found("to_confirm", "PDF reçu, analyse antivirus en cours", at, m["created_at"], m["id"],
                              pdfs[0]["file_key"])
            return _Found("received", "PDF reçu dans la messagerie", at, m["created_at"], m["id"], pdfs[0]["file_key"])
        if files and other is None:
            kinds = ", ".join(sorted({(f.get("content_type") or "?") for f in files}))
            other = _Found("to_review", f"réponse avec un fichier non PDF ({kinds}) : à examiner", at, m["created_at"],
                           m["id"], files[0]["file_key"])
    return other


def _from_annotations(annotations: dict[str, dict[str, Any]], profile: FollowupProfile) -> _Found | None:
    date_id, box_id = profile.champ("date_reception"), profile.champ("convention_recue")
    on_date = annotations.get(date_id) if date_id else None
    box = annotations.get(box_id) if box_id else None
    if on_date is not None and on_date.get("value"):
        text = str(on_date["value"])
        at = deadlines.parse_ds(text)
        return _Found("received", "annotation « date de réception » d'un instructeur", at, text,
                      proof_annotation_id=on_date["champ_id"])
    if box is not None and box.get("value") in (1, True, "1", "true"):
        text = box.get("updated_at")
        return _Found("received", "annotation « convention reçue » d'un instructeur", deadlines.parse_ds(text), text,
                      proof_annotation_id=box["champ_id"])
    return None


def _received(found: _Found, day: date, base: dict[str, Any]) -> Status:
    late = found.at is not None and not deadlines.on_time(found.at, day)
    return Status("received_late" if late else "received_on_time", found.rule, received_at=found.at_text,
                  proof_message_id=found.proof_message_id, proof_file_key=found.proof_file_key,
                  proof_annotation_id=found.proof_annotation_id, **base)


# --- eligibility and the next step (shared by the status rows and the planner) -----------------


def blocked(dossier: dict[str, Any]) -> str | None:
    """Why nothing may be sent to this dossier (docs/ds-api.md §13 rule 21), or None."""
    if dossier.get("archived"):
        return "dossier archivé (messagerie fermée)"
    if dossier.get("pending_deletion") or dossier.get("date_suppression_par_administration"):
        return "dossier dans la corbeille"
    if dossier.get("date_suppression_par_usager"):
        return "dossier supprimé par l'usager"
    if dossier.get("connection_usager") == "deleted":
        return "compte de l'usager supprimé"
    return None


def due_reminder(status: Status, settings: DeadlineConfig, now: datetime) -> int | None:
    """The reminder step (days before the deadline) due now: the most recent one whose time has come,
    while the deadline has not passed (earlier steps missed are not sent late)."""
    if status.status != "awaiting" or status.deadline is None or deadlines.past_deadline(now, status.deadline):
        return None
    due = [n for n in settings.reminder_days if deadlines.reminder_at(status.deadline, n) <= now]
    return min(due) if due else None


def closure_due(status: Status, settings: DeadlineConfig, now: datetime) -> bool:
    return (status.status == "overdue" and status.deadline is not None
            and now >= deadlines.closure_at(status.deadline, settings.grace_days))


def next_change(status: Status, settings: DeadlineConfig, now: datetime) -> datetime | None:
    """The first instant after ``now`` at which time alone (the mirror and the journal unchanged) changes
    what this module and the planner say of this dossier: its status (``evaluate``: awaiting → overdue
    when the deadline day ends), ``next_step``, ``due_reminder`` (a reminder step's time comes, the
    deadline passes) or ``closure_due`` (the grace days end); None when nothing changes with time alone.

    Only ``awaiting`` and ``overdue`` read the clock: a received, to_review, to_confirm or
    not_applicable status, its next step and the planner's decisions read the mirror and the journal
    alone. Every instant of a step is listed whether or not the config turns it on (a change of the
    config is seen by other means: the after-sync follow-up's config digest)."""
    day = status.deadline
    if day is None:
        return None
    if status.status == "awaiting":
        instants = [deadlines.reminder_at(day, n) for n in settings.reminder_days]
        instants += [deadlines.closure_at(day), deadlines.closure_at(day, settings.grace_days)]
    elif status.status == "overdue":
        instants = [deadlines.closure_at(day, settings.grace_days)]
    else:
        return None
    future = [at for at in instants if at > now]
    return min(future) if future else None


def next_step(status: Status, dossier: dict[str, Any], settings: DeadlineConfig, now: datetime,
              keys: dict[str, str]) -> tuple[str | None, str | None]:
    """(next action, when) for the status row: what the connector will do next, and from when."""
    day = status.deadline
    if day is None or status.status in ("received_on_time", "received_late", "not_applicable"):
        return None, None
    if status.status == "to_confirm":
        return "relire le dossier (analyse antivirus en cours)", None
    if status.status == "to_review":
        return "examen par un instructeur", None
    number = dossier["number"]
    if status.status == "awaiting":
        if settings.reminders and blocked(dossier) is None:
            for n in sorted(settings.reminder_days, reverse=True):
                at = deadlines.reminder_at(day, n)
                if f"reminder:{number}:{day}:{n}" not in keys and (at > now or due_reminder(status, settings, now) == n):
                    return f"relance J-{n}", at.isoformat()
        at = deadlines.closure_at(day, settings.grace_days)
        return ("classement sans suite" if settings.classer_sans_suite else "constat du dépassement"), at.isoformat()
    if status.rule.startswith("classé sans suite par le connecteur"):
        return None, None
    if not settings.classer_sans_suite:
        return "aucune (classer_sans_suite désactivé)", None
    if (why := blocked(dossier)) is not None:
        return f"aucune ({why})", None
    return "classement sans suite", deadlines.closure_at(day, settings.grace_days).isoformat()


REFRESH_CHUNK = 1000  # dossiers whose facts are in memory at once (a 23 000-dossier démarche: 118 → ~40 MB)


def refresh(db: Any, settings: DeadlineConfig, demarche_number: int, profile: FollowupProfile, now: datetime,
            numbers: list[int] | None = None) -> list[tuple[dict[str, Any], Status]]:
    """Recompute and save the convention rows of these dossiers (default: the démarche's), inside the
    caller's transaction or one of its own. Returns (dossier facts, status) pairs."""
    with db.atomic():
        return list(refreshed(db, settings, demarche_number, profile, now, numbers))


def refreshed(db: Any, settings: DeadlineConfig, demarche_number: int, profile: FollowupProfile, now: datetime,
              numbers: list[int] | None = None) -> Iterator[tuple[dict[str, Any], Status]]:
    """``refresh`` as it goes: REFRESH_CHUNK dossiers read, evaluated, saved, then yielded, so that a
    caller keeping only a few (the plan keeps what is due) holds one chunk at a time. Consume it whole
    inside a transaction: each chunk is saved in the caller's."""
    numbers = store.demarche_dossier_numbers(db, demarche_number) if numbers is None else numbers
    wanted = [w for w in (profile.champ("date_reception"), profile.champ("convention_recue")) if w]
    for start in range(0, len(numbers), REFRESH_CHUNK):
        chunk = numbers[start:start + REFRESH_CHUNK]
        facts = store.dossier_facts(db, chunk)
        chunk = [n for n in chunk if n in facts and facts[n]["demarche_number"] == demarche_number]
        messages = store.usager_messages(db, chunk)
        annotations = store.annotation_values(db, chunk, wanted)
        closed = store.closed_by_connector(db, chunk)
        keys = store.journal_keys(db, chunk)
        out: list[tuple[dict[str, Any], Status]] = []
        rows = []
        for n in chunk:
            st = evaluate(facts[n], messages[n], annotations[n], profile, settings, now, closed_by_us=n in closed)
            action, at = next_step(st, facts[n], settings, now, keys.get(n, {}))
            rows.append({"dossier_number": n, "demarche_number": demarche_number, "reference": settings.reference,
                         "reference_at": st.reference_at,
                         "deadline": st.deadline.isoformat() if st.deadline else None,
                         "status": st.status, "rule": st.rule, "received_at": st.received_at,
                         "proof_message_id": st.proof_message_id, "proof_file_key": st.proof_file_key,
                         "proof_annotation_id": st.proof_annotation_id, "next_action": action,
                         "next_action_at": at})
            out.append((facts[n], st))
        store.save_conventions(db, rows)
        yield from out
