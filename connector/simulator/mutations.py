"""DS's mutations (docs/ds-api.md §9): checks in DS's order, its exact French texts, its side effects (§10).

graphql-ruby's RelayClassicMutation runs ``ready?`` (read-only token, signed blob ids), then loads
``dossierId``/``instructeurId`` (top-level ``not_found``/``unauthorized``), then ``authorized?``
(state, rights: payload errors), then ``resolve``. Every call lands in the Simulator's mutation log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from graphql import GraphQLError, GraphQLSchema

from connector.simulator import actions
from connector.simulator.actions import STATE_WORDS
from connector.simulator.listing import visible
from connector.simulator.resolvers import RequestContext, not_implemented
from connector.simulator.shapes import champ_shape, is_degraded, message_shape
from connector.simulator.state import Champ, ChampDescriptor, Dossier, Instructeur, parse_typed_id

READ_ONLY = "Le jeton utilisé est configuré seulement en lecture"
NO_RIGHTS = "L’instructeur n’a pas les droits d’accès à ce dossier"
BAD_BLOB = "L’identifiant du fichier téléversé est invalide"
EMPTY_BODY = "Le champ « Votre message » ne peut être vide"
MESSAGERIE_CLOSED = "Il n’est pas possible d’envoyer un message sur un dossier supprimé, à archiver ou en brouillon"
DEGRADED_SIRET = "Les informations du SIRET du dossier ne sont pas complètes. Veuillez réessayer plus tard."
CORRECTION_PENDING = "Une demande de correction est déjà en attente sur ce dossier"
TERMINATED = ("accepte", "refuse", "sans_suite")

# AnnotationValueInput key accepted by each annotation descriptor type (dossier_modifier_annotations.rb).
VALUE_KEYS = {
    "TextChamp": "text", "TextareaChamp": "textarea", "EmailChamp": "email", "CheckboxChamp": "checkbox",
    "YesNoChamp": "yesNo", "DateChamp": "date", "DatetimeChamp": "datetime", "IntegerNumberChamp": "integerNumber",
    "DecimalNumberChamp": "decimalNumber", "DropDownListChamp": "dropDownList",
    "MultipleDropDownListChamp": "multipleDropDownList", "RepetitionChamp": "repetition",
}

Payload = dict[str, Any]
Mutation = Callable[[RequestContext, Dossier, Instructeur, dict[str, Any]], Payload]


def already(d: Dossier) -> Payload:
    return {"errors": [f"Le dossier est déjà {STATE_WORDS[d.state]}"]}


def has_rights(ctx: RequestContext, d: Dossier, instructeur: Instructeur) -> bool:
    """``instructeur.dossiers.exists?``: the instructeur belongs to the dossier's groupe instructeur."""
    groupes = ctx.sim.world.demarches[d.demarche_number].groupes
    return any(g.number == d.groupe_instructeur_number and instructeur.id in g.instructeur_ids for g in groupes)


def dossier_payload(ctx: RequestContext, d: Dossier) -> Payload:
    ctx.sim.changed(d)
    return {"dossier": ctx.sim.node(d)}


def can_terminer(ctx: RequestContext, d: Dossier) -> bool:
    """No mandatory private annotation blank (``any_annotations_privees_with_errors?``)."""
    revision = actions.revision_of(ctx.sim.world, d)
    by_id = {c.stable_id: c for c in d.annotations}
    return all(
        desc.stable_id in by_id and not actions.is_blank(by_id[desc.stable_id])
        for desc in revision.annotation_descriptors if desc.required
    )


# --- the mutations -------------------------------------------------------------------------


def envoyer_message(ctx: RequestContext, d: Dossier, ins: Instructeur, inp: dict[str, Any]) -> Payload:
    correction = inp.get("correction")
    if correction and (d.pending_correction_at is not None or d.state not in ("en_construction", "en_instruction")):
        return {"errors": [CORRECTION_PENDING if d.pending_correction_at is not None else
                           f"Le dossier ne peut pas faire l’objet d’une demande de correction car il est "
                           f"{STATE_WORDS[d.state]}"]}
    if not has_rights(ctx, d, ins):
        return {"errors": [NO_RIGHTS]}
    errors = []
    if not inp["body"].strip():
        errors.append(EMPTY_BODY)
    closed = d.archived or d.hidden_by_user_at or d.hidden_by_administration_at or d.connection_usager == "deleted"
    if closed:
        errors.append(MESSAGERIE_CLOSED)
    if errors:
        return {"errors": errors}
    now = ctx.sim.world.clock.now()
    message = actions.post_message(ctx.sim.world, d, ins.email, inp["body"], now)
    if correction:
        d.pending_correction_at = now
        if d.state == "en_instruction":
            actions.change_state(ctx.sim.world, d, "en_construction", now, ins)
    ctx.sim.changed(d)
    return {"message": message_shape(message)}


