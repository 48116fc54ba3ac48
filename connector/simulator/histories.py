"""What happens to a dossier after dépôt: traitements, system messages, instructeurs' requests and
annotations, usagers' replies, hiding. One :class:`Life` per dossier writes it, never past the clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta

from connector.simulator import referentiel as ref
from connector.simulator.anomalies import (
    CONVENTION_LATE, CONVENTION_MISSING, CONVENTION_ON_TIME, HIDDEN_BY_EXPIRY, HIDDEN_BY_USER_EN_CONSTRUCTION,
    HIDDEN_BY_USER_TERMINATED, MISSING_UPLOAD, PDF_SCAN_PENDING, RATES, REOPENED, REPLY_IMAGE, REPLY_NON_PDF,
    REPLY_TEXT,
)
from connector.simulator.dates import DAY, add_months, after, between, fr_date, not_after, on_time, paris_day
from connector.simulator.demarches import Spec
from connector.simulator.filling import NOTHING, file_size, string_value
from connector.simulator.forms import Form
from connector.simulator.state import (
    SYSTEM_EMAIL, TERMINATED, Demarche, Dossier, Message, StoredFile, Traitement, World, make_file,
)


_TRAITEMENT_STATE = {
    "depose": "en_construction", "accepte_automatiquement": "accepte", "accepte": "accepte",
    "passe_en_instruction": "en_instruction", "refuse": "refuse", "classe_sans_suite": "sans_suite",
    "repasse_en_instruction": "en_instruction", "repasse_en_construction": "en_construction",
}

_SUBJECTS = {
    "depose": "Votre dossier nº {n} a bien été déposé ({title})",
    "passe_en_instruction": "Votre dossier nº {n} va être examiné ({title})",
    "accepte": "Votre dossier nº {n} a été accepté ({title})",
    "refuse": "Votre dossier nº {n} a été refusé ({title})",
    "classe_sans_suite": "Votre dossier nº {n} a été classé sans suite ({title})",
    "repasse_en_instruction": "Votre dossier nº {n} est repassé en instruction ({title})",
    "repasse_en_construction": "Votre dossier nº {n} est repassé en construction ({title})",
}

_OCCITANIE_ACCEPTE = (
    "<p>Bonjour,</p><p>Votre demande d'adhésion à l'ENT-École a été acceptée le {day}. La convention "
    "pré-remplie est disponible sur votre dossier (bouton « Télécharger l'attestation »).</p><p>Vous "
    "devez ensuite :</p><ul><li>IMPRIMER la convention</li><li>VERIFIER les informations fournies</li>"
    "<li>FAIRE SIGNER la convention par le représentant de la collectivité</li><li>SCANNER et RETOURNER "
    "la convention en pièce jointe dans la messagerie interne de démarches simplifiées dans un délai "
    "maximum de deux mois après la demande. Si ce délai n'est pas respecté, la demande sera classée sans "
    "suite.</li></ul><p>Bien cordialement,</p><p>{service}</p>"
)

_REQUEST = (
    "Bonjour,\n\nVotre demande d'adhésion à l'ENT-École 2026-2027 a bien été acceptée. Merci de nous "
    "retourner la convention signée par le représentant de la collectivité, scannée au format PDF, en "
    "pièce jointe d'un message sur cette messagerie, au plus tard le {deadline}.\n\nSans retour de la "
    "convention signée dans ce délai, la demande sera classée sans suite et l'accès à l'ENT fermé pour "
    "les écoles.\n\nBien cordialement,\nLa DRANE Occitanie"
)

_REMINDER = (
    "Bonjour,\n\nSauf erreur de notre part, nous n'avons pas reçu la convention signée de votre "
    "collectivité. Nous vous rappelons qu'elle doit être déposée dans cette messagerie au format PDF avant "
    "le {deadline}.\n\nBien cordialement,\nLa DRANE Occitanie"
)

_SANS_SUITE = ("Convention signée non transmise dans le délai de deux mois : demande classée sans suite, "
               "accès à l'ENT fermé pour les écoles.")

_USAGER_TEXTS = {
    "signed_pdf": ("Bonjour,\n\nVeuillez trouver ci-joint la convention signée.\n\nCordialement,\n{sign}",
                   "Bonjour, voici la convention ENT-École signée par M. le Maire. Bonne journée.",
                   "Convention signée en pièce jointe.", ""),
    "non_pdf": ("Bonjour, voici la convention complétée.\nCordialement,\n{sign}",
                "Ci-joint la convention.", "Bonjour,\nje vous transmets la convention signée.\n{sign}"),
    "image": ("Bonjour, ci-joint la convention signée (scan).\n{sign}", "Voici la photo de la convention signée.",
              "Convention signée"),
    "text": ("Bonjour,\n\nLa convention sera signée lors du prochain conseil municipal. Nous vous la "
             "transmettrons ensuite.\n\nCordialement,\n{sign}",
             "Bonjour, pouvez-vous nous renvoyer la convention ? Nous ne la trouvons plus. Merci.",
             "Bonjour,\nLe maire est absent jusqu'à la fin du mois, la convention sera signée à son retour.\n"
             "{sign}"),
}

_ATTACHMENTS = {
    "signed_pdf": (("convention_signee.pdf", "Convention ENT signée.pdf", "CONVENTION ENT ECOLE 2026.PDF",
                    "scan_{day}.pdf", "{slug}_convention_ent_2026-2027.pdf", "Doc{n}.pdf"), "application/pdf"),
    "non_pdf": (("convention ENT.docx", "Convention_ENT_Ecole.docx"),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "non_pdf_odt": (("convention.odt", "convention ent {slug}.odt"), "application/vnd.oasis.opendocument.text"),
    "image": (("IMG_{day}_1015.jpg", "convention.jpg", "Scan0001.JPG"), "image/jpeg"),
    "image_png": (("convention signée.png", "capture.png"), "image/png"),
}

USAGER_MESSAGE_KINDS = ("signed_pdf", "non_pdf", "image", "text")


@lru_cache(maxsize=1024)
def _text(template: str, deadline: str) -> str:
    """A request or reminder: one string per deadline day, shared by the dossiers that have it."""
    return template.format(deadline=deadline)


@dataclass
class Life:
    """Helpers that write one dossier's history: traitements, system and human messages, annotations."""

    world: World
    dem: Demarche
    form: Form
    d: Dossier
    rng: random.Random
    now: datetime
    spec: Spec
    humans: list[str]  # the groupe's instructeurs, the technical account aside
    ids: dict[str, int]  # instructeur ids by e-mail
    events: list[datetime] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def _follow(self, email: str) -> None:
        iid = self.ids[email]
        if iid not in self.d.follower_ids:
            self.d.follower_ids.append(iid)

    def message(self, at: datetime, email: str, body: str, attachments: list[StoredFile] | None = None) -> Message:
        m = Message(self.world.new_id("Commentaire"), email, body, at, attachments or NOTHING)
        self.d.messages.append(m)
        self.events.append(at)
        return m

    def instructeur_message(self, at: datetime, body: str, email: str | None = None) -> None:
        email = email or self.rng.choice(self.humans)
        self.message(at, email, body)
        self._follow(email)

    def transition(self, at: datetime, event: str, agent: str | None = None, motivation: str | None = None) -> None:
        d, state = self.d, _TRAITEMENT_STATE[event]
        d.state = state
        d.traitements.append(Traitement(self.world.new_id("Traitement"), state, event, at, agent, motivation))
        if event == "depose":
            d.depose_at = d.en_construction_at = at
        elif state == "en_construction":
            d.en_construction_at = at
        elif state == "en_instruction":
            d.en_instruction_at, d.processed_at, d.motivation, d.attestation, d.archived = at, None, None, None, False
        else:
            d.processed_at, d.motivation = at, motivation
        if agent:
            self._follow(agent)
        subject = _SUBJECTS["accepte" if event == "accepte_automatiquement" else event].format(
            n=d.number, title=self.dem.title)
        if self.spec.kind == "occitanie" and state == "accepte":
            body = _OCCITANIE_ACCEPTE.format(day=fr_date(paris_day(at)), service=self.spec.service)
        else:
            reason = f"<p>Motif : {motivation}</p>" if motivation else ""
            headline = subject.split(" (")[0]
            body = f"<p>Bonjour,</p><p>{headline}.</p>{reason}<p>Bonne journée,</p><p>{self.spec.service}</p>"
        self.message(at, SYSTEM_EMAIL, f"<p>[{subject}]</p>{body}")
        if state == "accepte" and self.spec.kind != "creteil":
            self.d.attestation = make_file(self.world, f"attestation-dossier-{d.number}.pdf", "application/pdf",
                                           file_size(self.rng, 6_000), at + timedelta(seconds=self.rng.uniform(4, 40)))

    def annotate(self, at: datetime, key: str, value: object, email: str) -> None:
        desc = self.form.keys.get(key)
        if desc is None:
            return
        for champ in self.d.annotations:
            if champ.stable_id == desc.stable_id:
                champ.value, champ.string_value, champ.updated_at = value, string_value(champ.type, value), at
        self.d.annotations_updated_at = max(self.d.annotations_updated_at or at, at)
        self.events.append(at)
        self._follow(email)

    def label(self, name: str) -> None:
        lid = next(lb.id for lb in self.dem.labels if lb.name == name)
        if lid not in self.d.label_ids:
            self.d.label_ids.append(lid)

    def archive(self, at: datetime) -> None:
        self.d.archived = True
        self.events.append(at)

    def usager_message(self, at: datetime, kind: str, virus_scan: str = "safe") -> Message:
        m = write_usager_message(self.world, self.d, kind, at, self.rng, virus_scan)
        self.events.append(at)
        return m

    def close_sans_suite(self, at: datetime, motivation: str) -> None:
        agent = self.rng.choice(self.humans)
        if self.d.state in TERMINATED:
            self.transition(at, "repasse_en_instruction", agent)
            at += timedelta(minutes=self.rng.uniform(0.5, 6))
        elif self.d.state == "en_construction":
            self.transition(at, "passe_en_instruction", agent)
            at += timedelta(minutes=self.rng.uniform(0.5, 6))
        self.transition(at, "classe_sans_suite", agent, motivation)


