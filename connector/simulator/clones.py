"""A cloned form: another académie's démarche copied from one of the three, its labels slightly reworded.

Académies clone each other's forms (seed 001: Poitiers' notice shows Nancy-Metz's screenshots). DS keeps
a champ's ``stable_id`` when a procédure is cloned, so the descriptor ids stay; only the wording moves.
``add_clone(world)`` adds such a démarche (number :data:`CLONE`, from Poitiers' form by default) with a
copy of the source's listed dossiers under new numbers: same values, same planted facts (the facts
across dossiers hold within one démarche, so they carry over too), no messages (their ids are global).
Call it before serving the world.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from connector.simulator.demarches import POITIERS
from connector.simulator.state import Champ, Demarche, GroupeInstructeur, Label, Revision, World

CLONE = 141592
# Source démarche -> {stable_id: new label}. The signature box says "je valide … (lu et approuvé)" instead of
# "J'approuve … signe": a profile cannot recognise it, a [demarches.roles] override by label can.
REWORDED = {
    POITIERS: {
        3870102: "Prénom et NOM du signataire de la convention (ex : Jean GARCIA)",
        3870103: "Qualité du signataire",
        3870104: "Autre qualité : précisez",
        3870107: "Liste des écoles de la collectivité",
        3870110: "Commune de l'école",
        3870111: "École concernée",
        3870122: "Prénom et NOM du référent de la collectivité",
        3870123: "Courriel du référent de la collectivité",
        3870132: "Je valide le projet de convention présenté ci-dessus (lu et approuvé).",
        3870201: "Transmis à l'éditeur ENT (annuaire AAF)",
    },
}
CLONE_SIGNATURE_LABEL = REWORDED[POITIERS][3870132]


def _relabel(champ: Champ, labels: dict[int, str]) -> Champ:
    new = replace(champ, label=labels.get(champ.stable_id, champ.label))
    if champ.rows:
        new.rows = [replace(r, champs=[_relabel(c, labels) for c in r.champs]) for r in champ.rows]
    return new


def add_clone(world: World, source: int = POITIERS, number: int = CLONE,
              title: str = "Convention ENT école 2026-2027 (formulaire cloné)") -> Demarche:
    labels = REWORDED[source]
    src = world.demarches[source]

    def desc(d):
        new = copy.copy(d)
        new.label = labels.get(d.stable_id, d.label)
        new.children = [desc(c) for c in d.children]
        return new

    revisions = [Revision(r.id + 100_000, r.created_at, r.published_at, [desc(d) for d in r.champ_descriptors],
                          [desc(d) for d in r.annotation_descriptors]) for r in src.revisions]
    groupes = [GroupeInstructeur(g.id + 100_000, g.number + 100_000, g.label, g.closed, list(g.instructeur_ids))
               for g in src.groupes]
    clone_labels = [Label(lb.id + 100_000, lb.name, lb.color) for lb in src.labels]
    dem = replace(src, number=number, title=title, revisions=revisions,
                  active_revision_id=src.active_revision_id + 100_000, groupes=groupes, labels=clone_labels)
    world.demarches[number] = dem
    for token in world.tokens.values():
        if token.demarches is not None and source in token.demarches:
            token.demarches = token.demarches | {number}
    for d in sorted((d for d in world.dossiers.values() if d.demarche_number == source), key=lambda d: d.number):
        new_number = world.new_id("Dossier")
        copy_ = replace(d, number=new_number, demarche_number=number, revision_id=d.revision_id + 100_000,
                        groupe_instructeur_number=d.groupe_instructeur_number + 100_000,
                        champs=[_relabel(c, labels) for c in d.champs],
                        annotations=[_relabel(c, labels) for c in d.annotations], messages=[],
                        label_ids=[i + 100_000 for i in d.label_ids], attestation=None,
                        traitements=list(d.traitements), follower_ids=list(d.follower_ids))
        world.dossiers[new_number] = copy_
    return dem

