"""The simulated DS behind the HTTP app: :class:`Simulator` holds the world, the caches, the fault queue and
the mutation log, answers a GraphQL payload (``execute``) and acts on the world as DS's users and clock do
(the control surface ``control.py`` and in-process tests call these methods). ``app.py`` serves it over
HTTP.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from connector.simulator import actions, files
from connector.simulator.api import api_schema
from connector.simulator.auth import RateLimiter, error_body
from connector.simulator.execution import Documents, ResolverBug, run, select_operation
from connector.simulator.faults import Fault, FaultQueue, TimeoutAfter
from connector.simulator.histories import mark_reply, mark_scan
from connector.simulator.listing import DemarcheIndex, build_index, visible
from connector.simulator.resolvers import RequestContext
from connector.simulator.seed import make_dossier, make_usager_message
from connector.simulator.shapes import demarche_shape, dossier_shape
from connector.simulator.state import (
    Champ,
    DeletedDossier,
    Dossier,
    Message,
    Revision,
    StoredFile,
    Token,
    World,
    make_file,
    typed_id,
)

NODE_CACHE_SIZE = 10_000  # dossier shapes kept between requests
HIDING_REASONS = {"usager": "user_request", "administration": "instructeur_request", "expired": "expired"}
log = logging.getLogger("connector.simulator")


class Simulator:
    """One served world: caches derived from it, faults to inject, and every mutation received.

    Shapes and indexes are derived from the world and cached; whatever changes a dossier calls
    :meth:`changed` (the control methods below and the mutations do). A test that edits the world
    by hand calls ``changed()`` afterwards. Call these methods between requests, or through the
    HTTP control surface, which runs them on the server's loop.
    """

    def __init__(self, world: World, *, rate_limit: int = 400, latency: float = 0.0):
        self.world = world
        self.limiter = RateLimiter(rate_limit)
        self.latency = latency  # seconds of server time added to every GraphQL answer
        self.schema = api_schema()
        self.documents = Documents(self.schema)
        self.faults = FaultQueue()
        self.listeners: list[Any] = []  # the listening sites (control.Listener), for /_sim/refuse
        self.poisoned: set[int] = set()
        self.mutation_log: list[dict[str, Any]] = []
        self.request_log: list[dict[str, Any]] = []  # every GraphQL request received: when (epoch s), what
        self.files_served = 0  # file downloads (GET of a file URL)
        self.hidden_reasons: dict[int, str] = {}  # DS's hidden_by_reason, for pendingDeletedDossiers
        self.api_written: set[tuple[int, int, str | None]] = set()  # annotations last written by the API
        self.file_secret = secrets.token_bytes(32)
        self._batches = 0  # create_dossiers calls: the seed of each batch, not the (ticking) clock
        self._indexes: dict[int, DemarcheIndex] = {}  # by démarche; dropped when one of its dossiers changes
        self._demarches: dict[int, dict[str, Any]] = {}
        self._nodes: dict[int, dict[str, Any]] = {}
        self._files: dict[str, StoredFile] = {}

    @property
    def rate_limit(self) -> int:
        return self.limiter.limit

    @rate_limit.setter
    def rate_limit(self, value: int) -> None:
        self.limiter.limit = value

    # --- derived data ----------------------------------------------------------------------

    def changed(self, dossier: Dossier | None = None) -> None:
        """Forget what was derived from ``dossier`` (from the whole world when None)."""
        if dossier is None:
            self._nodes.clear()
            self._demarches.clear()
            self._indexes.clear()
            self._files.clear()
        else:
            self._nodes.pop(dossier.number, None)
            self._indexes.pop(dossier.demarche_number, None)

    def index(self, demarche_number: int) -> DemarcheIndex:
        index = self._indexes.get(demarche_number)
        if index is None:
            index = self._indexes[demarche_number] = build_index(self.world, demarche_number)
        return index

    def demarche(self, number: int) -> dict[str, Any]:
        shape = self._demarches.get(number)
        if shape is None:
            shape = self._demarches[number] = demarche_shape(self.world, self.world.demarches[number])
        return shape

    def node(self, d: Dossier) -> dict[str, Any]:
        """A dossier's GraphQL shape; a poisoned one carries a commune without its INSEE code."""
        shape = self._nodes.get(d.number)
        if shape is None:
            if len(self._nodes) >= NODE_CACHE_SIZE:  # about 20 KB each: forget the oldest
                del self._nodes[next(iter(self._nodes))]
            shape = self._nodes[d.number] = dossier_shape(self.world, d, self.demarche(d.demarche_number))
        if d.number in self.poisoned:
            return poisoned(shape)
        return shape

    def file_url(self, base_url: str, key: str, filename: str, now: datetime) -> str:
        return files.file_url(self.file_secret, base_url, key, filename, now)

    def find_file(self, key: str) -> StoredFile | None:
        if key not in self._files:
            self._files = {f.key: f for f in files.all_files(self.world)}
        return self._files.get(key)

    def dossier(self, number: int) -> Dossier:
        try:
            return self.world.dossiers[number]
        except KeyError:
            raise ValueError(f"no dossier number {number}") from None

    # --- the GraphQL endpoint --------------------------------------------------------------

    def execute(self, payload: dict[str, Any], token: Token, base_url: str, fault: Fault | None = None
                ) -> tuple[int, dict[str, Any]]:
        """Run one request body (already authenticated): HTTP status and JSON body."""
        try:
            variables = ensure_hash(payload.get("variables"))
        except json.JSONDecodeError as exc:
            return 400, error_body(str(exc), "graphql_parse_failed")
        except ValueError as exc:
            return 400, error_body(str(exc), "bad_request")
        query = payload.get("query")
        if not isinstance(query, str) or not query.strip():
            return 200, {"errors": [{"message": "No query string was present"}]}
        prepared = self.documents.get(query)
        if prepared.errors:
            return 200, {"errors": prepared.errors}
        operation = select_operation(prepared, payload.get("operationName") or None)
        if isinstance(operation, str):
            return 200, {"errors": [{"message": operation}]}
        introspection = operation.name is not None and operation.name.value == "IntrospectionQuery"
        ctx = RequestContext(self, token, base_url, self.world.clock.now(),
                             None if introspection else prepared.fragment_types)
        middleware = [TimeoutAfter(fault.keep, fault.field)] if fault and fault.kind == "timeout" else None
        try:
            return 200, run(self.schema, prepared, operation, variables, ctx, middleware)
        except ResolverBug:
            exception_id = str(uuid.uuid4())
            log.exception("simulator.resolver_bug exception_id=%s", exception_id)
            return 500, error_body("Internal Server Error", "internal_server_error", exception_id=exception_id)

    # --- control: the clock, tokens, faults, the log ---------------------------------------

    def advance(self, seconds: float) -> datetime:
        self.world.clock.advance(timedelta(seconds=seconds))
        return self.world.clock.now()

    def add_token(self, token: str | None = None, *, demarches: list[int] | None = None, expired: bool = False,
                  write_access: bool = True, revoked: bool = False) -> str:
        token = token or secrets.token_urlsafe(32)
        self.world.tokens[token] = Token(None if demarches is None else frozenset(demarches), expired,
                                         write_access, revoked)
        return token

    def inject(self, kind: str, **params: Any) -> Fault:
        return self.faults.add(Fault(kind, **params))

    def poison(self, number: int, poisoned: bool = True) -> None:
        """Make a dossier fail with ``invalid_null`` wherever its champs are served, or heal it.

        As in gh#12696 ("Cannot return null for non-nullable field Commune.code"): a document with a
        ``CommuneChamp`` fragment gets ``commune: null`` and an ``invalid_null`` error for that one
        dossier; lean selections (number, dates, state) still serve it."""
        self.dossier(number)
        if poisoned:
            self.poisoned.add(number)
        else:
            self.poisoned.discard(number)

    def reset_log(self) -> list[dict[str, Any]]:
        entries, self.mutation_log = self.mutation_log, []
        return entries

    # --- control: what usagers, web-UI instructeurs and DS's jobs do -----------------------

    def now(self) -> datetime:
        return self.world.clock.now()

    def create_dossiers(self, demarche: int, count: int = 1, state: str = "en_construction") -> list[int]:
        """New dossiers made by the seeder's own generator (deposited now)."""
        if demarche not in self.world.demarches:
            raise ValueError(f"no démarche number {demarche}")
        self._batches += 1  # the same seed and calls make the same dossiers, whatever the time
        rng = random.Random(f"{self.world.seed}-created-{self._batches}")
        made = [make_dossier(self.world, demarche, rng, self.now(), state=state) for _ in range(count)]
        if self.world.demarches[demarche].kind == "occitanie":
            for d in made:
                if d.state == "accepte":  # it now owes its signed convention (anomalies.py)
                    d.anomalies += ("convention_missing",)
        self.changed()
        return [d.number for d in made]

    def usager_message(self, number: int, body: str = "Bonjour, voici la convention signée.", *,
                       kind: str | None = None, content_type: str | None = None, size: int = 120_000,
                       filename: str | None = None, virus_scan: str = "safe", email: str | None = None,
                       count: int = 1) -> Message:
        """A message from the usager: the seeder's realistic ``kind`` (signed_pdf, non_pdf, image, text),
        or ``body`` with ``count`` attachments of ``content_type`` when given."""
        d = self.dossier(number)
        now = self.now()
        if kind is not None:
            message = make_usager_message(self.world, d, kind, now, virus_scan=virus_scan)
            d.updated_at = now
            if self.world.demarches[d.demarche_number].kind == "occitanie":
                mark_reply(d, kind, now, virus_scan)
        else:
            attachments = []
            if content_type:
                for i in range(max(1, int(count))):
                    name = filename or f"piece-jointe-{d.number}.{content_type.rsplit('/', 1)[-1]}"
                    if i:
                        stem, dot, ext = name.rpartition(".")
                        name = f"{stem}-{i + 1}{dot}{ext}" if dot else f"{name}-{i + 1}"
                    attachments.append(make_file(self.world, name, content_type, size, now, virus_scan))
            message = actions.post_message(self.world, d, email or d.usager_email, body, now, attachments)
        self.changed(d)
        return message

    def finish_scan(self, key: str, result: str = "safe") -> None:
        """The virus scan of a file ends; DS does not touch the dossier for it (§7)."""
        f = self.find_file(key)
        if f is None:
            raise ValueError(f"no file {key!r}")
        f.virus_scan = result
        owner = next((d for d in self.world.dossiers.values() for m in d.messages for a in m.attachments
                      if a.key == key), None)
        if owner is not None:
            mark_scan(owner, key, result)
        self.changed()

    def edit_champ(self, number: int, stable_id: int, value: Any) -> Champ:
        """The usager edits a champ: updated_at and dateDerniereModificationChamps move."""
        d = self.dossier(number)
        champ = next((c for c in d.champs if c.stable_id == stable_id), None)
        if champ is None:
            raise ValueError(f"dossier {number} has no champ {stable_id}")
        now = self.now()
        actions.write_champ(champ, value, now)
        d.updated_at = d.champs_updated_at = now
        self.changed(d)
        return champ

    def ui_annotation(self, number: int, stable_id: int, value: Any) -> Champ:
        """An instructeur sets a private annotation in the web UI (it becomes "someone else's")."""
        d = self.dossier(number)
        descriptor = next((x for x in actions.revision_of(self.world, d).annotation_descriptors
                           if x.stable_id == stable_id), None)
        if descriptor is None:
            raise ValueError(f"dossier {number} has no annotation {stable_id}")
        champ = actions.annotation(d, descriptor)
        now = self.now()
        actions.write_champ(champ, value, now)
        d.updated_at = d.annotations_updated_at = now
        self.api_written.discard((number, stable_id, None))
        self.changed(d)
        return champ

    def ui_state(self, number: int, state: str, motivation: str | None = None) -> Dossier:
        """An instructeur of the dossier's group changes its state in the web UI."""
        d = self.dossier(number)
        if state not in ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite"):
            raise ValueError(f"cannot move a dossier to {state!r}")
        groupe = next(g for g in self.world.demarches[d.demarche_number].groupes
                      if g.number == d.groupe_instructeur_number)
        instructeur = self.world.instructeurs.get(groupe.instructeur_ids[0]) if groupe.instructeur_ids else None
        actions.change_state(self.world, d, state, self.now(), instructeur, motivation)
        self.changed(d)
        return d

    def archive(self, number: int, archived: bool = True) -> Dossier:
        d = self.dossier(number)
        d.archived = archived
        d.updated_at = self.now()
        self.changed(d)
        return d

    def hide(self, number: int, by: str = "usager", reason: str | None = None) -> Dossier:
        """Hide a dossier as its ``usager``, the ``administration`` or the automatic expiry (``expired``) does."""
        d = self.dossier(number)
        if by not in HIDING_REASONS:
            raise ValueError(f"by must be one of {', '.join(HIDING_REASONS)}")
        actions.hide(d, by, self.now())
        self.hidden_reasons[number] = reason or HIDING_REASONS[by]
        self.changed(d)
        return d

    def restore(self, number: int) -> Dossier:
        d = self.dossier(number)
        actions.restore(d, self.now())
        self.hidden_reasons.pop(number, None)
        self.changed(d)
        return d

    def purge(self, number: int, reason: str | None = None) -> DeletedDossier | None:
        """Destroy a dossier: it leaves every list and appears in deletedDossiers (a brouillon leaves no trace)."""
        d = self.dossier(number)
        record = actions.purge(self.world, d, reason or self.hidden_reasons.pop(number, "user_request"), self.now())
        self.poisoned.discard(number)
        self.changed()
        return record

    def publish_revision(self, demarche: int, drop: list[int] = (), relabel: dict | None = None) -> int:
        """An administrateur publishes a new revision of the démarche's form: the active one without the
        ``drop``ped champs (stable ids), with new labels (``relabel``: stable id -> label). Dossiers keep
        their revision (DS serves their champs as filed). Returns the new revision's id."""
        from dataclasses import replace as _replace

        dem = self.world.demarches[demarche]
        old = next(r for r in dem.revisions if r.id == dem.active_revision_id)
        labels = {int(k): v for k, v in (relabel or {}).items()}

        def keep(descs):
            return [_replace(d, label=labels.get(d.stable_id, d.label), children=keep(d.children))
                    for d in descs if d.stable_id not in set(drop)]

        now = self.now()
        new = Revision(max(r.id for r in dem.revisions) + 1, now, now, keep(old.champ_descriptors),
                       keep(old.annotation_descriptors))
        dem.revisions.append(new)
        dem.active_revision_id = new.id
        self._demarches.pop(demarche, None)
        self._nodes.clear()
        return new.id

    def touch(self, numbers: list[int]) -> None:
        now = self.now()
        for n in numbers:
            d = self.dossier(n)
            d.updated_at = now
            self.changed(d)

    def modify_after_page(self, fault: Fault) -> None:
        """A ``modify`` fault: dossiers changed right after a page was served."""
        numbers = list(fault.numbers)
        if fault.random:
            pool = sorted(n for n, d in self.world.dossiers.items()
                          if visible(d) and fault.demarche in (None, d.demarche_number))
            numbers += random.Random(f"{self.world.seed}-{self.now()}").sample(pool, min(fault.random, len(pool)))
        self.touch(numbers)


def poisoned(shape: dict[str, Any]) -> dict[str, Any]:
    """The dossier's shape plus a commune champ whose commune has no INSEE code (degraded data)."""
    champ = {
        "_type": "CommuneChamp", "_stable_id": 0, "id": typed_id("Champ", 0), "champDescriptorId": typed_id("Champ", 0),
        "label": "Commune", "stringValue": "Sainte-Foy (85150)", "updatedAt": shape["dateDerniereModification"],
        "prefilled": False, "columns": [], "value": "Sainte-Foy (85150)",
        "commune": {"name": "Sainte-Foy", "code": None, "postalCode": "85150"}, "departement": None,
    }
    return {**shape, "champs": [*shape.get("champs", []), champ]}


def ensure_hash(variables: Any) -> dict[str, Any]:
    """DS's ``ensure_hash``: an object, a JSON string of one, or nothing."""
    if isinstance(variables, str):
        return ensure_hash(json.loads(variables)) if variables.strip() else {}
    if variables is None:
        return {}
    if isinstance(variables, dict):
        return variables
    raise ValueError(f"Unexpected parameter: {json.dumps(variables, ensure_ascii=False)}")