def write_usager_message(world: World, d: Dossier, kind: str, at: datetime, rng: random.Random,
                         virus_scan: str = "safe", size: int | None = None) -> Message:
    """A message from the usager (or a colleague's address) of one of :data:`USAGER_MESSAGE_KINDS`
    (``size``: its attachment's bytes, default drawn as the seed's are)."""
    if kind not in USAGER_MESSAGE_KINDS:
        raise ValueError(f"unknown usager message kind {kind!r}; expected one of {', '.join(USAGER_MESSAGE_KINDS)}")
    sign = rng.choice(("Le secrétariat de mairie", "La mairie", "Service scolaire", ""))
    body = rng.choice(_USAGER_TEXTS[kind]).format(sign=sign).strip()
    attachments = []
    if kind != "text":
        variant = kind if rng.random() < 0.7 else {"non_pdf": "non_pdf_odt", "image": "image_png"}.get(kind, kind)
        names, content_type = _ATTACHMENTS[variant]
        slug = ref.slug(d.usager_email.split("@")[1].split(".")[0])
        name = rng.choice(names).format(day=paris_day(at).replace("-", ""), slug=slug, n=rng.randint(1, 40))
        if kind == "signed_pdf" and rng.random() < 0.03:
            content_type = "application/octet-stream"  # a PDF known only by its name
        size = file_size(rng) if size is None else size
        attachments.append(make_file(world, name, content_type, size, at, virus_scan))
    email = d.usager_email
    if rng.random() < 0.1:  # an invited co-author or a colleague's address
        email = "secretariat." + d.usager_email.split("@")[0] + "@" + d.usager_email.split("@")[1]
    m = Message(world.new_id("Commentaire"), email, body, at, attachments or NOTHING)
    d.messages.append(m)
    return m