def passer_en_instruction(ctx: RequestContext, d: Dossier, ins: Instructeur, inp: dict[str, Any]) -> Payload:
    if d.state != "en_construction":
        return already(d)
    if not has_rights(ctx, d, ins):
        return {"errors": [NO_RIGHTS]}
    actions.change_state(ctx.sim.world, d, "en_instruction", ctx.sim.world.clock.now(), ins)
    return dossier_payload(ctx, d)


def repasser_en_instruction(ctx: RequestContext, d: Dossier, ins: Instructeur, inp: dict[str, Any]) -> Payload:
    if d.state not in TERMINATED or d.connection_usager == "deleted":  # can_repasser_en_instruction?
        return already(d)
    if not has_rights(ctx, d, ins):
        return {"errors": [NO_RIGHTS]}
    actions.change_state(ctx.sim.world, d, "en_instruction", ctx.sim.world.clock.now(), ins)
    return dossier_payload(ctx, d)


def terminer(state: str) -> Mutation:
    """dossierAccepter / dossierRefuser / dossierClasserSansSuite: only from en_instruction, and
    ``can_terminer?`` (a blank mandatory annotation answers the misleading "déjà en instruction")."""

    def mutate(ctx: RequestContext, d: Dossier, ins: Instructeur, inp: dict[str, Any]) -> Payload:
        if d.state == "en_instruction" and is_degraded(d.demandeur):
            return {"errors": [DEGRADED_SIRET]}
        if d.state != "en_instruction" or not can_terminer(ctx, d):
            return already(d)
        if not has_rights(ctx, d, ins):
            return {"errors": [NO_RIGHTS]}
        actions.change_state(ctx.sim.world, d, state, ctx.sim.world.clock.now(), ins, inp.get("motivation"))
        return dossier_payload(ctx, d)

    return mutate


def modifier_annotations(ctx: RequestContext, d: Dossier, ins: Instructeur, inp: dict[str, Any]) -> Payload:
    if not has_rights(ctx, d, ins):
        return {"errors": [NO_RIGHTS]}
    now = ctx.sim.world.clock.now()
    revision = actions.revision_of(ctx.sim.world, d)
    saved: list[dict[str, Any]] = []
    errors: list[str] = []
    for item in inp["annotations"]:
        found = _annotation(ctx, d, revision.annotation_descriptors, item["id"])
        if found is None:
            errors.append(f"L‘annotation \"{item['id']}\" n’existe pas")
            continue
        desc, champ, row_id = found
        key = VALUE_KEYS[desc.type]
        if key not in item["value"]:
            errors.append(f"L‘annotation \"{item['id']}\" n’est pas de type attendu")
            continue
        raw = item["value"][key]
        if desc.type == "RepetitionChamp":  # rows added under Dossier.no_touching
            champ.rows.extend(actions.new_row(ctx.sim.world, desc) for _ in range(max(raw, 0)))
            saved.append(champ_shape(champ, now))
            continue
        value = _stored_value(raw)
        choices = value if isinstance(value, list) else [value]
        if desc.options is not None and any(v not in desc.options for v in choices):
            errors.append(f"« {desc.label} » doit être dans les options proposées")
            continue
        mark = (d.number, desc.stable_id, row_id)
        if champ.value != value or mark not in ctx.sim.api_written:  # §10: changed, or someone else wrote it
            actions.write_champ(champ, value, now)
            d.updated_at = now
        ctx.sim.api_written.add(mark)
        saved.append(champ_shape(champ, now, row_id))
    ctx.sim.changed(d)
    return {"annotations": saved, "errors": errors}


def _stored_value(raw: Any) -> Any:
    if isinstance(raw, datetime):
        return raw.replace(microsecond=0)  # stored iso8601(0)
    if isinstance(raw, date):
        return raw.isoformat()
    return raw


