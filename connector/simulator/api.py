"""The simulator's GraphQL schema: DS's vendored SDL with the simulator's resolvers attached."""

from __future__ import annotations

from functools import lru_cache

from graphql import GraphQLSchema

from connector.schema import build
from connector.simulator import mutations
from connector.simulator.resolvers import (
    list_by_id,
    not_implemented,
    parse_date,
    parse_datetime,
    resolve_champ_type,
    resolve_deleted,
    resolve_demandeur_type,
    resolve_demarche,
    resolve_dossier,
    resolve_dossiers,
    resolve_file_url,
    resolve_groupe,
    resolve_groupes,
    resolve_pending,
)


@lru_cache(maxsize=1)
def api_schema() -> GraphQLSchema:
    """The vendored schema with the simulator's resolvers (built once, shared by every app)."""
    s = build()
    t = s.type_map
    for name, fmt in (("ISO8601DateTime", parse_datetime), ("ISO8601Date", parse_date)):
        t[name].parse_value = t[name].coerce_input_value = fmt  # type: ignore[attr-defined]
    query = t["Query"].fields  # type: ignore[attr-defined]
    query["demarche"].resolve = resolve_demarche
    query["dossier"].resolve = resolve_dossier
    query["groupeInstructeur"].resolve = resolve_groupe
    query["demarcheDescriptor"].resolve = not_implemented("Query.demarcheDescriptor")
    for type_name in ("Demarche", "GroupeInstructeurWithDossiers"):
        fields = t[type_name].fields  # type: ignore[attr-defined]
        fields["dossiers"].resolve = resolve_dossiers
        fields["pendingDeletedDossiers"].resolve = resolve_pending
    t["Demarche"].fields["deletedDossiers"].resolve = resolve_deleted  # type: ignore[attr-defined]
    t["Demarche"].fields["groupeInstructeurs"].resolve = resolve_groupes  # type: ignore[attr-defined]
    t["GroupeInstructeurWithDossiers"].fields["deletedDossiers"].resolve = not_implemented(  # type: ignore[attr-defined]
        "GroupeInstructeurWithDossiers.deletedDossiers")
    dossier = t["Dossier"].fields  # type: ignore[attr-defined]
    dossier["champs"].resolve = list_by_id("champs", "_stable_id")
    dossier["annotations"].resolve = list_by_id("annotations", "_stable_id")
    dossier["messages"].resolve = list_by_id("messages", "_id")
    dossier["avis"].resolve = list_by_id("avis", "_id")
    t["File"].fields["url"].resolve = resolve_file_url  # type: ignore[attr-defined]
    t["CheckboxChamp"].fields["value"].resolve = lambda src, _info: bool(src["value"])  # type: ignore[attr-defined]
    t["Champ"].resolve_type = resolve_champ_type  # type: ignore[attr-defined]
    t["Demandeur"].resolve_type = resolve_demandeur_type  # type: ignore[attr-defined]
    mutations.attach(s)
    return s