def occitanie_life(life: Life, reopen_allowed: bool) -> None:
    """Accepted a minute after dépôt; the signed convention is asked for, reminded, returned (or not),
    noted in the annotations; overdue dossiers are sometimes classés sans suite by hand."""
    d, rng, now = life.d, life.rng, life.now
    accepted = d.depose_at + timedelta(seconds=rng.uniform(20, 80))
    life.transition(accepted, "accepte_automatiquement")
    if reopen_allowed and rng.random() < RATES[REOPENED]:
        _reopen(life, accepted)
        return
    deadline = add_months(d.depose_at, 2)
    deadline_text = fr_date(paris_day(deadline))
    request = after(rng, accepted, 0.05, 6)
    if rng.random() < 0.9 and request <= now:
        life.instructeur_message(request, _text(_REQUEST, deadline_text))
    replies: list[tuple[datetime, str]] = []
    u = rng.random()
    if u < 0.62:
        replies.append((after(rng, d.depose_at, 2, 58, office=False), "signed_pdf"))
    elif u < 0.72:
        replies.append((after(rng, deadline, 2, 60, office=False), "signed_pdf"))
    elif u < 0.82:
        first = after(rng, d.depose_at, 2, 40, office=False)
        replies.append((first, rng.choice(("non_pdf", "image", "text"))))
        if rng.random() < 0.5:
            replies.append((after(rng, first, 3, 30, office=False), "signed_pdf"))
    replies = [(t, k) for t, k in replies if t <= now]
    pdf_at = next((t for t, k in replies if k == "signed_pdf"), None)
    if (pdf_at is None or pdf_at > d.depose_at + 45 * DAY) and rng.random() < 0.5:
        reminder = after(rng, d.depose_at, 45, 55)
        if reminder + timedelta(minutes=30) <= now and (pdf_at is None or reminder < pdf_at):
            email = rng.choice(life.humans)
            life.instructeur_message(reminder, _text(_REMINDER, deadline_text), email)
            life.annotate(reminder + timedelta(minutes=rng.uniform(1, 20)), "relance", paris_day(reminder), email)
            life.annotate(reminder + timedelta(minutes=rng.uniform(21, 30)), "statut", "Relancée", email)
            life.label("Relancé")
    closed_at = None
    if (deadline <= now and (pdf_at is None or pdf_at > deadline) and d.connection_usager != "deleted"
            and rng.random() < 0.35):
        closing = after(rng, deadline, 1, 25)
        if closing + timedelta(minutes=10) <= now and (pdf_at is None or closing < pdf_at):
            email = rng.choice(life.humans)
            life.annotate(closing, "statut", "Classée sans suite", email)
            life.close_sans_suite(closing + timedelta(minutes=rng.uniform(1, 4)), _SANS_SUITE)
            life.label("Hors délai")
            closed_at = closing
            archived = after(rng, closing, 1, 10)
            if rng.random() < 0.5 and archived <= now:
                life.archive(archived)
                replies = [(t, k) for t, k in replies if t < archived]  # the messagerie closes
    for at, kind in replies:
        # DS's virus scan ends within minutes: only the latest uploads are still pending.
        scan = "pending" if kind != "text" and now - at < timedelta(minutes=rng.uniform(1, 30)) else "safe"
        life.usager_message(at, kind, scan)
        if kind == "signed_pdf" and scan == "pending":
            life.anomalies.append(PDF_SCAN_PENDING)
        elif kind != "signed_pdf":
            life.anomalies.append({"non_pdf": REPLY_NON_PDF, "image": REPLY_IMAGE, "text": REPLY_TEXT}[kind])
    pdf_at = next((t for t, k in replies if k == "signed_pdf"), None)
    life.anomalies.append(CONVENTION_MISSING if pdf_at is None else
                          CONVENTION_ON_TIME if on_time(pdf_at, d.depose_at) else CONVENTION_LATE)
    if pdf_at is not None and closed_at is None:
        noted = after(rng, pdf_at, 0.1, 8)
        if noted + timedelta(minutes=2) <= now and rng.random() < 0.75:
            email = rng.choice(life.humans)
            life.annotate(noted, "convention_recue", True, email)
            life.annotate(noted + timedelta(seconds=rng.uniform(5, 60)), "date_reception", paris_day(pdf_at), email)
            life.annotate(noted + timedelta(seconds=rng.uniform(61, 120)), "statut", "Reçue", email)
            life.label("Convention reçue")
            if rng.random() < 0.3:
                life.instructeur_message(noted + timedelta(minutes=2), "Bonjour,\n\nNous accusons bonne réception "
                                         "de la convention signée. Merci.\n\nBien cordialement,\nLa DRANE", email)
            archived = after(rng, noted, 5, 30)
            if rng.random() < 0.15 and archived <= now:
                life.archive(archived)