def _annotation(ctx: RequestContext, d: Dossier, descriptors: list[ChampDescriptor],
                annotation_id: str) -> tuple[ChampDescriptor, Champ, str | None] | None:
    """The private champ an annotation id names in the dossier's own revision (created if absent)."""
    parsed = parse_typed_id(annotation_id)
    if parsed is None or parsed[0] != "Champ":
        return None
    sid, _, row_id = parsed[1].partition("|")
    if row_id:
        for parent in descriptors:
            desc = next((c for c in parent.children if str(c.stable_id) == sid), None)
            if desc is None or desc.type not in VALUE_KEYS:
                continue
            rep = next((c for c in d.annotations if c.stable_id == parent.stable_id), None)
            row = next((r for r in rep.rows if r.id.removeprefix("Row-") == row_id), None) if rep else None
            champ = next((c for c in row.champs if str(c.stable_id) == sid), None) if row else None
            return (desc, champ, row_id) if champ else None
        return None
    desc = next((x for x in descriptors if str(x.stable_id) == sid), None)
    if desc is None or desc.type not in VALUE_KEYS:
        return None
    return desc, actions.annotation(d, desc), None


IMPLEMENTED: dict[str, Mutation] = {
    "dossierEnvoyerMessage": envoyer_message,
    "dossierModifierAnnotations": modifier_annotations,
    "dossierPasserEnInstruction": passer_en_instruction,
    "dossierRepasserEnInstruction": repasser_en_instruction,
    "dossierClasserSansSuite": terminer("sans_suite"),
    "dossierAccepter": terminer("accepte"),
    "dossierRefuser": terminer("refuse"),
}


# --- the common mechanics ------------------------------------------------------------------


def _loaded(ctx: RequestContext, inp: dict[str, Any], payload_type: str) -> tuple[Dossier, Instructeur]:
    """``loads:`` arguments: a missing or hidden record is a top-level not_found (§9.1, §14)."""
    missing = GraphQLError(f"{payload_type} not found", extensions={"code": "not_found"})
    parsed = parse_typed_id(inp["dossierId"])
    d = ctx.sim.world.dossiers.get(int(parsed[1])) if parsed and parsed[0] == "Dossier" and parsed[1].isdigit() else None
    if d is None or not visible(d):
        raise missing
    ctx.authorize(d.demarche_number, "Dossier")
    parsed = parse_typed_id(inp["instructeurId"])
    ins = (ctx.sim.world.instructeurs.get(int(parsed[1]))
           if parsed and parsed[0] == "Instructeur" and parsed[1].isdigit() else None)
    if ins is None:
        raise missing
    return d, ins


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _resolver(name: str, payload_type: str, mutate: Mutation) -> Callable[..., Payload]:
    def resolve(_root: Any, info: Any, input: dict[str, Any]) -> Payload:
        ctx: RequestContext = info.context
        entry: dict[str, Any] = {"name": name, "input": _jsonable(input), "at": ctx.sim.world.clock.now().isoformat()}
        try:
            if not ctx.token.write_access:
                payload: Payload = {"errors": [READ_ONLY]}
            elif input.get("attachment") or input.get("justificatif"):
                payload = {"errors": [BAD_BLOB]}  # the simulator issues no signed blob ids
            else:
                d, ins = _loaded(ctx, input, payload_type)
                entry["dossier"] = d.number
                payload = mutate(ctx, d, ins, input)
        except GraphQLError as exc:
            ctx.sim.mutation_log.append({**entry, "outcome": "error", "errors": [exc.message]})
            raise
        errors = payload.pop("errors", None) or []
        ctx.sim.mutation_log.append({**entry, "outcome": "errors" if errors else "ok", "errors": errors})
        return {**payload, "clientMutationId": input.get("clientMutationId"),
                "errors": [{"message": m} for m in errors] or None}

    return resolve


def attach(schema: GraphQLSchema) -> None:
    for name, field in schema.mutation_type.fields.items():  # type: ignore[union-attr]
        mutate = IMPLEMENTED.get(name)
        field.resolve = (
            _resolver(name, field.type.name, mutate) if mutate else not_implemented(f"Mutation.{name}")  # type: ignore[attr-defined]
        )

