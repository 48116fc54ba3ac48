"""French words for the mirror's codes, and the templates' formatting filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.forms import exports
from connector.store.values import PARIS


def _capitalised(words: dict[str, str], codes: tuple[str, ...]) -> dict[str, str]:
    """The exports' French words for ``codes`` (one vocabulary), as a page shows them: capitalised."""
    return {code: words[code][:1].upper() + words[code][1:] for code in codes}


DOSSIER_STATES = _capitalised(exports.STATES, ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite"))
CONVENTION_STATUSES = {
    "awaiting": "Attendue", "received_on_time": "Reçue à temps", "received_late": "Reçue en retard",
    "overdue": "En retard", "to_review": "À vérifier", "to_confirm": "À confirmer", "not_applicable": "Sans objet",
}
ACTION_STATES = {
    "planned": "Prévue", "sending": "En cours d'envoi", "sent": "Envoyée", "failed": "Échouée",
    "unknown": "Incertaine (à vérifier sur DS)", "cancelled": "Annulée",
}
ACTION_KINDS = {
    "reminder": "Relance", "closure_message": "Message de clôture", "closure_annotations": "Annotations de clôture",
    "passer_en_instruction": "Passage en instruction", "repasser_en_instruction": "Retour en instruction",
    "classer_sans_suite": "Classement sans suite", "renewal_reminder": "Relance de renouvellement",
}
SEVERITIES = _capitalised(exports.SEVERITIES, ("error", "warning"))
RUN_STATUSES = {"ok": "Réussie", "partial": "Partielle", "failed": "Échouée", "interrupted": "Interrompue",
                "running": "En cours"}
SENDERS = {"usager": "Usager", "instructeur": "Instructeur", "system": "Système"}
PROOFS = {"message": "Message", "fichier": "Fichier", "annotation": "Annotation"}
EXPORTS = exports.TITLES  # the sheets' titles: one name per kind, in the page and in the workbook
ROLES = {
    "collectivite": "Collectivité", "siret": "SIRET", "commune": "Commune", "departement": "Département",
    "signataire_nom": "Nom du signataire", "signataire_prenom": "Prénom du signataire",
    "signataire_qualite": "Qualité du signataire", "signataire_qualite_autre": "Qualité (précision)",
    "email": "Courriel", "telephone": "Téléphone",
}
HEALTH = {"OK": "Tout va bien", "WARNING": "À surveiller", "CRITICAL": "Critique", "UNKNOWN": "Inconnu"}

# List titles and column headers.
LISTS = {"dossiers": "Dossiers", "conventions": "Conventions", "anomalies": "Anomalies",
         "actions": "Journal des actions",
         "ecoles": "Écoles"}
COLUMNS = {
    "dossier": "Dossier", "collectivite": "Collectivité", "siret": "SIRET", "state": "État du dossier",
    "date_depot": "Dépôt", "nombre_ecoles": "Écoles déclarées", "modified": "Modifié le",
    "anomalies": "Anomalies",
    "status": "Statut", "deadline": "Échéance", "days_left": "Jours restants", "received_at": "Reçue le",
    "proof": "Preuve", "next_action": "Prochaine action", "next_action_at": "Prévue le",
    "reminders_sent": "Relances envoyées", "id": "N°", "code": "Règle", "severity": "Gravité", "champ": "Champ",
    "message": "Message", "since": "Depuis", "last_seen": "Vue le", "resolved_at": "Résolue le", "kind": "Action",
    "rule": "Motif", "created_at": "Décidée le", "sent_at": "Envoyée le", "updated_at": "Mise à jour",
    "attempts": "Essais", "ds_answer": "Réponse de DS", "last_error": "Erreur", "uai": "UAI", "uai_saisi": "UAI saisi",
    "uai_valide": "UAI valide", "nom": "École", "commune": "Commune",
}
FILTERS_TITLES = {"state": "État", "status": "Statut", "due": "Échéance", "open": "Ouverture",
                  "severity": "Gravité",
                  "kind": "Action", "valid": "UAI"}
FILTER_VALUES = {
    "status": CONVENTION_STATUSES,
    "due": {"15": "dans les 15 jours", "past": "dépassée (en retard)"},
    "open": {"1": "ouvertes", "0": "résolues"},
    "severity": SEVERITIES,
    "kind": ACTION_KINDS,
    "valid": {"1": "valide", "0": "invalide"},
}
CODE_VALUES = {  # the columns whose values are codes with a French word
    "state": DOSSIER_STATES, "status": CONVENTION_STATUSES, "severity": SEVERITIES, "kind": ACTION_KINDS,
    "proof": PROOFS,
}


def word(value: Any, table: dict[str, str]) -> str:
    return table.get(value, value) if value is not None else ""


def when(value: str | None, with_time: bool = True) -> str:
    """An ISO date or instant as French local time: ``04/12/2026 14:05`` (Europe/Paris)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    if len(value) <= 10:
        return moment.strftime("%d/%m/%Y")
    if moment.tzinfo is not None:
        moment = moment.astimezone(PARIS)
    return moment.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def day(value: str | None) -> str:
    return when(value, with_time=False)


def number(value: Any) -> str:
    """Thousands separated by a narrow no-break space, as in French."""
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".replace(",", "\u202f").replace(".", ",")
    return f"{int(value):,}".replace(",", "\u202f")


def size(value: int | None) -> str:
    if value is None:
        return ""
    for unit in ("o", "Ko", "Mo", "Go"):
        if value < 1024 or unit == "Go":
            return f"{value:.0f} {unit}" if unit == "o" else f"{value:.1f} {unit}".replace(".", ",")
        value /= 1024
    return ""


FILTERS = {"when": when, "day": day, "number": number, "size": size,
           "state": lambda v: word(v, DOSSIER_STATES), "convention": lambda v: word(v, CONVENTION_STATUSES),
           "action_state": lambda v: word(v, ACTION_STATES), "action_kind": lambda v: word(v, ACTION_KINDS),
           "severity": lambda v: word(v, SEVERITIES), "run_status": lambda v: word(v, RUN_STATUSES),
           "sender": lambda v: word(v, SENDERS)}


def cell(list_name: str, column: str, value: Any) -> str:
    """A list cell's French word for a code column (the ``state`` of an action is not a dossier's)."""
    if column == "state" and list_name == "actions":
        return word(value, ACTION_STATES)
    if column in CODE_VALUES:
        return word(value, CODE_VALUES[column])
    return "" if value is None else str(value)


def filter_value(list_name: str, name: str, value: str) -> str:
    if name == "state" and list_name == "actions":
        return word(value, ACTION_STATES)
    if name == "state":
        return word(value, DOSSIER_STATES)
    return FILTER_VALUES.get(name, {}).get(value, value)
