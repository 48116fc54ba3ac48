"""Démarches beyond the three ENT-École ones, added to a seeded world before it is served.

- :func:`add_ordinary_forms`: forms that are no ENT-École forms, built from DS's champ types with
  everyday labels (a subsidy request, an environmental permit, a social-services complaint, a school
  canteen registration, a form with no champ at all), with dossiers an ordinary usager files: a SIRET
  from Tahiti that fails the Luhn key, a farm's name where a person's would be, amounts, commitments...
- :func:`add_academie_form`: an ENT-École form run by another académie or for another campaign (its own
  service, départements, fee and school year), with correct dossiers only: every one deserves no
  anomaly. E.g. the Poitiers form cloned by the académie de Versailles, or Occitanie's 2024-2025
  campaign at 45 € per school.

Both keep DS's shapes: the démarche's ``service`` (nom, organisme) says who runs it, and nothing else
tells the académie. The world's tokens that see every built-in démarche see the new ones too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.simulator import forms, ident, referentiel as ref, renewal
from connector.simulator.dates import DAY, between
from connector.simulator.demarches import Spec, build_demarche
from connector.simulator.filling import _demandeur, build_champs, empty_annotations
from connector.simulator.forms import Form
from connector.simulator.histories import write_usager_message
from connector.simulator.seed import make_dossier
from connector.simulator.state import (
    ChampDescriptor as D, Demarche, Dossier, GroupeInstructeur, Instructeur, Revision, Traitement, World,
    make_file,
)

SUBVENTION, ICPE, RECLAMATION, CANTINE, SANS_CHAMP = 150_001, 150_002, 150_003, 150_004, 150_005
ORDINARY = (SUBVENTION, ICPE, RECLAMATION, CANTINE, SANS_CHAMP)
VERSAILLES = 178_205
CAMPAIGN_2024 = 98_764


@dataclass(frozen=True)
class _Ordinary:
    number: int
    title: str
    service: tuple[str, str]
    champs: tuple[D, ...]
    annotations: tuple[D, ...] = ()


_QUALITES = ("Président", "Trésorier", "Gérant", "Exploitant agricole")
_OBJETS = ("Versement d'une prestation", "Accueil au guichet", "Délai de traitement", "Autre")


def _ordinary_forms() -> tuple[_Ordinary, ...]:
    return (
        _Ordinary(SUBVENTION, "Demande de subvention aux associations 2026",
                  ("Service de la vie associative", "Mairie de Saint-Gaudens"), (
            D(9001, "HeaderSectionChamp", "Identification de l'association"),
            D(9002, "SiretChamp", "Numéro SIRET de l'association", required=True),
            D(9003, "TextChamp", "Nom de l'association", required=True),
            D(9004, "TextChamp", "Nom et prénom du représentant légal", required=True),
            D(9005, "DropDownListChamp", "Qualité du représentant", options=list(_QUALITES)),
            D(9006, "EmailChamp", "Adresse électronique de contact", required=True),
            D(9007, "PhoneChamp", "Téléphone", required=True),
            D(9008, "CommuneChamp", "Commune du siège", required=True),
            D(9009, "HeaderSectionChamp", "Le projet"),
            D(9010, "TextareaChamp", "Description du projet", required=True),
            D(9011, "IntegerNumberChamp", "Nombre de bénéficiaires", required=True),
            D(9012, "DecimalNumberChamp", "Montant de la subvention demandée (€)", required=True),
            D(9013, "DropDownListChamp", "Domaine", options=["Sport", "Culture", "Jeunesse", "Solidarité"]),
            D(9014, "PieceJustificativeChamp", "Budget prévisionnel", required=True),
            D(9015, "CheckboxChamp", "J'atteste sur l'honneur l'exactitude des informations", required=True),
            D(9016, "CheckboxChamp", "Je certifie que l'association est à jour de ses obligations", required=True),
        ), (
            D(9051, "DateChamp", "Date de réception du dossier complet"),
            D(9052, "CheckboxChamp", "Convention reçue"),
            D(9053, "DropDownListChamp", "Statut", options=["À instruire", "Accordée", "Refusée"]),
        )),
        _Ordinary(ICPE, "Déclaration d'une installation classée pour la protection de l'environnement",
                  ("Unité départementale de la DREAL", "Préfecture de la Haute-Garonne"), (
            D(9101, "HeaderSectionChamp", "L'exploitant"),
            D(9102, "SiretChamp", "SIRET de l'exploitant", required=True),
            D(9103, "TextChamp", "Raison sociale", required=True),
            D(9104, "TextChamp", "Nom du signataire", required=True),
            D(9105, "TextChamp", "Qualité du signataire", required=True),
            D(9106, "HeaderSectionChamp", "L'installation"),
            D(9107, "DepartementChamp", "Département", required=True),
            D(9108, "CommuneChamp", "Commune d'implantation", required=True),
            D(9109, "TextChamp", "Rubrique de la nomenclature", required=True),
            D(9110, "DecimalNumberChamp", "Capacité de production (tonnes par an)"),
            D(9111, "CarteChamp", "Emprise du site"),
            D(9112, "PieceJustificativeChamp", "Plan de situation", required=True),
            D(9113, "PieceJustificativeChamp", "Étude d'impact", required=True),
            D(9114, "CheckboxChamp", "Je certifie l'exactitude des renseignements", required=True),
        )),
        _Ordinary(RECLAMATION, "Réclamation auprès du service social départemental",
                  ("Direction des solidarités", "Conseil départemental de l'Aude"), (
            D(9201, "CiviliteChamp", "Civilité", required=True),
            D(9202, "TextChamp", "Nom", required=True),
            D(9203, "TextChamp", "Prénom", required=True),
            D(9204, "DateChamp", "Date de naissance", required=True),
            D(9205, "EmailChamp", "Courriel", required=True),
            D(9206, "PhoneChamp", "Téléphone"),
            D(9207, "DropDownListChamp", "Objet de la réclamation", required=True, options=list(_OBJETS)),
            D(9208, "TextareaChamp", "Exposé des faits", required=True),
            D(9209, "YesNoChamp", "Avez-vous déjà contacté le service ?", required=True),
            D(9210, "PieceJustificativeChamp", "Pièces justificatives"),
            D(9211, "CheckboxChamp", "J'accepte que mes données soient traitées pour instruire ma demande",
              required=True),
        )),
        _Ordinary(CANTINE, "Inscription à la restauration scolaire et à l'accueil périscolaire",
                  ("Service enfance et éducation", "Mairie de Colomiers"), (
            D(9301, "TextChamp", "Nom et prénom de l'enfant", required=True),
            D(9302, "DropDownListChamp", "École fréquentée", required=True,
              options=["École maternelle Les Tilleuls", "École élémentaire Jean Moulin", "École primaire du Centre"]),
            D(9303, "DropDownListChamp", "Classe", options=["PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2"]),
            D(9304, "RepetitionChamp", "Jours de présence", children=[
                D(9305, "DropDownListChamp", "Jour", options=["Lundi", "Mardi", "Jeudi", "Vendredi"]),
                D(9306, "CheckboxChamp", "Repas"),
            ]),
            D(9307, "IntegerNumberChamp", "Nombre d'enfants du foyer inscrits"),
            D(9308, "DecimalNumberChamp", "Montant de la participation mensuelle"),
            D(9309, "CheckboxChamp", "Je m'engage à régler les factures de restauration", required=True),
        )),
        _Ordinary(SANS_CHAMP, "Demande de rendez-vous (identité seule)",
                  ("Accueil", "Mairie de Blagnac"), ()),
    )


_TEXTS = {
    9003: ("Les Amis du Vieux Moulin", "Football Club Saint-Gaudinois", "Lire et faire lire 31"),
    9004: ("GAEC des Trois Chênes", "jean-pierre martin", "Mme Sylvie Durand", "Paul BERNARD"),
    9010: ("Organisation d'un festival de musique en plein air.", "Achat de matériel sportif pour les jeunes."),
    9103: ("SARL Granulats du Comminges", "EARL de la Garonne", "Méthanisation du Volvestre SAS"),
    9104: ("GAEC des Trois Chênes", "marc dupuy", "Anne-Marie LEBRUN"),
    9105: ("Gérant", "Exploitant", "Président"),
    9109: ("2510-1", "2781-1", "2101-2"),
    9202: ("Garcia", "Martin", "N'Diaye"), 9203: ("Lucie", "Ahmed", "Jean"),
    9208: ("Mon dossier d'aide est sans réponse depuis trois mois.", "Le guichet était fermé aux horaires affichés."),
    9301: ("Emma Petit", "Noah Roux", "Léa Fontaine"),
}


def _value(desc: D, rng: random.Random, world: World, at: datetime, commune: ref.Commune) -> object:
    kind = desc.type
    if desc.stable_id in _TEXTS:
        return rng.choice(_TEXTS[desc.stable_id])
    if kind == "EmailChamp":
        return f"contact{rng.randint(1, 999)}@exemple.fr"
    if kind == "PhoneChamp":
        return f"06 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
    if kind == "SiretChamp":  # now and then a Tahiti business number, which no Luhn key holds
        siret = commune.siret if rng.random() < 0.7 else ident.with_bad_luhn(commune.siret, rng)
        return _demandeur(commune, siret, False)
    if kind in ("DropDownListChamp",):
        return rng.choice(desc.options or ["—"])
    if kind == "IntegerNumberChamp":
        return rng.randint(1, 300)
    if kind == "DecimalNumberChamp":
        return round(rng.uniform(50, 25_000), 2)
    if kind in ("CheckboxChamp", "YesNoChamp"):
        return rng.random() < 0.9
    if kind == "DateChamp":
        return (at - rng.uniform(20, 20_000) * DAY).date().isoformat()
    if kind == "CiviliteChamp":
        return rng.choice(("M.", "Mme"))
    if kind == "CommuneChamp":
        return {"commune": {"name": commune.name, "code": commune.insee, "postalCode": commune.postal_code},
                "departement": {"name": ref.DEPARTEMENTS[commune.departement], "code": commune.departement}}
    if kind == "DepartementChamp":
        return {"name": ref.DEPARTEMENTS[commune.departement], "code": commune.departement}
    if kind == "PieceJustificativeChamp":
        return [make_file(world, f"{desc.label[:20].strip().lower().replace(' ', '-')}.pdf", "application/pdf",
                          rng.randint(2_000, 9_000), at)]
    if kind == "RepetitionChamp":
        return [{c.stable_id: _value(c, rng, world, at, commune) for c in desc.children}
                for _ in range(rng.randint(1, 4))]
    if kind == "CarteChamp":
        return None
    return f"{desc.label} : réponse {rng.randint(1, 99)}"


def _ordinary_dossier(world: World, dem: Demarche, form: _Ordinary, rng: random.Random, at: datetime,
                      commune: ref.Commune, agent: str) -> Dossier:
    created = at - timedelta(minutes=rng.uniform(5, 40))
    values = {d.stable_id: _value(d, rng, world, at, commune) for d in form.champs
              if d.type not in forms.SELF_FILLED}
    person = {"__typename": "PersonnePhysique", "civilite": rng.choice(("M", "Mme")), "nom": "DURAND",
              "prenom": "Claire", "dateDeNaissance": None, "email": None}
    d = Dossier(number=world.new_id("Dossier"), demarche_number=dem.number, state="en_construction",
                created_at=created, updated_at=at, revision_id=dem.active_revision_id,
                groupe_instructeur_number=dem.groupes[0].number, usager_email=f"usager{rng.randint(1, 9999)}@exemple.fr",
                demandeur=person)
    d.champs = build_champs(list(form.champs), values, created, at, rng, {})
    d.annotations = empty_annotations(list(form.annotations), created)
    d.champs_updated_at, d.annotations_updated_at = at, created
    d.depose_at = d.en_construction_at = at
    d.traitements.append(Traitement(world.new_id("Traitement"), "en_construction", "depose", at))
    fate = rng.random()
    if fate < 0.5:
        later = at + timedelta(hours=rng.uniform(1, 48))
        d.state, d.en_instruction_at, d.updated_at = "en_instruction", later, later
        d.traitements.append(Traitement(world.new_id("Traitement"), "en_instruction", "passe_en_instruction",
                                        later, agent))
        if fate < 0.25:
            done = later + timedelta(days=rng.uniform(1, 10))
            d.state, d.processed_at, d.updated_at = "accepte", done, done
            d.traitements.append(Traitement(world.new_id("Traitement"), "accepte", "accepte", done, agent))
    world.dossiers[d.number] = d
    return d


def _share(world: World, number: int, with_: int | None = None) -> None:
    """The world's tokens that see every démarche (or ``with_``) see ``number`` too."""
    for token in world.tokens.values():
        if token.demarches is not None and (with_ is None or with_ in token.demarches):
            token.demarches = token.demarches | {number}


