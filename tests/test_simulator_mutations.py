"""Mutations: DS's checks, French payload errors, top-level errors and updated_at bumps (docs/ds-api.md §9-10)."""

from __future__ import annotations

import pytest
from simworld import ids, instructeur_of, op, outsider_of

from connector.simulator.seed import CRETEIL, OCCITANIE
from connector.simulator.state import SYSTEM_EMAIL, typed_id

STATUT = 4210104  # Occitanie's mandatory "Statut convention" annotation (a drop-down)
RELANCE = 4210103  # Occitanie's "Relance envoyée le" (a date)
RECUE = 4210102  # Occitanie's "Convention signée reçue" (a checkbox)


def new_dossier(simulator, demarche=CRETEIL, state="en_construction"):
    (number,) = simulator.control("dossiers", demarche=demarche, state=state)["numbers"]
    return simulator.world.dossiers[number]


def call(simulator, name, token=None, **input_):
    status, body, _ = simulator.post(op(name, input=input_), token=token)
    assert status == 200
    return body


def payload(body):
    assert "errors" not in body, body["errors"]
    (value,) = body["data"].values()
    return value


def messages(body):
    return [e["message"] for e in payload(body)["errors"] or []]


def test_passer_en_instruction_follows_posts_a_system_message_and_touches(simulator):
    d = new_dossier(simulator)
    instructeur = instructeur_of(simulator.world, d)
    before, count = d.updated_at, len(d.messages)
    result = payload(call(simulator, "passer_en_instruction", **ids(simulator.world, d), disableNotification=True))
    assert result["errors"] is None and result["dossier"]["state"] == "en_instruction"
    assert d.state == "en_instruction" and d.updated_at > before and d.en_instruction_at == d.updated_at
    assert instructeur.id in d.follower_ids
    assert len(d.messages) == count + 1 and d.messages[-1].email == SYSTEM_EMAIL  # even without notification
    assert d.traitements[-1].event == "passe_en_instruction"
    assert d.traitements[-1].email_agent_traitant == instructeur.email
    again = call(simulator, "passer_en_instruction", **ids(simulator.world, d))
    assert messages(again) == ["Le dossier est déjà en instruction"] and payload(again)["dossier"] is None


def test_an_instructeur_outside_the_groupe_has_no_rights(simulator):
    d = new_dossier(simulator)
    before = d.updated_at
    body = call(simulator, "passer_en_instruction", **ids(simulator.world, d, outsider_of(simulator.world, d)))
    assert messages(body) == ["L’instructeur n’a pas les droits d’accès à ce dossier"]
    assert d.state == "en_construction" and d.updated_at == before


def test_a_read_only_token_cannot_mutate(simulator):
    d = new_dossier(simulator)
    token = simulator.control("token", write_access=False)["token"]
    body = call(simulator, "passer_en_instruction", token=token, **ids(simulator.world, d))
    assert messages(body) == ["Le jeton utilisé est configuré seulement en lecture"]
    assert d.state == "en_construction"
    body = call(simulator, "passer_en_instruction", token=token, dossierId=typed_id("Dossier", 1), instructeurId="x")
    assert messages(body) == ["Le jeton utilisé est configuré seulement en lecture"]  # checked before loading


def test_unloadable_ids_are_top_level_errors(simulator):
    d = new_dossier(simulator)
    good = ids(simulator.world, d)
    for bad in ({**good, "dossierId": typed_id("Dossier", 999)}, {**good, "dossierId": "garbage"},
                {**good, "instructeurId": typed_id("Instructeur", 999_999)}):
        body = call(simulator, "passer_en_instruction", **bad)
        assert body["data"] == {"dossierPasserEnInstruction": None}
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "not_found"} and error["path"] == ["dossierPasserEnInstruction"]
    simulator.control("hide", number=d.number, by="administration")
    assert call(simulator, "passer_en_instruction", **good)["errors"][0]["extensions"]["code"] == "not_found"
    other = new_dossier(simulator)
    token = simulator.control("token", demarches=[OCCITANIE])["token"]
    error = call(simulator, "passer_en_instruction", token=token, **ids(simulator.world, other))["errors"][0]
    assert error["message"] == "An object of type Dossier was hidden due to permissions"
    assert error["extensions"] == {"code": "unauthorized"}


