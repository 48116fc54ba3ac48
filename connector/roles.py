"""Role and profile names and the fees per school: the words ``connector.config`` validates a config
against, beside it at the ground floor (it imports nothing); ``connector.forms`` reads them too."""

from __future__ import annotations

# Public champs (the usager's form).
PUBLIC_ROLES = (
    "siret", "collectivite", "departement", "commune",
    "signataire_nom", "signataire_prenom", "signataire_qualite", "signataire_qualite_autre",
    "telephone", "email",
    "ecoles", "ecole_commune", "ecole_choix", "ecole_uai", "ecole_nom",
    "nombre_ecoles", "cout",
    "referent1_nom", "referent1_email", "referent2_nom", "referent2_email",
    "engagements", "signature", "pieces", "commentaires",
)
# Private champs (the académie's annotations).
PRIVATE_ROLES = ("convention_recue", "date_reception", "statut", "relance", "aaf_envoye", "aaf_date")
ROLES = PUBLIC_ROLES + PRIVATE_ROLES
# Roles that map to several champs (every commitment checkbox, every mandatory upload).
SEVERAL = frozenset({"engagements", "pieces"})
# Columns of the schools' repetition block.
SCHOOL_COLUMNS = ("ecole_commune", "ecole_choix", "ecole_uai", "ecole_nom")

PROFILE_NAMES = ("occitanie", "poitiers", "creteil")
NO_PROFILE = "none"  # not an ENT-École form: mirrored, no form read, no anomaly, no convention, no action
PROFILE_CHOICES = ("auto", *PROFILE_NAMES, NO_PROFILE)

# The fees per school and per year (euros TTC) the Occitanie conventions have known: what a cost
# computed with another year's fee looks like (``cout_incoherent`` says so). The fee a démarche charges
# is read from its form or its config, never assumed from this table.
FEES_BY_YEAR = {"2021-2022": 50, "2022-2025": 45, "2026-2027": 41}