def add_ordinary_forms(world: World, dossiers_each: int = 12, seed: int = 7) -> tuple[int, ...]:
    """Add the ordinary forms (:data:`ORDINARY`) with ``dossiers_each`` dossiers each, deposited in the
    two months before the clock's start (so a two-month deadline, wrongly applied, would fall due)."""
    rng = random.Random(f"ordinary-{seed}")
    start = world.clock.start
    communes = [c for c in ref.communes("31") if c.schools]
    for i, form in enumerate(_ordinary_forms()):
        created = start - 200 * DAY
        revision = Revision(form.number + 10, created, created + DAY, list(form.champs), list(form.annotations))
        gid, iid = form.number * 10 + 1, form.number * 10 + 2
        agent = f"instructeur.{form.number}@exemple.gouv.fr"
        world.instructeurs[iid] = Instructeur(iid, agent)
        dem = Demarche(number=form.number, title=form.title, description=f"{form.title}.", state="publiee",
                       declarative=None, created_at=created, published_at=created + DAY, revisions=[revision],
                       active_revision_id=revision.id, groupes=[GroupeInstructeur(gid, gid, "défaut", False, [iid])],
                       service=form.service)
        world.demarches[form.number] = dem
        _share(world, form.number)
        for k in range(dossiers_each):
            at = start - rng.uniform(61, 120) * DAY if k % 2 else start - rng.uniform(1, 60) * DAY
            _ordinary_dossier(world, dem, form, rng, at, communes[(i * 37 + k) % len(communes)], agent)
    return ORDINARY


