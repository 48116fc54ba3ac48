"""The French messages the connector posts for the instructeurs (overridable per démarche in the
config, ``[demarches.deadline] reminder_template`` etc.).

Placeholders: ``{collectivite}`` (the demandeur), ``{dossier}`` (number), ``{date_limite}`` (the
deadline in French: "30 septembre 2026"), ``{nombre_ecoles}``, ``{jours}`` (days left, reminders).
A template with an unknown placeholder is a config error, found when the config is read: this module
sits beside ``connector.config`` (it imports nothing of the connector); ``connector.followup`` renders them.
"""

from __future__ import annotations

import string
from typing import Any

PLACEHOLDERS = ("collectivite", "dossier", "date_limite", "nombre_ecoles", "jours")

REMINDER = (
    "Bonjour,\n\n"
    "Sauf erreur de notre part, nous n'avons pas encore reçu la convention signée de {collectivite} "
    "(dossier nº {dossier}, {nombre_ecoles} école(s)).\n\n"
    "Pour que l'accès à l'ENT-École de vos écoles soit maintenu, merci de nous la retourner signée par le "
    "représentant de la collectivité, scannée au format PDF, en pièce jointe d'un message dans cette "
    "messagerie, au plus tard le {date_limite} (dans {jours} jour(s)).\n\n"
    "Si vous nous l'avez déjà envoyée, merci de ne pas tenir compte de ce message.\n\n"
    "Bien cordialement,\nLa DRANE"
)

CLOSURE = (
    "Bonjour,\n\n"
    "Nous n'avons pas reçu la convention signée de {collectivite} (dossier nº {dossier}) dans le délai de "
    "deux mois, qui expirait le {date_limite}.\n\n"
    "Comme l'indiquait la notice de la démarche, la demande d'adhésion est donc classée sans suite et "
    "l'accès à l'ENT-École est fermé pour vos {nombre_ecoles} école(s). Pour le rétablir, il vous faudra "
    "déposer une nouvelle demande.\n\n"
    "Bien cordialement,\nLa DRANE"
)

MOTIVATION = (
    "Convention signée non reçue dans le délai de deux mois (date limite : {date_limite}) : demande "
    "classée sans suite, accès à l'ENT-École fermé."
)

RENEWAL_REMINDER = (
    "Bonjour,\n\n"
    "L'adhésion à l'ENT-École est annuelle : toutes les communes doivent renouveler leur demande pour la "
    "nouvelle année scolaire. Sauf erreur de notre part, {collectivite} n'a pas encore déposé la demande "
    "de cette année.\n\n"
    "Vos écoles conventionnées l'an dernier ({nombre_ecoles} école(s)) gardent leur accès à l'ENT jusqu'au "
    "{date_limite} (dans {jours} jour(s)) : pour le conserver au-delà, merci de remplir le formulaire en ligne "
    "de la nouvelle campagne avant cette date, puis de nous renvoyer la convention signée dans un délai de "
    "deux mois.\n\n"
    "Si vous l'avez déjà fait, ou si vos écoles sont désormais gérées par une autre collectivité, merci de ne "
    "pas tenir compte de ce message.\n\n"
    "Bien cordialement,\nLa DRANE"
)

DEFAULTS = {"reminder_template": REMINDER, "closure_template": CLOSURE, "motivation_template": MOTIVATION}


def problems(template: str) -> list[str]:
    """What is wrong with a template: unknown placeholders, unbalanced braces."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return [f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"]
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        return [f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"]
    return []


def render(template: str, **values: Any) -> str:
    return template.format(**{p: values.get(p, "") for p in PLACEHOLDERS}).strip()