def _reopen(life: Life, accepted: datetime) -> None:
    """The usager reports an error in the convention; the dossier goes back en construction, is corrected,
    then accepted again by hand (as far as the clock allows)."""
    d, rng, now = life.d, life.rng, life.now
    life.anomalies.append(REOPENED)
    life.anomalies.append(CONVENTION_MISSING)  # no signed PDF comes back on this path
    asked = after(rng, accepted, 1, 20, office=False)
    if asked > now:
        return
    life.message(asked, d.usager_email, "Bonjour,\n\nNous avons constaté une erreur dans la liste des écoles de "
                 "la convention. Pouvez-vous rouvrir le dossier afin que nous puissions la corriger ?\n\nMerci.")
    reopened = after(rng, asked, 0.3, 3)
    if reopened + timedelta(minutes=4) > now:
        return
    agent = rng.choice(life.humans)
    life.transition(reopened, "repasse_en_instruction", agent)
    life.transition(reopened + timedelta(minutes=rng.uniform(1, 3)), "repasse_en_construction", agent)
    life.instructeur_message(reopened + timedelta(minutes=4), "Bonjour,\n\nLe dossier a été rouvert : vous "
                             "pouvez corriger la liste des écoles puis nous le signaler ici.\n\nCordialement", agent)
    edited = after(rng, reopened, 0.2, 5, office=False)
    if edited > now:
        return
    schools = life.form.keys["ecoles"].stable_id
    for champ in d.champs:
        if champ.stable_id == schools:
            champ.updated_at = edited
    d.champs_updated_at = edited
    life.events.append(edited)
    accepted_again = after(rng, edited, 1, 6)
    if accepted_again + timedelta(minutes=6) > now:
        return
    life.transition(accepted_again, "passe_en_instruction", agent)
    life.transition(accepted_again + timedelta(minutes=rng.uniform(1, 5)), "accepte", agent)