def add_academie_form(world: World, number: int, *, title: str, service: str, organisme: str,
                      departements: tuple[str, ...], kind: str = "poitiers", fee: int | None = None,
                      year: str = "2026-2027", dossiers: int = 100, seed: int = 11) -> Demarche:
    """An ENT-École form (``kind``: Occitanie's or Poitiers' process) run by ``service``/``organisme``
    for ``departements``, with ``dossiers`` correct dossiers from distinct collectivités (none
    deserves an anomaly). ``fee`` (euros per school, Occitanie's process): the amounts its cost
    drop-down offers and that its dossiers declare."""
    if kind not in ("occitanie", "poitiers"):
        raise ValueError(f"kind must be occitanie or poitiers, not {kind!r}")
    options = ref.school_options(departements)
    form: Form = forms.occitanie(options, fee or forms.OCCITANIE_FEE_EUROS, year) if kind == "occitanie" \
        else forms.poitiers(options)
    base = number * 10
    spec = Spec(number, kind, title, f"Convention ENT-École {year}.", service, organisme, departements, "accepte",
                (fee or forms.OCCITANIE_FEE_EUROS) * 100 if kind == "occitanie" else None, base + 7, 190,
                ((base + 1, "Tous départements", departements, False),),
                ((base + 2, base + 1, f"instructeur.{number}@exemple.gouv.fr"),),
                (base + 3, f"ent-ecole-api.{number}@exemple.gouv.fr"), ())
    dem = build_demarche(world, spec, form, world.clock.start)
    world.demarches[number] = dem
    _share(world, number)
    rng = random.Random(f"academie-{number}-{seed}")
    pool = [c for d in departements for c in ref.communes(d)
            if c.schools and all(ident.uai_is_valid(s.uai) for s in c.schools)]
    rng.shuffle(pool)
    if dossiers > len(pool):
        raise ValueError(f"{dossiers} dossiers but only {len(pool)} collectivités with schools in {departements}")
    for commune in pool[:dossiers]:
        when = world.clock.start - rng.uniform(0.1, 60) * DAY
        make_dossier(world, number, rng, when, rng.choice(("en_construction", "accepte")), spec=spec,
                     commune=commune)
    return dem


