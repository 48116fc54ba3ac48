"""DS's query resolvers on a private copy of the vendored schema (docs/ds-api.md §2.3, §5-7).

Resolvers read the request's :class:`RequestContext` (token, host, clock, fragments present in
the document) and the served simulator (:class:`~connector.simulator.core.Simulator`: world, caches),
seen through :class:`SimulatorView`, what the resolvers and mutations use of it.
Everything else is read by graphql-core's default resolver from the shapes of ``shapes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from graphql import GraphQLError

from connector.simulator.listing import DemarcheIndex, connection, paginate, trash_filter, visible
from connector.simulator.shapes import FALLBACK_TYPES, deleted_shape, is_degraded, pending_deleted_shape
from connector.simulator.state import UTC, Dossier, Token, World, parse_typed_id


class SimulatorView(Protocol):
    """What the resolvers and mutations use of :class:`~connector.simulator.core.Simulator` (which builds
    the :class:`RequestContext`: core imports this module, so this module names the part it needs)."""

    world: World
    mutation_log: list[dict[str, Any]]
    hidden_reasons: dict[int, str]
    api_written: set[tuple[int, int, str | None]]

    def changed(self, dossier: Dossier | None = None) -> None: ...

    def index(self, demarche_number: int) -> DemarcheIndex: ...

    def demarche(self, number: int) -> dict[str, Any]: ...

    def node(self, d: Dossier) -> dict[str, Any]: ...

    def file_url(self, base_url: str, key: str, filename: str, now: datetime) -> str: ...


@dataclass
class RequestContext:
    sim: SimulatorView
    token: Token
    base_url: str  # scheme://host of the request: file URLs use the host that was called
    now: datetime  # the simulated DS clock when the request came in
    fragment_types: frozenset[str] | None  # None: introspection, every type counts as present

    def has_fragment(self, type_name: str) -> bool:
        return self.fragment_types is None or type_name in self.fragment_types

    def authorize(self, demarche_number: int, type_name: str) -> None:
        if self.token.demarches is not None and demarche_number not in self.token.demarches:
            raise unauthorized(type_name)


def unauthorized(type_name: str) -> GraphQLError:
    return GraphQLError(f"An object of type {type_name} was hidden due to permissions",
                        extensions={"code": "unauthorized"})


def not_found(type_name: str) -> GraphQLError:
    return GraphQLError(f"{type_name} not found", extensions={"code": "not_found"})


def not_implemented(what: str) -> Any:
    def resolve(*_: Any, **__: Any) -> Any:
        raise GraphQLError(f"The DS simulator does not implement {what}", extensions={"code": "not_implemented"})

    return resolve


# --- scalars -------------------------------------------------------------------------------


def parse_datetime(value: Any) -> datetime:
    """ISO8601DateTime input; without an offset it is UTC, as Ruby's ``DateTime.iso8601``."""
    if not isinstance(value, str):
        raise ValueError("ISO8601DateTime must be a string")
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError("ISO8601Date must be a string")
    return date.fromisoformat(value)


# --- Query ---------------------------------------------------------------------------------


def resolve_demarche(_root: Any, info: Any, number: int) -> dict[str, Any]:
    ctx: RequestContext = info.context
    if number not in ctx.sim.world.demarches:
        raise not_found("Demarche")
    ctx.authorize(number, "Demarche")
    return ctx.sim.demarche(number)


def resolve_dossier(_root: Any, info: Any, number: int) -> dict[str, Any]:
    ctx: RequestContext = info.context
    d = ctx.sim.world.dossiers.get(number)
    if d is None or not visible(d):
        raise not_found("Dossier")
    ctx.authorize(d.demarche_number, "Dossier")
    return ctx.sim.node(d)


def resolve_groupe(_root: Any, info: Any, number: int) -> dict[str, Any]:
    ctx: RequestContext = info.context
    for dem in ctx.sim.world.demarches.values():
        for g in dem.groupes:
            if g.number == number:
                ctx.authorize(dem.number, "GroupeInstructeurWithDossiers")
                shape = next(s for s in ctx.sim.demarche(dem.number)["_groupes"] if s["number"] == number)
                return {**shape, "_number": dem.number, "_groupe": number}
    raise not_found("GroupeInstructeurWithDossiers")


# --- Demarche ------------------------------------------------------------------------------


