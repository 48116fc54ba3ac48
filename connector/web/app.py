"""The instructeurs' web view: a small aiohttp + Jinja2 application, read-only on the mirror.

Every request but ``/healthz``, ``/login`` and ``/static/`` needs a user: a signed session cookie
(``auth.py``), or the ``[web] user_header`` when the request comes from one of ``[web]
trusted_proxies``. Pages read the mirror through ``open_db_readonly`` (``mode=ro`` + ``query_only``,
one read transaction a page: a WAL snapshot, so the daemon's writes neither block nor are blocked), in
a worker thread; they never load the API token and never talk to DS. The campaign's headline figures
are :func:`connector.status.gather`'s, the same as ``ds-connector status --json``.

Every answer carries a strict CSP (``default-src 'self'``, no inline script or style), refuses framing,
and is ``Cache-Control: no-store`` (static files excepted: they hold no personal data).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from aiohttp import web

from connector.config import Config
from connector.errors import ConnectorError
from connector.forms import exports
from connector.logs import get_logger
from connector.status import CONVENTION_SOON_DAYS, ds_today, gather
from connector.store import open_db_readonly
from connector.store import web as q
from connector.store.runs import last_ds_clock
from connector.web import labels
from connector.web.auth import (SESSION_SECONDS, AuthFiles, Signer, Throttle, check_login, new_session, read_secret,
                                 read_users)

log = get_logger("connector.web")

HERE = Path(__file__).parent
SESSION_COOKIE = "dsc_session"
PRE_COOKIE = "dsc_login"  # the pre-login nonce the login form's CSRF token is bound to
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/healthz", "/login", "/favicon.ico")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

CONFIG_KEY = web.AppKey("config", Config)
SIGNER_KEY = web.AppKey("signer", Signer)
THROTTLE_KEY = web.AppKey("throttle", Throttle)
FILES_KEY = web.AppKey("files", AuthFiles)
JINJA_KEY = web.AppKey("jinja", jinja2.Environment)
# Typed request storage where aiohttp has it (3.12+), plain names before.
_request_key = getattr(web, "RequestKey", lambda name, _type: name)
USER = _request_key("user", str)
HOW = _request_key("how", str)
SESSION = _request_key("session", dict)


# --- helpers -------------------------------------------------------------------------------------


async def _read(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(db, *args)`` on a read-only connection in a worker thread, inside one read transaction."""
    config = request.app[CONFIG_KEY]

    def work() -> Any:
        db = open_db_readonly(config.database.path)
        try:
            with db.conn:
                db.execute("BEGIN")
                return fn(db, *args)
        finally:
            db.close()

    try:
        return await asyncio.to_thread(work)
    except ConnectorError as exc:
        log.error("web.database_unreadable", error=exc.message)
        raise web.HTTPServiceUnavailable(text="La base de données est illisible : voir le journal du service.")


def _render(request: web.Request, template: str, http_status: int = 200, **context: Any) -> web.Response:
    env = request.app[JINJA_KEY]
    user = request.get(USER)
    session = request.get(SESSION) or {}
    signer = request.app[SIGNER_KEY]
    html = env.get_template(template).render(
        request=request, user=user, labels=labels,
        logout_token=signer.token("logout", session["c"]) if session.get("c") else None,
        **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=http_status)


def _peer(request: web.Request) -> str:
    return request.transport.get_extra_info("peername")[0] if request.transport else "?"


def _trusted_proxy(request: web.Request) -> bool:
    proxies = request.app[CONFIG_KEY].web.trusted_proxies
    if not proxies:
        return False
    try:
        return str(ipaddress.ip_address(_peer(request))) in proxies
    except ValueError:
        return False


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or the last X-Forwarded-For hop when the peer is a trusted proxy."""
    if _trusted_proxy(request):
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return _peer(request)


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, no ``//``) may follow a login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        secure=request.app[CONFIG_KEY].web.secure_cookies, samesite="Strict")


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def ds_dossier_url(config: Config, demarche: int, number: int) -> str:
    """The dossier's page for instructeurs on DS (same host as the API)."""
    parts = urlsplit(config.ds.url)
    return f"{parts.scheme}://{parts.netloc}/procedures/{demarche}/dossiers/{number}"


