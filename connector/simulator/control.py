"""The control surface, ``/_sim/<operation>`` (JSON in, JSON out), for loopback callers only.

Each route calls the Simulator method of the same purpose, on the server's event loop, so tests
and demos running in another thread or process can drive the world safely:

    advance {seconds}                      token {token?, demarches?, expired?, write_access?, revoked?}
    fault {kind, count?, operation?, ...}  faults/clear                 poison {number, poisoned?}
    rate_limit {limit}                     log (read)                   log/reset (read and empty)
    dossiers {demarche, count?, state?}    message {number, body?, content_type?, size?, filename?,
    scan {key, result?}                             virus_scan?, email?}
    champ {number, stable_id, value}       annotation {number, stable_id, value}
    state {number, state, motivation?}     archive {number, archived?}  touch {numbers}
    hide {number, by?, reason?}            restore {number}             purge {number, reason?}
    world (a summary: clock, démarches, dossier counts)
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from connector.simulator.state import typed_id

if TYPE_CHECKING:
    from connector.simulator.app import Simulator

PREFIX = "/_sim/"


def _message(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    m = sim.usager_message(**p)
    return {"id": typed_id("Commentaire", m.id), "attachments": [f.key for f in m.attachments]}


def _world(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    counts: dict[int, int] = {}
    for d in sim.world.dossiers.values():
        counts[d.demarche_number] = counts.get(d.demarche_number, 0) + 1
    return {
        "now": sim.now().isoformat(),
        "demarches": [{"number": n, "title": dem.title, "dossiers": counts.get(n, 0)}
                      for n, dem in sim.world.demarches.items()],
        "deleted": len(sim.world.deleted),
        "pending_faults": len(sim.faults.pending),
    }


def _rate_limit(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    sim.rate_limit = int(p["limit"])
    return {"limit": sim.rate_limit}


def _dossier(d: Any) -> dict[str, Any]:
    return {"number": d.number, "state": d.state, "updated_at": d.updated_at.isoformat()}


OPERATIONS: dict[str, Callable[[Simulator, dict[str, Any]], Any]] = {
    "advance": lambda sim, p: {"now": sim.advance(float(p["seconds"])).isoformat()},
    "token": lambda sim, p: {"token": sim.add_token(**p)},
    "fault": lambda sim, p: {"pending": len(sim.faults.pending), "kind": sim.inject(**p).kind},
    "faults/clear": lambda sim, p: sim.faults.clear() or {"pending": 0},
    "poison": lambda sim, p: sim.poison(**p) or {"poisoned": sorted(sim.poisoned)},
    "rate_limit": _rate_limit,
    "log": lambda sim, p: {"mutations": sim.mutation_log},
    "log/reset": lambda sim, p: {"mutations": sim.reset_log()},
    "dossiers": lambda sim, p: {"numbers": sim.create_dossiers(**p)},
    "message": _message,
    "scan": lambda sim, p: sim.finish_scan(**p) or {"key": p["key"]},
    "champ": lambda sim, p: {"string_value": sim.edit_champ(**p).string_value},
    "annotation": lambda sim, p: {"string_value": sim.ui_annotation(**p).string_value},
    "state": lambda sim, p: _dossier(sim.ui_state(**p)),
    "archive": lambda sim, p: _dossier(sim.archive(**p)),
    "hide": lambda sim, p: _dossier(sim.hide(**p)),
    "restore": lambda sim, p: _dossier(sim.restore(**p)),
    "purge": lambda sim, p: {"id": typed_id("DeletedDossier", (r := sim.purge(**p)).id), "reason": r.reason,
                             "deleted_at": r.deleted_at.isoformat()},
    "touch": lambda sim, p: sim.touch(list(p["numbers"])) or {"touched": len(p["numbers"])},
    "world": _world,
}


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


async def _handle(request: web.Request) -> web.Response:
    if not _loopback(request):
        return web.json_response({"error": "the control surface answers loopback callers only"}, status=403)
    operation = OPERATIONS.get(request.match_info["operation"])
    if operation is None:
        return web.json_response({"error": f"unknown operation; one of {', '.join(OPERATIONS)}"}, status=404)
    try:
        payload = await request.json() if request.can_read_body else {}
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        result = operation(request.app["sim"], payload)
    except (ValueError, TypeError, KeyError, ImportError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
    return web.json_response(result, dumps=lambda obj: json.dumps(obj, ensure_ascii=False, default=str))


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", PREFIX + "{operation:.+}", _handle)
