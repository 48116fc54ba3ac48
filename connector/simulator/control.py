"""The control surface, ``/_sim/<operation>`` (JSON in, JSON out), for loopback callers only.

Each route calls the Simulator method of the same purpose, on the server's event loop, so tests
and demos running in another thread or process can drive the world safely:

    advance {seconds}                      token {token?, demarches?, expired?, write_access?, revoked?}
    fault {kind, count?, operation?, ...}  faults/clear                 poison {number, poisoned?}
    rate_limit {limit}   latency {seconds}  log (read)                   log/reset (read and empty)
    dossiers {demarche, count?, state?}    message {number, body?, kind?, content_type?, size?, filename?,
    scan {key, result?}                             virus_scan?, email?, count?}
    champ {number, stable_id, value}       annotation {number, stable_id, value}
    state {number, state, motivation?}     archive {number, archived?}  touch {numbers}
    hide {number, by?, reason?}            restore {number}             purge {number, reason?}
    world (a summary: clock, démarches, dossier counts)
    served (read: GraphQL requests received by operation name, "file": file GETs)   served/reset (read and zero)
    revision {demarche, drop?, relabel?} (publish a new revision of the form)
    planted {demarche?} (the facts planted in each dossier: ``Dossier.anomalies``, see anomalies.py)
    refuse {seconds} (stop listening for that long: every new connection is refused, as from a
                      wrong port or a stopped proxy; needs the server started with ``Listener``)
    renewal/truth (read: each school's expected renewal status at the clock; a world seeded with renewal)
    renewal/late (the commune that renews after the cut-off files now; the clock must be past the cut-off)
    requests (read: every GraphQL request received, {at (epoch s), operation, demarche}, and their count)
    requests/reset (read the count and empty the list)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from connector.simulator import renewal
from connector.simulator.core import Simulator
from connector.simulator.state import Dossier, typed_id

PREFIX = "/_sim/"


def _message(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    m = sim.usager_message(**p)
    return {"id": typed_id("Commentaire", m.id), "attachments": [f.key for f in m.attachments]}


def _served(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    """The request log counted by operation name ("?" when none), and "file": the file downloads."""
    served = Counter((e["operation"] or "?") for e in sim.request_log)
    if sim.files_served:
        served["file"] = sim.files_served
    return {"requests": dict(served)}


def _served_reset(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    served = _served(sim, p)
    sim.request_log, sim.files_served = [], 0
    return served


def _world(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    counts = Counter(d.demarche_number for d in sim.world.dossiers.values())
    return {
        "now": sim.now().isoformat(),
        "demarches": [{"number": n, "title": dem.title, "dossiers": counts[n]} for n, dem in sim.world.demarches.items()],
        "deleted": len(sim.world.deleted),
        "pending_faults": len(sim.faults.pending),
    }


def _planted(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    demarche = p.get("demarche")
    return {"dossiers": {str(d.number): list(d.anomalies) for d in sim.world.dossiers.values()
                         if demarche is None or d.demarche_number == int(demarche)}}


def _renewal(sim: Simulator) -> None:
    if renewal.PREVIOUS not in sim.world.demarches:
        raise ValueError("this world has no renewal campaigns: seed it with renewal (simulate --with renewal)")


def _renewal_truth(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    _renewal(sim)
    return renewal.truth(sim.world)


def _renewal_late(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    _renewal(sim)
    number = renewal.file_late(sim.world)
    sim.changed(sim.world.dossiers[number])
    return {"number": number}


def _reset_requests(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    count = len(sim.request_log)
    sim.request_log = []
    return {"count": count}


def _rate_limit(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    sim.rate_limit = int(p["limit"])
    return {"limit": sim.rate_limit}


def _latency(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    seconds = float(p["seconds"])
    if not seconds >= 0:
        raise ValueError("seconds must be 0 or more")
    sim.latency = seconds
    return {"latency": sim.latency}


def _fault(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    sim.inject(**p)
    return {"pending": len(sim.faults.pending)}


def _clear_faults(sim: Simulator, _p: dict[str, Any]) -> dict[str, Any]:
    sim.faults.clear()
    return {"pending": 0}


def _poison(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    sim.poison(**p)
    return {"poisoned": sorted(sim.poisoned)}


def _scan(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    sim.finish_scan(**p)
    return {"key": p["key"]}


def _touch(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    sim.touch(list(p["numbers"]))
    return {"touched": len(p["numbers"])}


def _purge(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    record = sim.purge(**p)
    if record is None:
        return {"id": None}
    return {"id": typed_id("DeletedDossier", record.id), "reason": record.reason,
            "deleted_at": record.deleted_at.isoformat()}


class Listener(web.TCPSite):
    """The simulator's listening socket, which ``/_sim/refuse {seconds}`` closes for a while: new
    connections are refused by the kernel (connections already open keep being served), then it
    listens again on the same address. Serving code uses it in place of ``web.TCPSite``."""

    _refusing = False

    async def start(self) -> None:
        await super().start()
        self._runner.app["sim"].listeners.append(self)

    def refuse(self, seconds: float) -> None:
        if self._refusing or self._server is None:
            return
        host, port = self._server.sockets[0].getsockname()[:2]
        self._server.close()  # the listening socket is closed now; open connections are not
        self._refusing = True
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, lambda: loop.create_task(self._listen_again(host, port)))

    async def _listen_again(self, host: str, port: int) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            self._runner.server, host, port, backlog=self._backlog, reuse_address=True)
        self._refusing = False


def _refuse(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    seconds = float(p["seconds"])
    if not 0 < seconds <= 3600:
        raise ValueError("seconds must be more than 0 and at most 3600")
    if not sim.listeners:
        raise ValueError("this server was not started with control.Listener: it cannot stop listening")
    for listener in sim.listeners:
        listener.refuse(seconds)
    return {"refusing_seconds": seconds}


def _dossier(d: Dossier) -> dict[str, Any]:
    return {"number": d.number, "state": d.state, "updated_at": d.updated_at.isoformat()}


OPERATIONS: dict[str, Callable[[Simulator, dict[str, Any]], Any]] = {
    "advance": lambda sim, p: {"now": sim.advance(float(p["seconds"])).isoformat()},
    "token": lambda sim, p: {"token": sim.add_token(**p)},
    "fault": _fault,
    "faults/clear": _clear_faults,
    "poison": _poison,
    "rate_limit": _rate_limit,
    "latency": _latency,
    "log": lambda sim, p: {"mutations": sim.mutation_log},
    "log/reset": lambda sim, p: {"mutations": sim.reset_log()},
    "requests": lambda sim, p: {"count": len(sim.request_log), "requests": sim.request_log},
    "requests/reset": _reset_requests,
    "dossiers": lambda sim, p: {"numbers": sim.create_dossiers(**p)},
    "message": _message,
    "scan": _scan,
    "champ": lambda sim, p: {"string_value": sim.edit_champ(**p).string_value},
    "annotation": lambda sim, p: {"string_value": sim.ui_annotation(**p).string_value},
    "state": lambda sim, p: _dossier(sim.ui_state(**p)),
    "archive": lambda sim, p: _dossier(sim.archive(**p)),
    "hide": lambda sim, p: _dossier(sim.hide(**p)),
    "restore": lambda sim, p: _dossier(sim.restore(**p)),
    "purge": _purge,
    "touch": _touch,
    "world": _world,
    "served": _served,
    "served/reset": _served_reset,
    "planted": _planted,
    "refuse": _refuse,
    "revision": lambda sim, p: {"revision": sim.publish_revision(**p)},
    "renewal/truth": _renewal_truth,
    "renewal/late": _renewal_late,
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