def _revision_filter(ctx: RequestContext, demarche_number: int, revision: str | None, lo: str | None,
                     hi: str | None) -> Any:
    if revision is None and lo is None and hi is None:
        return None
    created = {r.id: r.created_at for r in ctx.sim.world.demarches[demarche_number].revisions}

    def at(typed: str | None) -> datetime | None:
        parsed = parse_typed_id(typed) if typed else None
        if typed and (parsed is None or not parsed[1].isdigit() or int(parsed[1]) not in created):
            raise not_found("Revision")
        return created[int(parsed[1])] if parsed else None

    exact, low, high = at(revision), at(lo), at(hi)
    return lambda d: ((exact is None or created.get(d.revision_id) == exact)
                      and (low is None or created.get(d.revision_id, low) >= low)
                      and (high is None or created.get(d.revision_id, high) <= high))


def resolve_dossiers(src: dict[str, Any], info: Any, *, first: int | None = None, last: int | None = None,
                     after: str | None = None, before: str | None = None, order: str = "ASC",
                     state: str | None = None, archived: bool | None = None, updatedSince: datetime | None = None,
                     createdSince: datetime | None = None, revision: str | None = None,
                     minRevision: str | None = None, maxRevision: str | None = None) -> dict[str, Any]:
    ctx: RequestContext = info.context
    index = ctx.sim.index(src["_number"])
    by_revision = _revision_filter(ctx, src["_number"], revision, minRevision, maxRevision)
    groupe = src.get("_groupe")
    checks = [
        c for c in (
            (lambda d: d.state == state) if state is not None else None,
            (lambda d: d.archived == archived) if archived is not None else None,
            (lambda d: d.groupe_instructeur_number == groupe) if groupe is not None else None,
            by_revision,
        ) if c is not None
    ]
    keep = None if not checks else (lambda d: all(c(d) for c in checks))
    page = paginate(
        index.by_updated if updatedSince is not None else index.by_depose,
        first=first, last=last, after=after, before=before, order=order,
        since=updatedSince if updatedSince is not None else createdSince, keep=keep,
    )
    return connection(page, ctx.sim.node)


def resolve_deleted(src: dict[str, Any], info: Any, *, deletedSince: datetime | None = None,
                    **paging: Any) -> dict[str, Any]:
    index = info.context.sim.index(src["_number"])
    return connection(paginate(index.deleted, since=deletedSince, **paging), deleted_shape)


def resolve_pending(src: dict[str, Any], info: Any, *, deletedSince: datetime | None = None,
                    **paging: Any) -> dict[str, Any]:
    sim = info.context.sim
    keep = trash_filter(deletedSince)
    groupe = src.get("_groupe")
    if groupe is not None:
        by_date = keep
        keep = lambda d: d.groupe_instructeur_number == groupe and (by_date is None or by_date(d))  # noqa: E731
    page = paginate(sim.index(src["_number"]).trash, keep=keep, **paging)
    return connection(page, lambda d: pending_deleted_shape(d, sim.hidden_reasons.get(d.number)))


def resolve_groupes(src: dict[str, Any], info: Any, closed: bool | None = None) -> list[dict[str, Any]]:
    if closed is not None:  # DS calls `closed.true?`, defined nowhere: a 500 (§9.1)
        raise AttributeError(f"undefined method 'true?' for {str(closed).lower()}")
    return src["_groupes"]


# --- Dossier -------------------------------------------------------------------------------


def _typed_key(value: str) -> str | None:
    parsed = parse_typed_id(value)
    return parsed[1] if parsed else None


def list_by_id(key: str, attribute: str) -> Any:
    """``champs(id:)``, ``messages(id:)``...: the whole list, or the one whose typed id matches."""

    def resolve(src: dict[str, Any], _info: Any, id: str | None = None) -> list[Any]:
        items = src[key]
        if id is None:
            return items
        wanted = _typed_key(id)
        return [x for x in items if str(x[attribute]) == wanted]

    return resolve


def resolve_champ_type(value: dict[str, Any], info: Any, _abstract: Any) -> str:
    kind = value["_type"]
    fallback = FALLBACK_TYPES.get(kind)
    return fallback if fallback and not info.context.has_fragment(kind) else kind


def resolve_demandeur_type(value: dict[str, Any], info: Any, _abstract: Any) -> str:
    if is_degraded(value):  # §7: PersonneMoraleIncomplete only for documents that ask for it
        return "PersonneMoraleIncomplete" if info.context.has_fragment("PersonneMoraleIncomplete") else "PersonneMorale"
    return value["__typename"]


def resolve_file_url(src: dict[str, Any], info: Any) -> str:
    ctx: RequestContext = info.context
    return ctx.sim.file_url(ctx.base_url, src["_key"], src["filename"], ctx.now)