def add_versailles(world: World, dossiers: int = 150) -> Demarche:
    """Poitiers' convention form cloned by the académie de Versailles (no built-in profile): its service
    is what says whose it is; its dossiers pick schools of the Yvelines, Essonne, Hauts-de-Seine, Val-d'Oise."""
    return add_academie_form(
        world, VERSAILLES, title="Conventionnement ENT école 2026-2027 : validation des conventions",
        service="Délégation régionale académique au numérique éducatif (DRANE), site de Versailles",
        organisme="Rectorat de l'académie de Versailles", departements=("78", "91", "92", "95"),
        kind="poitiers", dossiers=dossiers)


def add_campaign_2024(world: World, dossiers: int = 150) -> Demarche:
    """Occitanie's adhesion form for the 2024-2025 campaign, at 45 € per school (its cost drop-down
    offers 45 €, 90 € ... 3 600 €)."""
    return add_academie_form(
        world, CAMPAIGN_2024, title="ENT-École : demande d'adhésion par conventionnement 2024-2025",
        service="Direction de région académique du numérique pour l'éducation (DRANE Occitanie)",
        organisme="Région académique Occitanie",
        departements=("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"),
        kind="occitanie", fee=45, year="2024-2025", dossiers=dossiers)


def add_messagerie_files(world: World, per_dossier: float, seed: int = 13, mean_kb: int | None = None) -> int:
    """Usager messages with one attachment each (a signed PDF, a document, a photo), on deposited
    dossiers drawn at random, until the messagerie holds about ``per_dossier`` attachments per
    dossier of the world (those already there count). A large académie's messagerie: conventions,
    scans and photos sent back and forth (``mean_kb``: their mean size, from half to one and a half of
    it; default the seed's small files). Returns the attachments added."""
    rng = random.Random(f"messagerie-{seed}")
    have = sum(len(m.attachments) for d in world.dossiers.values() for m in d.messages)
    deposited = sorted(n for n, d in world.dossiers.items() if d.depose_at is not None)
    want = round(per_dossier * len(world.dossiers)) - have
    now = world.clock.start
    for _ in range(max(0, want) if deposited else 0):
        d = world.dossiers[rng.choice(deposited)]
        at = between(rng, d.depose_at, now - timedelta(hours=1)) if d.depose_at < now - timedelta(hours=1) \
            else d.depose_at
        size = None if mean_kb is None else int(mean_kb * 1024 * rng.uniform(0.5, 1.5))
        write_usager_message(world, d, rng.choice(("signed_pdf", "non_pdf", "image")), at, rng, size=size)
        d.messages.sort(key=lambda m: m.created_at)
        d.updated_at = max(d.updated_at, at)
    return max(0, want) if deposited else 0


# ``ds-connector simulate --with NAME``: the démarches each name adds to the seeded world.
EXTRAS = {"ordinary": add_ordinary_forms, "versailles": add_versailles, "campaign-2024": add_campaign_2024,
          "renewal": renewal.plant}