def test_classer_sans_suite_only_from_en_instruction_with_mandatory_annotations_filled(simulator):
    d = new_dossier(simulator, OCCITANIE)
    d.annotations = [a for a in d.annotations if a.stable_id != STATUT]
    simulator.sim.changed(d)
    body = call(simulator, "classer_sans_suite", **ids(simulator.world, d), motivation="Convention non reçue.")
    assert messages(body) == ["Le dossier est déjà en construction"]
    payload(call(simulator, "passer_en_instruction", **ids(simulator.world, d)))
    body = call(simulator, "classer_sans_suite", **ids(simulator.world, d), motivation="Convention non reçue.")
    assert messages(body) == ["Le dossier est déjà en instruction"]  # DS's misleading text for a blank annotation
    simulator.control("annotation", number=d.number, stable_id=STATUT, value="Classée sans suite")
    count = len(d.messages)
    body = call(simulator, "classer_sans_suite", **ids(simulator.world, d), motivation="Convention non reçue.",
                disableNotification=True)
    assert payload(body)["dossier"]["state"] == "sans_suite" and payload(body)["errors"] is None
    assert d.motivation == "Convention non reçue." and d.processed_at == d.updated_at
    assert d.messages[count].email == SYSTEM_EMAIL and d.traitements[-1].event == "classe_sans_suite"
    assert messages(call(simulator, "classer_sans_suite", **ids(simulator.world, d), motivation="x")) == [
        "Le dossier est déjà classé sans suite"]


def test_a_degraded_siret_blocks_decisions(simulator):
    d = new_dossier(simulator, CRETEIL, "en_instruction")
    d.demandeur = {"__typename": "PersonneMoraleIncomplete", "siret": d.demandeur["siret"]}
    body = call(simulator, "accepter", **ids(simulator.world, d))
    assert messages(body) == [
        "Les informations du SIRET du dossier ne sont pas complètes. Veuillez réessayer plus tard."]


def test_accepter_makes_an_attestation_and_repasser_en_instruction_undoes_the_decision(simulator):
    d = new_dossier(simulator, CRETEIL, "en_instruction")
    assert payload(call(simulator, "accepter", **ids(simulator.world, d)))["dossier"]["state"] == "accepte"
    assert d.attestation is not None and d.attestation.content_type == "application/pdf"
    node = simulator.post(op("dossier", dossierNumber=d.number))[1]["data"]["dossier"]
    assert node["dateTraitement"] == node["dateDerniereModification"]
    assert messages(call(simulator, "accepter", **ids(simulator.world, d))) == ["Le dossier est déjà accepté"]
    simulator.control("archive", number=d.number)
    d.motivation = "ok"
    result = payload(call(simulator, "repasser_en_instruction", **ids(simulator.world, d)))
    assert result["dossier"]["state"] == "en_instruction"
    assert (d.motivation, d.archived, d.attestation, d.processed_at) == (None, False, None, None)
    assert d.traitements[-1].event == "repasse_en_instruction"
    assert messages(call(simulator, "repasser_en_instruction", **ids(simulator.world, d))) == [
        "Le dossier est déjà en instruction"]


def test_repasser_en_instruction_refuses_a_deleted_usager_account(simulator):
    d = new_dossier(simulator, CRETEIL, "refuse")
    d.connection_usager = "deleted"
    assert messages(call(simulator, "repasser_en_instruction", **ids(simulator.world, d))) == [
        "Le dossier est déjà refusé"]


def test_envoyer_message_posts_and_touches_or_says_why_not(simulator):
    d = new_dossier(simulator)
    instructeur = instructeur_of(simulator.world, d)
    before = d.updated_at
    result = payload(call(simulator, "envoyer_message", **ids(simulator.world, d), body="Merci de signer."))
    assert result["errors"] is None
    assert result["message"]["email"] == instructeur.email and result["message"]["body"] == "Merci de signer."
    assert result["message"]["id"] == typed_id("Commentaire", d.messages[-1].id) and d.updated_at > before
    assert messages(call(simulator, "envoyer_message", **ids(simulator.world, d), body="  ")) == [
        "Le champ « Votre message » ne peut être vide"]
    assert messages(call(simulator, "envoyer_message", **ids(simulator.world, d), body="x",
                         attachment="blob")) == ["L’identifiant du fichier téléversé est invalide"]
    terminated = new_dossier(simulator, CRETEIL, "accepte")
    simulator.control("archive", number=terminated.number)
    count = len(terminated.messages)
    assert messages(call(simulator, "envoyer_message", **ids(simulator.world, terminated), body="x")) == [
        "Il n’est pas possible d’envoyer un message sur un dossier supprimé, à archiver ou en brouillon"]
    assert len(terminated.messages) == count