def poitiers_life(life: Life) -> None:
    """Accepted a minute after dépôt; schools passed on to the ENT provider (AAF); a few duplicates closed."""
    d, rng, now = life.d, life.rng, life.now
    accepted = d.depose_at + timedelta(seconds=rng.uniform(20, 80))
    life.transition(accepted, "accepte_automatiquement")
    if rng.random() < 0.08:
        asked = after(rng, accepted, 0.5, 30, office=False)
        if asked <= now:
            life.usager_message(asked, "text")
            answer = after(rng, asked, 0.1, 4)
            if answer <= now:
                life.instructeur_message(answer, "Bonjour,\n\nLa convention est disponible depuis votre dossier, "
                                         "bouton « Télécharger l'attestation ».\n\nCordialement")
    if rng.random() < 0.02:
        closing = after(rng, accepted, 2, 20)
        if closing + timedelta(minutes=6) <= now:
            life.close_sans_suite(closing, "Doublon : la collectivité a déposé un autre dossier.")
            life.label("Doublon")
            return
    sent = after(rng, accepted, 1, 25)
    if sent + timedelta(minutes=1) <= now and rng.random() < 0.6:
        email = rng.choice(life.humans)
        life.annotate(sent, "aaf_transmis", True, email)
        life.annotate(sent + timedelta(seconds=rng.uniform(5, 60)), "aaf_date", paris_day(sent), email)
        life.label("Transmis AAF")


