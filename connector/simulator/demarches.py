"""The three ENT-École démarches: numbers, titles, groupes instructeurs, instructeurs, labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.simulator import forms, referentiel as ref
from connector.simulator.dates import DAY
from connector.simulator.forms import Form
from connector.simulator.state import Demarche, GroupeInstructeur, Instructeur, Label, Revision, World


OCCITANIE = 131274
POITIERS = 128905
CRETEIL = 112640
DEMARCHES = (OCCITANIE, POITIERS, CRETEIL)


@dataclass(frozen=True)
class Spec:
    number: int
    kind: str
    title: str
    description: str
    service: str
    organisme: str
    departements: tuple[str, ...]
    declarative: str | None
    fee_cents: int | None
    revision_id: int
    created_days_before: int
    groupes: tuple[tuple[int, str, tuple[str, ...], bool], ...]  # id, label, départements, closed
    instructeurs: tuple[tuple[int, int, str], ...]  # id, groupe id, e-mail
    tech: tuple[int, str]  # the connector's account, in every groupe
    labels: tuple[tuple[int, str, str], ...]


SPECS = {
    OCCITANIE: Spec(
        OCCITANIE, "occitanie", "ENT-École : demande d'adhésion par conventionnement 2026-2027",
        "Ce formulaire s'adresse aux collectivités. Il permet de réaliser une demande d'adhésion à "
        "l'ENT-École pour l'année scolaire 2026-2027, après concertation avec les équipes pédagogiques "
        "des écoles. Un seul formulaire doit être complété par collectivité.",
        "Direction de région académique du numérique pour l'éducation (DRANE Occitanie)",
        "Région académique Occitanie",
        ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"), "accepte", 4100,
        612044, 190,
        ((70412, "Académie de Montpellier", ("11", "30", "34", "48", "66"), False),
         (70413, "Académie de Toulouse", ("09", "12", "31", "32", "46", "65", "81", "82"), False),
         (70414, "Campagne 2025-2026", (), True)),
        ((90101, 70412, "sophie.castel@ac-montpellier.fr"), (90102, 70412, "julien.pujol@ac-montpellier.fr"),
         (90103, 70413, "nathalie.barthe@ac-toulouse.fr"), (90104, 70413, "eric.rouquette@ac-toulouse.fr"),
         (90105, 70413, "agnes.serres@ac-toulouse.fr"), (90106, 70414, "alain.bosc@ac-montpellier.fr")),
        (90100, "ent-ecole-api@ac-toulouse.fr"),
        ((8101, "Convention reçue", "green_bourgeon"), (8102, "Relancé", "yellow_tournesol"),
         (8103, "Hors délai", "brown_cafe_creme"), (8104, "À vérifier", "pink_macaron")),
    ),
    POITIERS: Spec(
        POITIERS, "poitiers",
        "Conventionnement ENT école et mise en place de l'accès aux ressources numériques (GAR) par "
        "l'ENT : validation des conventions",
        "La collectivité s'identifie grâce à son SIRET, désigne le signataire de la convention, choisit "
        "les écoles ENT de son périmètre, et désigne un référent (facultatif).",
        "Rectorat de l'académie de Poitiers - Délégation régionale académique au numérique éducatif",
        "Rectorat de l'académie de Poitiers",
        ("16", "17", "79", "86"), "accepte", None, 598310, 200,
        ((70501, "Charente et Charente-Maritime", ("16", "17"), False),
         (70502, "Vienne et Deux-Sèvres", ("79", "86"), False),
         (70503, "défaut", (), True)),
        ((90201, 70501, "helene.fabre@ac-poitiers.fr"), (90202, 70501, "pascal.morin@ac-poitiers.fr"),
         (90203, 70502, "celine.guerin@ac-poitiers.fr"), (90204, 70502, "francois.perrin@ac-poitiers.fr")),
        (90200, "ent-ecole-api@ac-poitiers.fr"),
        ((8201, "Transmis AAF", "green_menthe"), (8202, "Doublon", "beige_gris_galet")),
    ),
    CRETEIL: Spec(
        CRETEIL, "creteil", "Finalisation de commande ENT 1er degré pour l'académie de Créteil",
        "Vous avez adhéré au groupement de commandes de la région académique Île-de-France. Après avoir "
        "passé commande auprès du titulaire du marché vous devez informer l'Académie de Créteil pour que "
        "celle-ci puisse mettre à disposition du titulaire les annuaires de vos écoles.",
        "Région académique Île-de-France - DRANE, site de Créteil",
        "Rectorat de l'académie de Créteil",
        ("77", "93", "94"), None, None, 541877, 520,
        ((70601, "Seine-et-Marne (77)", ("77",), False),
         (70602, "Seine-Saint-Denis (93) et Val-de-Marne (94)", ("93", "94"), False),
         (70603, "Campagne 2025 (clôturée)", (), True)),
        ((90301, 70601, "christophe.vidal@ac-creteil.fr"), (90302, 70601, "martine.leroy@ac-creteil.fr"),
         (90303, 70602, "stephane.diallo@ac-creteil.fr"), (90304, 70602, "aurelie.benali@ac-creteil.fr"),
         (90305, 70603, "gerard.moreau@ac-creteil.fr")),
        (90300, "ent-ecole-api@ac-creteil.fr"),
        ((8301, "Pièces manquantes", "pink_macaron"), (8302, "AAF livré", "green_emeraude")),
    ),
}

TECH_ACCOUNTS = {n: s.tech[1] for n, s in SPECS.items()}


def form_for(kind: str) -> Form:
    if kind == "occitanie":
        return forms.occitanie(ref.school_options(SPECS[OCCITANIE].departements))
    if kind == "poitiers":
        return forms.poitiers(ref.school_options(SPECS[POITIERS].departements))
    return forms.creteil()


def build_demarche(world: World, spec: Spec, form: Form, start: datetime) -> Demarche:
    created = (start - spec.created_days_before * DAY).replace(hour=10, minute=12, second=7, microsecond=413208)
    published = created + timedelta(days=9, hours=5, minutes=3, seconds=2, microseconds=118045)
    revision = Revision(spec.revision_id, created, published, form.champs, form.annotations)
    groupes = []
    for gid, label, _, closed in spec.groupes:
        members = [spec.tech[0]] + [i for i, g, _ in spec.instructeurs if g == gid]
        groupes.append(GroupeInstructeur(gid, gid, label, closed, members))
    world.instructeurs[spec.tech[0]] = Instructeur(*spec.tech)
    for iid, _, email in spec.instructeurs:
        world.instructeurs[iid] = Instructeur(iid, email)
    return Demarche(
        number=spec.number, title=spec.title, description=spec.description, state="publiee",
        declarative=spec.declarative, created_at=created, published_at=published, revisions=[revision],
        active_revision_id=spec.revision_id, groupes=groupes,
        labels=[Label(*lb) for lb in spec.labels], kind=spec.kind, fee_cents=spec.fee_cents,
        service=(spec.service, spec.organisme),
    )


def form_of(dem: Demarche) -> Form:
    """The world's active descriptors of ``dem``, keyed like ``forms`` keys them."""
    revision = next(r for r in dem.revisions if r.id == dem.active_revision_id)
    by_id = {}
    for d in revision.champ_descriptors + revision.annotation_descriptors:
        by_id[d.stable_id] = d
        by_id.update((c.stable_id, c) for c in d.children)
    template = form_for(dem.kind)
    keys = {k: by_id[d.stable_id] for k, d in template.keys.items() if d.stable_id in by_id}
    return Form(revision.champ_descriptors, revision.annotation_descriptors, keys)