def _annotate(simulator, d, *items, token=None):
    return payload(call(simulator, "modifier_annotations", token=token, **ids(simulator.world, d),
                        annotations=[{"id": typed_id("Champ", sid), "value": value} for sid, value in items]))


def test_annotations_are_written_with_ds_bump_rules(simulator):
    d = new_dossier(simulator, OCCITANIE)
    simulator.control("advance", seconds=60)
    stamp = d.annotations_updated_at
    result = _annotate(simulator, d, (STATUT, {"dropDownList": "Relancée"}), (RELANCE, {"date": "2026-10-20"}),
                       (RECUE, {"checkbox": False}))
    assert result["errors"] is None
    assert [a["stringValue"] for a in result["annotations"]] == ["Relancée", "20 octobre 2026", "false"]
    first = d.updated_at
    assert d.annotations_updated_at == stamp  # API writes do not move dateDerniereModificationAnnotations
    simulator.control("advance", seconds=60)
    _annotate(simulator, d, (STATUT, {"dropDownList": "Relancée"}))
    assert d.updated_at == first  # same value, last written by the API: no touch
    simulator.control("annotation", number=d.number, stable_id=STATUT, value="Relancée")
    ui = d.updated_at
    simulator.control("advance", seconds=60)
    _annotate(simulator, d, (STATUT, {"dropDownList": "Relancée"}))
    assert d.updated_at > ui  # same value, but someone else wrote it last: saved and touched
    statut = next(a for a in d.annotations if a.stable_id == STATUT)
    assert statut.updated_at == d.updated_at


def test_annotation_errors_are_per_item_and_not_atomic(simulator):
    d = new_dossier(simulator, OCCITANIE)
    result = _annotate(simulator, d, (STATUT, {"dropDownList": "Perdue"}), (RELANCE, {"text": "demain"}),
                       (999, {"text": "x"}), (RELANCE, {"date": "2026-11-02"}))
    assert [e["message"] for e in result["errors"]] == [
        "« Statut convention » doit être dans les options proposées",
        f"L‘annotation \"{typed_id('Champ', RELANCE)}\" n’est pas de type attendu",
        f"L‘annotation \"{typed_id('Champ', 999)}\" n’existe pas",
    ]
    assert [a["id"] for a in result["annotations"]] == [typed_id("Champ", RELANCE)]
    assert next(a for a in d.annotations if a.stable_id == RELANCE).value == "2026-11-02"
    champ_id = typed_id("Champ", 4210002)  # a public champ is not an annotation
    body = call(simulator, "modifier_annotations", **ids(simulator.world, d),
                annotations=[{"id": champ_id, "value": {"text": "x"}}])
    assert messages(body) == [f"L‘annotation \"{champ_id}\" n’existe pas"]


def test_the_mutation_log_records_every_call(simulator):
    d = new_dossier(simulator)
    simulator.control("log/reset")
    call(simulator, "passer_en_instruction", **ids(simulator.world, d))
    call(simulator, "passer_en_instruction", **ids(simulator.world, d))
    call(simulator, "passer_en_instruction", **{**ids(simulator.world, d), "dossierId": typed_id("Dossier", 5)})
    log = simulator.control("log")["mutations"]
    assert [(e["name"], e["outcome"]) for e in log] == [("dossierPasserEnInstruction", "ok"),
                                                        ("dossierPasserEnInstruction", "errors"),
                                                        ("dossierPasserEnInstruction", "error")]
    assert log[0]["input"]["dossierId"] == typed_id("Dossier", d.number) and log[0]["dossier"] == d.number
    assert log[1]["errors"] == ["Le dossier est déjà en instruction"]
    assert simulator.control("log/reset")["mutations"] == log and simulator.sim.mutation_log == []


@pytest.mark.parametrize("mutation", ["dossierArchiver", "dossierAjouterLabel"])
def test_unimplemented_mutations_say_so(simulator, mutation):
    query = f"mutation {{ {mutation}(input: {{dossierId: \"x\", instructeurId: \"y\"}}) {{ errors {{ message }} }} }}"
    if mutation == "dossierAjouterLabel":
        query = query.replace('instructeurId: "y"', 'labelId: "y"')
    body = simulator.post({"query": query})[1]
    assert body["errors"][0]["extensions"] == {"code": "not_implemented"}