def creteil_life(life: Life, target: str | None, processed: datetime | None) -> None:
    """Instructed by hand: ``target`` ("en_construction", "en_instruction", "terminated", or None to draw
    one from the dossier's age), decided at ``processed`` when given."""
    d, rng, now = life.d, life.rng, life.now
    age = (now - d.depose_at).days
    if target is None:
        r = rng.random()
        if MISSING_UPLOAD in life.anomalies:
            target = "en_construction" if r < 0.6 else "en_instruction"
        elif age > 30:
            target = "terminated" if r < 0.75 else "en_instruction" if r < 0.9 else "en_construction"
        elif age > 5:
            target = "terminated" if r < 0.3 else "en_instruction" if r < 0.7 else "en_construction"
        else:
            target = "en_construction" if r < 0.8 else "en_instruction"
    agent = rng.choice(life.humans)
    if MISSING_UPLOAD in life.anomalies:
        asked = after(rng, d.depose_at, 0.5, 5)
        if asked <= now:
            life.instructeur_message(asked, "Bonjour,\n\nUne pièce obligatoire manque à votre dossier (certificat "
                                     "d'adhésion ou bon de commande). Merci de nous la transmettre.\n\nCordialement",
                                     agent)
            life.label("Pièces manquantes")
    if target == "en_construction":
        return
    if processed is not None:
        instruction = between(rng, d.depose_at, processed - timedelta(hours=2))
    else:
        instruction = not_after(rng, after(rng, d.depose_at, 0.5, min(20, max(age, 1))), d.depose_at, now, True)
    life.transition(instruction, "passe_en_instruction", agent)
    if target == "en_instruction":
        return
    if processed is None:
        processed = not_after(rng, after(rng, instruction, 0.05, 15), instruction, now, True)
    r = rng.random()
    if r < 0.8:
        life.transition(processed, "accepte", agent)
        delivered = after(rng, processed, 1, 10)
        if delivered + timedelta(minutes=1) <= now and rng.random() < 0.7:
            life.annotate(delivered, "aaf_livre", True, agent)
            life.annotate(delivered + timedelta(seconds=rng.uniform(5, 60)), "aaf_date", paris_day(delivered), agent)
            life.label("AAF livré")
    elif r < 0.87:
        life.transition(processed, "refuse", agent, "Le bon de commande ne correspond pas aux écoles déclarées.")
    else:
        life.transition(processed, "classe_sans_suite", agent, "Dossier déposé en double.")
    archived = after(rng, processed, 20, 60)
    if archived <= now and rng.random() < 0.4:
        life.archive(archived)


def hide(life: Life, fate: str) -> None:
    """Hide the dossier as the fate says (its state was made to fit by the caller)."""
    d, rng, now = life.d, life.rng, life.now
    if fate == HIDDEN_BY_EXPIRY:
        due = add_months(d.processed_at, 12)
        d.hidden_by_expired_at = at = not_after(rng, due + timedelta(hours=rng.uniform(1, 6)), due, now)
    elif fate == HIDDEN_BY_USER_EN_CONSTRUCTION:
        d.hidden_by_user_at = at = between(rng, max(d.en_construction_at, now - 13 * DAY), now)
    elif fate == HIDDEN_BY_USER_TERMINATED:
        d.hidden_by_user_at = at = between(rng, d.processed_at, now)
    else:
        d.hidden_by_administration_at = at = between(rng, max(d.processed_at, now - 13 * DAY), now)
    life.anomalies.append(fate)
    life.events.append(at)


def mark_reply(d: Dossier, kind: str, at: datetime, virus_scan: str) -> None:
    """Plant the convention outcome of a usager reply delivered later (the control surface), as the
    seeder does: the first signed PDF decides on time / late (Paris day of the deadline); other
    replies are noted; a PDF still being scanned is marked until its scan ends."""
    marks = list(d.anomalies)
    if kind == "signed_pdf" and virus_scan not in ("infected", "integrity_error") and CONVENTION_MISSING in marks:
        marks[marks.index(CONVENTION_MISSING)] = CONVENTION_ON_TIME if on_time(at, d.depose_at) else CONVENTION_LATE
        if virus_scan == "pending":
            marks.append(PDF_SCAN_PENDING)
    elif kind != "signed_pdf":
        mark = {"non_pdf": REPLY_NON_PDF, "image": REPLY_IMAGE, "text": REPLY_TEXT}[kind]
        if mark not in marks:
            marks.append(mark)
    d.anomalies = tuple(marks)


def mark_scan(d: Dossier, key: str, result: str) -> None:
    """A pending PDF's scan ended: safe keeps its outcome; infected makes it not count (DS drops it)."""
    marks = list(d.anomalies)
    if PDF_SCAN_PENDING not in marks:
        return
    first_pdf = next((f for m in d.messages for f in m.attachments
                      if f.filename.lower().endswith(".pdf") or f.content_type == "application/pdf"), None)
    if first_pdf is None or first_pdf.key != key:
        return
    marks.remove(PDF_SCAN_PENDING)
    if result in ("infected", "integrity_error"):
        marks = [CONVENTION_MISSING if m in (CONVENTION_ON_TIME, CONVENTION_LATE) else m for m in marks]
    d.anomalies = tuple(marks)
