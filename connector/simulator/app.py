"""The DS API simulator as an aiohttp app: ``POST /api/v2/graphql`` answered as DS answers it.

:func:`create_app` serves a :class:`~connector.simulator.state.World`. Its :class:`~connector.simulator.core.Simulator`
(``app["sim"]``) holds the world, the caches, the fault queue and the mutation log; the control
surface (``/_sim/``, see ``control.py``) and in-process tests act on the world through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import warnings
from typing import Any
from wsgiref.handlers import format_date_time

from aiohttp import hdrs, web

from connector.simulator import files
from connector.simulator.auth import CALM_DOWN, AuthFailure, authenticate, error_body
from connector.simulator.control import add_routes
from connector.simulator.core import Simulator
from connector.simulator.faults import Fault
from connector.simulator.state import (
    World,
    file_content,
)

GRAPHQL_PATH = "/api/v2/graphql"
log = logging.getLogger("connector.simulator")


# --- HTTP ------------------------------------------------------------------------------------


class _Untyped(web.Response):
    """A response without Content-Type, as Rack::Attack's 429 (aiohttp would add octet-stream)."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self._headers.popall(hdrs.CONTENT_TYPE, None)


def too_many_requests(reset: int) -> web.Response:
    return _Untyped(status=429, body=CALM_DOWN.encode(),
                    headers={"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)})


def to_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=to_json(body),
                        content_type="application/json", charset="utf-8")


NOT_FOUND_PAGE = ("<!DOCTYPE html><html><head><title>Page non trouvée</title></head><body>"
                  "<h1>La page que vous demandez n’existe pas</h1></body></html>")


@web.middleware
async def rack(request: web.Request, handler: Any) -> web.StreamResponse:
    """Rack's layer: Rack::Attack's throttle, and Rails' 404 for whatever is not routed."""
    sim: Simulator = request.app["sim"]
    header = request.headers.get(hdrs.AUTHORIZATION)
    if request.method == "POST" and request.path.startswith(GRAPHQL_PATH) and header is not None:
        reset = sim.limiter.hit(header, time.time())
        if reset is not None:
            return too_many_requests(reset)
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        response = web.Response(status=404, text=NOT_FOUND_PAGE, content_type="text/html")
    if not response.prepared:  # the Date header tells DS's clock (the simulator's, once moved)
        response.headers[hdrs.DATE] = format_date_time(sim.now().timestamp())
    return response


async def graphql(request: web.Request) -> web.StreamResponse:
    sim: Simulator = request.app["sim"]
    raw = await request.read()
    if sim.latency > 0:  # DS's own server time; each request waits on its own, concurrently
        await asyncio.sleep(sim.latency)
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return json_response(400, error_body(str(exc), "bad_request"))
    if not isinstance(payload, dict):  # Rails files a JSON array under params[:_json]
        payload = {}
    name = payload.get("operationName")
    variables = payload.get("variables")
    sim.request_log.append({"at": time.time(), "operation": name if isinstance(name, str) else None,
                            "demarche": variables.get("demarcheNumber") if isinstance(variables, dict) else None})
    fault = sim.faults.take(name if isinstance(name, str) else None,
                            variables.get("demarcheNumber") if isinstance(variables, dict) else None)
    if fault is not None:
        early = await _fault_answer(request, fault)
        if early is not None:
            return early
    try:
        token = authenticate(sim.world, request.headers.get(hdrs.AUTHORIZATION))
    except AuthFailure as failure:
        return json_response(failure.status, failure.body)
    status, body = sim.execute(payload, token, f"{request.scheme}://{request.host}", fault)
    if fault is not None and fault.kind == "truncate":
        return await _truncated(request, to_json(body))
    response = json_response(status, body)
    if fault is not None and fault.kind == "modify":
        sim.modify_after_page(fault)
    return response


async def _fault_answer(request: web.Request, fault: Fault) -> web.StreamResponse | None:
    """What a fault answers in place of DS, or None to carry on (after a ``slow`` delay)."""
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
    elif fault.kind == "rate_limit":
        return too_many_requests((int(time.time()) // 60 + 1) * 60)
    elif fault.kind == "http_error" and fault.status == 500:
        return json_response(500, error_body("Internal Server Error", "internal_server_error",
                                             exception_id=str(uuid.uuid4())))
    elif fault.kind == "http_error":
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}[fault.status]
        return web.Response(status=fault.status, content_type="text/html",
                            text=f"<html><body><h1>{fault.status} {reason}</h1></body></html>")
    elif fault.kind == "reset":
        assert request.transport is not None
        request.transport.abort()  # type: ignore[attr-defined]
        return web.Response()  # never sent
    return None


async def _truncated(request: web.Request, data: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "application/json; charset=utf-8"})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    assert request.transport is not None
    request.transport.close()
    return response


async def stored_file(request: web.Request) -> web.StreamResponse:
    """GET on a file URL: the exact bytes while the URL is valid, 403 once expired or forged."""
    sim: Simulator = request.app["sim"]
    sim.files_served += 1
    key = request.match_info["key"]
    q = request.query
    if not files.valid(sim.file_secret, key, q.get("temp_url_expires", ""), q.get("temp_url_sig", ""), sim.now()):
        return web.Response(status=403, text="403 Forbidden: temporary URL invalid or expired")
    f = sim.find_file(key)
    if f is None:
        return web.Response(status=404, text="404 Not Found")
    return web.Response(body=file_content(f.key, f.size, f.content_type), content_type=f.content_type)


def create_app(world: World, *, rate_limit: int = 400, control: bool = True,
               latency: float = 0.0) -> web.Application:
    """The simulator app serving ``world``; ``rate_limit`` requests per token and epoch minute (0: off);
    ``latency`` seconds of server time before every GraphQL answer (each request its own, concurrently)."""
    if latency < 0:
        raise ValueError(f"latency must be 0 or more seconds, not {latency}")
    app = web.Application(middlewares=[rack], client_max_size=16 * 1024 * 1024)
    with warnings.catch_warnings():  # app["sim"] is the documented way in
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["sim"] = Simulator(world, rate_limit=rate_limit, latency=latency)
    app.router.add_post(GRAPHQL_PATH, graphql)
    app.router.add_get(files.PREFIX + "{key}/{filename}", stored_file)
    if control:
        add_routes(app)
    return app
