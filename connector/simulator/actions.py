"""What DS does to a dossier's records when something happens to it (docs/ds-api.md §9-10).

Plain functions on the world's records, shared by the GraphQL mutations (the API's instructeur)
and the control surface (usager, web-UI instructeur, DS's own jobs). They never check
preconditions (the callers do) and never touch the app's caches (the Simulator does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.simulator.state import (
    SYSTEM_EMAIL,
    Champ,
    ChampDescriptor,
    DeletedDossier,
    Dossier,
    Instructeur,
    Message,
    Revision,
    Row,
    StoredFile,
    Traitement,
    World,
    make_file,
)

# DS's lower-case state wording (Dossier.human_attribute_name("state.…")), as in "Le dossier est déjà …".
STATE_WORDS = {
    "brouillon": "brouillon",
    "en_construction": "en construction",
    "en_instruction": "en instruction",
    "accepte": "accepté",
    "refuse": "refusé",
    "sans_suite": "classé sans suite",
}
_DECISIONS = {  # state -> (traitement event, system message subject)
    "en_instruction": ("passe_en_instruction", "Votre dossier nº {n} est en cours d’instruction"),
    "accepte": ("accepte", "Votre dossier nº {n} a été accepté"),
    "refuse": ("refuse", "Votre dossier nº {n} a été refusé"),
    "sans_suite": ("classe_sans_suite", "Votre dossier nº {n} a été classé sans suite"),
    "en_construction": ("repasse_en_construction", "Votre dossier nº {n} est repassé en construction"),
}
ATTESTATION_SIZE = 48_213


_MOIS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
         "novembre", "décembre")


def string_value(champ_type: str, value: Any) -> str | None:
    """DS's ``stringValue`` for a champ value (``champ_value_for_api``, version 2): "true"/"false" for
    a checkbox, the French long date for a date (as the seeder writes it)."""
    if champ_type in ("CheckboxChamp", "YesNoChamp"):
        return None if value is None and champ_type == "YesNoChamp" else str(bool(value)).lower()
    if value is None or value == []:
        return None
    if champ_type == "DateChamp":
        year, month, day = str(value).split("-")
        return f"{day} {_MOIS[int(month) - 1]} {year}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def is_blank(champ: Champ) -> bool:
    """``champ_blank_or_invalid?``: an unchecked checkbox is blank too."""
    if champ.type == "CheckboxChamp":
        return champ.value is not True
    if champ.type == "PieceJustificativeChamp":
        return not champ.files
    if champ.type == "RepetitionChamp":
        return not champ.rows
    return champ.value in (None, "", [])


def system_message(world: World, d: Dossier, now: datetime, subject: str) -> Message:
    body = f"<p>[{subject}]</p><p>Bonjour,</p><p>{subject}.</p><p>Bonne journée,</p>"
    return post_message(world, d, SYSTEM_EMAIL, body, now)


def post_message(world: World, d: Dossier, email: str, body: str, now: datetime,
                 attachments: list[StoredFile] | None = None) -> Message:
    """A Commentaire: it touches the dossier (``belongs_to :dossier, touch: true``)."""
    message = Message(world.new_id("Commentaire"), email, body, now, list(attachments or []))
    d.messages.append(message)
    d.updated_at = now
    return message


def change_state(world: World, d: Dossier, state: str, now: datetime, instructeur: Instructeur | None,
                 motivation: str | None = None) -> None:
    """A state transition as DS's AASM events do it: dates, traitement, system message, touch."""
    event, subject = _DECISIONS[state]
    if state == "en_instruction" and d.state in ("accepte", "refuse", "sans_suite"):
        event, subject = "repasse_en_instruction", "Votre dossier nº {n} est repassé en instruction"
        d.processed_at = None
        d.motivation = None
        d.archived = False
        d.attestation = None
    d.state = state
    if state == "en_instruction":
        d.en_instruction_at = now
        if instructeur is not None and instructeur.id not in d.follower_ids:
            d.follower_ids.append(instructeur.id)  # passer en instruction makes a Follow
    elif state == "en_construction":
        d.en_construction_at = now
        d.en_instruction_at = None
    else:
        d.processed_at = now
        d.motivation = motivation
        if state == "accepte":
            d.attestation = make_file(world, f"attestation-dossier-{d.number}.pdf", "application/pdf",
                                      ATTESTATION_SIZE, now)
    d.traitements.append(Traitement(world.new_id("Traitement"), state, event, now,
                                    instructeur.email if instructeur else None, motivation))
    system_message(world, d, now, subject.format(n=d.number))
    d.updated_at = now


def new_row(world: World, descriptor: ChampDescriptor) -> Row:
    """An empty repetition row, with one blank champ per child descriptor."""
    rid = f"01SIM{world.new_id('Row'):021d}"
    champs = [Champ(c.stable_id, champ_type(c.type), c.label) for c in descriptor.children]
    return Row(rid, champs)


def champ_type(descriptor_type: str) -> str:
    """The GraphQL Champ type of a descriptor type (a textarea or e-mail champ is a TextChamp)."""
    return {"EmailChamp": "TextChamp", "PhoneChamp": "TextChamp", "TextareaChamp": "TextChamp"}.get(
        descriptor_type, descriptor_type
    )


def revision_of(world: World, d: Dossier) -> Revision:
    """The dossier's own revision (terminated dossiers stay on theirs, §12)."""
    dem = world.demarches[d.demarche_number]
    return next((r for r in dem.revisions if r.id == d.revision_id), None) or next(
        r for r in dem.revisions if r.id == dem.active_revision_id)


def annotation(d: Dossier, descriptor: ChampDescriptor) -> Champ:
    """The dossier's private champ for a root descriptor, created blank if absent (``champ_for_update``)."""
    for champ in d.annotations:
        if champ.stable_id == descriptor.stable_id:
            return champ
    champ = Champ(descriptor.stable_id, champ_type(descriptor.type), descriptor.label)
    d.annotations.append(champ)
    return champ


def write_champ(champ: Champ, value: Any, now: datetime) -> None:
    if champ.type == "DatetimeChamp" and isinstance(value, str):
        value = datetime.fromisoformat(value)
    champ.value = value
    champ.string_value = string_value(champ.type, value)
    champ.updated_at = now


def hide(d: Dossier, by: str, now: datetime) -> None:
    """``hide_and_keep_track!``: by the usager, the administration, or the automatic expiry."""
    column = {"usager": "hidden_by_user_at", "administration": "hidden_by_administration_at",
              "expired": "hidden_by_expired_at"}[by]
    setattr(d, column, now)
    d.updated_at = now


def restore(d: Dossier, now: datetime) -> None:
    """A restore from the trash: a normal update, so the dossier comes back to updatedSince (§6)."""
    d.hidden_by_user_at = d.hidden_by_administration_at = d.hidden_by_expired_at = None
    d.updated_at = now


def purge(world: World, d: Dossier, reason: str, now: datetime) -> DeletedDossier | None:
    """Destroy the dossier and keep a DeletedDossier (none for a brouillon, never on the API);
    usager deletions en construction are backdated to their hiding (§6)."""
    del world.dossiers[d.number]
    if d.state == "brouillon":
        return None
    deleted_at = now
    if d.state == "en_construction" and d.hidden_by_user_at is not None:
        deleted_at = d.hidden_by_user_at
    record = DeletedDossier(world.new_id("DeletedDossier"), d.number, d.demarche_number, d.state, reason, deleted_at)
    world.deleted.append(record)
    return record
