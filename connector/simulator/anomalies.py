"""The facts the seeder plants, by name: each dossier lists its own in ``Dossier.anomalies``.

Rates are Bernoulli draws per dossier of the population named, except the fates (brouillons and
hidden dossiers), which are exact rounded shares of ``seed_world``'s ``dossiers``.

=================================  ======  ====================================================
name                               rate    population and meaning
=================================  ======  ====================================================
count_mismatch                     8 %     Occitanie: "Nombre d'écoles" ≠ schools selected
cost_mismatch                      5 %     Occitanie: cost ≠ count × 41 €
bad_uai                            ~3 %    of school entries: wrong check letter (catalogue
                                           typos, Créteil typing); the dossier gets the name
bad_siret                          2 %     any: demandeur SIRET fails Luhn
demandeur_incomplete               ~2 %    any: PersonneMoraleIncomplete (half the bad SIRETs,
                                           plus 1 % with a valid SIRET: degraded API Entreprise)
missing_upload                     5 %     Créteil: a mandatory upload empty, or infected (DS
                                           drops infected files from the API)
signature_unchecked                4 %     Poitiers: the signature box unticked
duplicate_school                   3 %     Poitiers, Créteil: a school entered twice
reopened                           3 %     Occitanie: reopened for a correction after acceptance
signatory_format                   ~7 %    Occitanie, Poitiers: signatory not written "Prénom NOM"
                                           (the last name not in capitals)
siret_twice                        ~2 %    any live dossier: its SIRET has another live dossier in
                                           the démarche (``crossings``: planted and by chance)
school_twice                       ~2 %    any live dossier: lists a school another collectivité's
                                           live dossier lists (``crossings``)
usager_deleted                     ~0.5 %  terminated: ``connection_usager = "deleted"``
brouillon                          5 %     any: never deposited, never on the API
hidden_by_administration           1 %     terminated, in the trash (last 13 days)
hidden_by_user_en_construction     1 %     Créteil en construction, in the trash (last 13 days:
                                           DS purges it two weeks after)
hidden_by_user_terminated          0.5 %   terminated, still listed (dateSuppressionParUsager)
hidden_by_expiry                   1 %     Créteil, 12 months after processing: the limbo
(purged, in world.deleted)         3 %     in addition to ``dossiers``; reasons user_request
                                           (backdated), instructeur_request, manager_request,
                                           user_removed, expired
=================================  ======  ====================================================

Occitanie convention outcomes as of the clock start (markers, same field): ``convention_on_time``,
``convention_late`` (first signed PDF after dépôt + 2 months), ``convention_missing``, plus
``reply_non_pdf`` / ``reply_image`` / ``reply_text`` when such replies exist and
``pdf_scan_pending`` when a signed PDF's virus scan is still pending: DS scans within minutes, so
only files sent in the last half hour are, among them :data:`FRESH_PDF_REPLIES` conventions sent by
usagers who owed one (an exact count per world). Créteil UAIs are sometimes
typed with a lower-case letter or a trailing space: noise, valid once normalised, not an anomaly.
"""

from __future__ import annotations

from connector.simulator import referentiel as ref


COUNT_MISMATCH = "count_mismatch"
COST_MISMATCH = "cost_mismatch"
BAD_UAI = "bad_uai"
BAD_SIRET = "bad_siret"
DEMANDEUR_INCOMPLETE = "demandeur_incomplete"
MISSING_UPLOAD = "missing_upload"
SIGNATURE_UNCHECKED = "signature_unchecked"
DUPLICATE_SCHOOL = "duplicate_school"
REOPENED = "reopened"
USAGER_DELETED = "usager_deleted"
BROUILLON = "brouillon"
HIDDEN_BY_ADMINISTRATION = "hidden_by_administration"
HIDDEN_BY_USER_EN_CONSTRUCTION = "hidden_by_user_en_construction"
HIDDEN_BY_USER_TERMINATED = "hidden_by_user_terminated"
HIDDEN_BY_EXPIRY = "hidden_by_expiry"
CONVENTION_ON_TIME = "convention_on_time"
CONVENTION_LATE = "convention_late"
CONVENTION_MISSING = "convention_missing"
REPLY_NON_PDF = "reply_non_pdf"
REPLY_IMAGE = "reply_image"
REPLY_TEXT = "reply_text"
PDF_SCAN_PENDING = "pdf_scan_pending"
SIGNATORY_FORMAT = "signatory_format"
SIRET_TWICE = "siret_twice"
SCHOOL_TWICE = "school_twice"
SIRET_TWICE_RATE = 0.015
SCHOOL_TWICE_RATE = 0.02

RATES = {
    COUNT_MISMATCH: 0.08, COST_MISMATCH: 0.05, BAD_UAI: ref.BAD_UAI_RATE, BAD_SIRET: 0.02,
    MISSING_UPLOAD: 0.05, SIGNATURE_UNCHECKED: 0.04, DUPLICATE_SCHOOL: 0.03, REOPENED: 0.03,
}

# Exact shares of ``dossiers`` (purged ones come in addition).
FATES = {
    BROUILLON: 0.05, HIDDEN_BY_ADMINISTRATION: 0.01, HIDDEN_BY_USER_EN_CONSTRUCTION: 0.01,
    HIDDEN_BY_EXPIRY: 0.01, HIDDEN_BY_USER_TERMINATED: 0.005,
}

PURGED_RATE = 0.03

FRESH_PDF_REPLIES = 2

PURGE_REASONS = {"user_request": 30, "instructeur_request": 25, "expired": 20, "user_removed": 10,
                 "manager_request": 15}