# --- middlewares ---------------------------------------------------------------------------------


@web.middleware
async def security_headers(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _headers(request, response)
        raise
    _headers(request, response)
    return response


def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Server"] = "ds-connector"
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "public, max-age=3600"
    else:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"


@web.middleware
async def require_user(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Identify the user (proxy header or session cookie); anonymous requests go to the login page."""
    config = request.app[CONFIG_KEY]
    header = config.web.user_header
    if header in request.headers:
        if _trusted_proxy(request) and request.headers[header].strip():
            request[USER] = request.headers[header].strip()
            request[HOW] = "proxy"
        else:
            log.warning("web.user_header_ignored", address=_peer(request), header=header)
    if USER not in request:
        session = request.app[SIGNER_KEY].unsign("session", request.cookies.get(SESSION_COOKIE))
        if session and isinstance(session.get("u"), str):
            request[USER], request[HOW], request[SESSION] = session["u"], "password", session
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    if USER not in request:
        target = request.path_qs if request.method == "GET" else "/"
        raise web.HTTPFound("/login?" + urlencode({"next": target}))
    return await handler(request)


# --- public pages --------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """200 "ok" when the mirror opens read-only, 503 otherwise; nothing personal, no login."""
    config = request.app[CONFIG_KEY]

    def probe() -> bool:
        try:
            open_db_readonly(config.database.path).close()
            return True
        except ConnectorError:
            return False

    ok = await asyncio.to_thread(probe)
    return web.Response(text="ok\n" if ok else "database unreadable\n", status=200 if ok else 503)


async def no_favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _login_form(request: web.Request, status: int = 200, error: str | None = None, name: str = "",
                target: str | None = None) -> web.Response:
    nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(16)
    response = _render(request, "login.html", http_status=status, error=error, name=name,
                       next=_safe_next(target if target is not None else request.query.get("next")),
                       csrf=request.app[SIGNER_KEY].token("login", nonce),
                       has_accounts=bool(_users(request)))
    _set_cookie(request, response, PRE_COOKIE, nonce, None)
    return response


def _users(request: web.Request) -> dict[str, str]:
    try:
        return read_users(request.app[FILES_KEY].users)
    except ConnectorError as exc:
        log.error("web.accounts_unreadable", error=exc.message)
        return {}


async def login_page(request: web.Request) -> web.Response:
    if USER in request:
        raise web.HTTPFound(_safe_next(request.query.get("next")))
    return _login_form(request)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    name = str(form.get("user", "")).strip()[:64]
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    signer, throttle = request.app[SIGNER_KEY], request.app[THROTTLE_KEY]
    address = client_address(request)
    if not signer.check_token("login", request.cookies.get(PRE_COOKIE), str(form.get("csrf", ""))):
        log.warning("web.login.csrf_refused", user=name, address=address)
        return _login_form(request, 400, "Le formulaire a expiré : veuillez réessayer.", name, target)
    wait = throttle.wait(name, address)
    if wait > 0:
        log.warning("web.login.throttled", user=name, address=address, wait_seconds=round(wait))
        return _login_form(request, 429, f"Trop d'échecs de connexion : réessayez dans {int(wait) + 1} s.", name,
                           target)
    users = _users(request)
    if not await asyncio.to_thread(check_login, users, name, password):
        failures, lock = throttle.failed(name, address)
        log.warning("web.login.failed", user=name, address=address, failures=failures, locked_seconds=lock)
        message = "Identifiant ou mot de passe incorrect."
        if lock:
            message += f" Trop d'échecs : nouvel essai possible dans {int(lock)} s."
        return _login_form(request, 401, message, name, target)
    throttle.succeeded(name, address)
    log.info("web.login", user=name, address=address)
    response = web.HTTPSeeOther(target)
    _set_cookie(request, response, SESSION_COOKIE, new_session(signer, name, "password"), SESSION_SECONDS)
    response.del_cookie(PRE_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    form = await request.post()
    session = request.get(SESSION) or {}
    if not request.app[SIGNER_KEY].check_token("logout", session.get("c"), str(form.get("csrf", ""))):
        raise web.HTTPBadRequest(text="Jeton de formulaire invalide.")
    log.info("web.logout", user=request.get(USER))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# --- pages ---------------------------------------------------------------------------------------


def _status(request: web.Request) -> dict[str, Any]:
    return gather(request.app[CONFIG_KEY])


async def index(request: web.Request) -> web.Response:
    status = await asyncio.to_thread(_status, request)
    return _render(request, "index.html", status=status)


def _demarche_number(request: web.Request) -> int:
    number = _int(request.match_info["demarche"])
    if number is None:
        raise web.HTTPNotFound()
    return number


async def campaign(request: web.Request) -> web.Response:
    number = _demarche_number(request)
    status = await asyncio.to_thread(_status, request)
    entry = next((d for d in status["demarches"] if d["number"] == number), None)
    if entry is None:
        raise web.HTTPNotFound(text=f"Démarche {number} inconnue.")
    today = ds_today(status["ds_clock"], datetime.now(timezone.utc))  # the day status's figures count at

    def read(db: Any) -> dict[str, Any]:
        return {
            "conventions": q.convention_counts(db, number),
            "due": q.conventions_due(db, number, today, CONVENTION_SOON_DAYS),
            "actions": q.action_counts(db, number),
            "troubled": q.troubled_actions(db, number),
            "anomalies": q.anomaly_counts(db, number),
            "runs": q.last_runs(db, number),
        }

    extra = await _read(request, read)
    return _render(request, "campaign.html", status=status, d=entry, x=extra, soon_days=CONVENTION_SOON_DAYS,
                   number=number, title=entry["label"] or entry["title"], tab="campaign")


async def list_view(request: web.Request) -> web.Response:
    number = _demarche_number(request)
    name = request.match_info["list"]
    if name not in q.LISTS:
        raise web.HTTPNotFound()
    spec = q.LISTS[name]
    query = request.query
    filters = {f: query[f] for f in spec.filters if query.get(f) in spec.filters[f]}
    sort = query.get("sort") if query.get("sort") in spec.sorts else spec.default_sort
    descending = query.get("dir") == "desc"
    search = query.get("q", "")[:200]
    page_no = _int(query.get("page"), 1) or 1

    def read(db: Any) -> Any:
        titles = q.demarches(db)
        if number not in titles:
            return None
        today = ds_today(last_ds_clock(db), datetime.now(timezone.utc))  # due and days left as status counts
        return titles[number], q.list_page(db, name, number, today=today, search=search, filters=filters, sort=sort,
                                           descending=descending, page=page_no)

    got = await _read(request, read)
    if got is None:
        raise web.HTTPNotFound(text=f"Démarche {number} inconnue.")
    title, page = got

    def link(**change: Any) -> str:
        params = {"q": search, **filters, "sort": sort, "dir": "desc" if descending else "asc", "page": page.page}
        params.update(change)
        kept = {k: v for k, v in params.items() if v not in ("", None)}
        return f"/demarches/{number}/{name}?" + urlencode(kept)

    return _render(request, "list.html", number=number, title=title, name=name, spec=spec, page=page, search=search,
                   filters=filters, sort=sort, descending=descending, link=link, tab=name)


async def dossier_page(request: web.Request) -> web.Response:
    number = _int(request.match_info["number"])
    if number is None:
        raise web.HTTPNotFound()

    def read(db: Any) -> dict[str, Any] | None:
        row = q.dossier(db, number)
        if row is None:
            return None
        return {
            "dossier": row,
            "people": q.role_values(db, number, row["demarche_number"]),
            "ecoles": q.ecoles_of(db, number),
            "anomalies": q.anomalies_of(db, number),
            "convention": q.convention_of(db, number),
            "actions": q.actions_of(db, number),
            "messages": q.messages_of(db, number),
        }

    got = await _read(request, read)
    if got is None:
        raise web.HTTPNotFound(text=f"Dossier {number} absent du miroir.")
    config = request.app[CONFIG_KEY]
    d = got["dossier"]
    return _render(request, "dossier.html", number=d["demarche_number"], title=d["demarche_title"],
                   ds_url=ds_dossier_url(config, d["demarche_number"], number), tab="dossier", **got)


async def exports_page(request: web.Request) -> web.Response:
    titles = await _read(request, q.demarches)
    return _render(request, "exports.html", titles=titles, kinds=exports.KINDS, formats=exports.FORMATS,
                   tab="exports")


CONTENT_TYPES = {"csv": "text/csv", "json": "application/json",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


async def export_download(request: web.Request) -> web.StreamResponse:
    """One export through :mod:`connector.forms.exports` (the same rows and writer as ``ds-connector
    export``), as an attachment; ``?demarche=N`` for one démarche, every démarche otherwise."""
    kind, fmt = request.match_info["kind"], request.match_info["format"]
    if kind not in exports.KINDS or fmt not in exports.FORMATS:
        raise web.HTTPNotFound()
    demarche = _int(request.query.get("demarche"))
    config = request.app[CONFIG_KEY]
    rows = await _read(request, lambda db: exports.rows_of(db, config, kind, [demarche] if demarche else None))
    body = exports.render(kind, rows, fmt)
    data = body.encode("utf-8") if isinstance(body, str) else body
    name = f"{kind}-{demarche}.{fmt}" if demarche else f"{kind}.{fmt}"
    log.info("web.export", user=request.get(USER), kind=kind, format=fmt, demarche=demarche, rows=len(rows))
    return web.Response(body=data, headers={
        "Content-Type": CONTENT_TYPES.get(fmt, "application/octet-stream") + ("; charset=utf-8" if isinstance(body, str)
                                                                               else ""),
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}",
    })


# --- the application -----------------------------------------------------------------------------


@web.middleware
async def error_pages(request: web.Request, handler: Callable) -> web.StreamResponse:
    """404 and 503 in the site's look (for a logged-in user; never a traceback)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (404, 503) and USER in request:
            return _render(request, "error.html", http_status=exc.status, code=exc.status,
                           message=exc.text if exc.text and not exc.text.startswith(str(exc.status)) else None)
        raise


def create_app(config: Config, files: AuthFiles | None = None, throttle: Throttle | None = None) -> web.Application:
    """The application for ``config``. The secret key must exist (``ds-connector serve --add-user``)."""
    files = files or AuthFiles.beside(config.path)
    app = web.Application(middlewares=[security_headers, require_user, error_pages], client_max_size=64 * 1024)
    app[CONFIG_KEY] = config
    app[FILES_KEY] = files
    app[SIGNER_KEY] = Signer(read_secret(files.secret))
    app[THROTTLE_KEY] = throttle or Throttle()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(labels.FILTERS)
    app[JINJA_KEY] = env
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", no_favicon)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", index)
    app.router.add_get("/demarches/{demarche}", campaign)
    app.router.add_get("/demarches/{demarche}/{list}", list_view)
    app.router.add_get("/dossiers/{number}", dossier_page)
    app.router.add_get("/exports", exports_page)
    app.router.add_get("/exports/{kind}.{format}", export_download)
    app.router.add_static("/static/", HERE / "static", follow_symlinks=False)
    return app
