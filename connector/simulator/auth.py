"""Who may call, and how often: DS's token checks (docs/ds-api.md §2.3) and Rack::Attack's limit (§3)."""

from __future__ import annotations

import re
from typing import Any

from connector.simulator.state import Token, World

_SCHEME = re.compile(r"(Token|Bearer)\s+")
_DELIMITERS = re.compile(r"[,;\t]")

# Rack::Attack's throttled_responder body (config/initializers/rack_attack.rb).
CALM_DOWN = (
    "Calme toi, cowboy ! T'enchaines un peu trop les requêtes. Respire un peu réessaie dans un petit moment.\n"
    "Calm down, cowboy! You're making too many requests. Take a breather and try again soon.\n"
)
WINDOW = 60  # seconds: 'period: 1.minute', a fixed window aligned on the epoch minute


def error_body(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """DS's controller-level error answer."""
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}], "data": None}


class AuthFailure(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status = status
        self.body = error_body(message, code)


def bearer_token(header: str | None) -> str | None:
    """Rails' ``authenticate_with_http_token``: ``Bearer <t>``, ``Bearer token=<t>``, ``Token token="<t>"``."""
    m = _SCHEME.match(header or "")
    if not m:
        return None
    params = [p.strip() for p in _DELIMITERS.split(header[m.end():]) if p.strip()]  # type: ignore[index]
    if not params:
        return None
    first = params[0] if params[0].startswith("token=") else f"token={params[0]}"
    value = first.split("=", 1)[1]
    value = value[1:] if value.startswith('"') else value
    value = value[:-1] if value.endswith('"') else value
    return value or None


def authenticate(world: World, header: str | None) -> Token:
    """The token a request may use, or :class:`AuthFailure` with DS's status and body."""
    secret = bearer_token(header)
    token = world.tokens.get(secret) if secret else None
    if token is None or token.revoked:
        raise AuthFailure(403, "Without a token, only persisted queries are allowed", "forbidden")
    if token.expired:
        raise AuthFailure(401, "Token expired", "unauthorized")
    return token


class RateLimiter:
    """Per raw Authorization header, per epoch minute; every request counts, throttled ones too."""

    def __init__(self, limit: int):
        self.limit = limit  # 0: off
        self._window = -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str, now: float) -> int | None:
        """Count one request; the window's end (epoch seconds) when it is over the limit, else None."""
        if not self.limit:
            return None
        window = int(now) // WINDOW
        if window != self._window:
            self._window, self._counts = window, {}
        count = self._counts[key] = self._counts.get(key, 0) + 1
        return (window + 1) * WINDOW if count > self.limit else None
