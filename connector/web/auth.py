"""Who may see the web view: accounts, signed session cookies, CSRF tokens, the login throttle.

- **Accounts** live in ``web-users`` beside the config file (mode 0600), one ``name:hash`` a line, the
  hash ``scrypt$n$r$p$salt$key`` (``hashlib.scrypt``, 16-byte random salt, base64). Written only by
  ``ds-connector serve --add-user NAME``.
- **The secret key** (``web-secret``, 32 random bytes in hex, mode 0600, beside the accounts file) signs
  the session cookies and the CSRF tokens with HMAC-SHA256. Under systemd both files are handed over as
  credentials (``LoadCredential=``): they are read from ``$CREDENTIALS_DIRECTORY`` first.
- **Sessions** are signed cookies ``payload.signature`` (payload: user, expiry, CSRF token); nothing is
  stored server-side. Changing the secret logs everybody out.
- **The throttle**: after :data:`FREE_FAILURES` failed logins for one (user, address) pair, that pair
  is refused for ``LOCK_BASE_SECONDS * 2**(failures - FREE_FAILURES)`` seconds (capped at
  :data:`LOCK_MAX_SECONDS`), even with the right password; a success clears it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from connector.errors import ConfigError, ConnectorError

USERS_FILE = "web-users"
SECRET_FILE = "web-secret"
SESSION_SECONDS = 8 * 3600
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
FREE_FAILURES = 5
LOCK_BASE_SECONDS = 30.0
LOCK_MAX_SECONDS = 3600.0
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- passwords and the accounts file -------------------------------------------------------------


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(_unb64(key)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(key))


# A hash to check against when the user does not exist: the answer takes as long either way.
_DUMMY = hash_password("not a password", b"0123456789abcdef")


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and set(name) <= NAME_CHARS


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 from the start."""
    tmp = path.with_name(path.name + ".part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConnectorError(f"cannot write {path}: {exc.strerror}") from None


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:o}): chmod 600 {path}")


def read_users(path: Path) -> dict[str, str]:
    """name -> hash; an absent file is no account. Refused if group or others may read it."""
    try:
        _check_private(path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not valid_name(name) or not stored.startswith("scrypt$"):
            raise ConfigError(f"{path} line {number}: expected NAME:scrypt$…, as `ds-connector serve --add-user` "
                              "writes it")
        users[name] = stored
    return users


def set_user(path: Path, name: str, password: str) -> bool:
    """Add the account, or change its password; True if it is new. Keeps the other lines."""
    if not valid_name(name):
        raise ConnectorError(f"invalid user name {name!r}: letters, digits and . _ @ - only (at most 64)")
    users = read_users(path)
    new = name not in users
    users[name] = hash_password(password)
    _write_private(path, "".join(f"{n}:{h}\n" for n, h in users.items()))
    return new


def ensure_secret(path: Path) -> None:
    """Create the secret key file if it does not exist (32 random bytes, mode 0600)."""
    if not path.exists():
        _write_private(path, secrets.token_hex(32) + "\n")


def read_secret(path: Path) -> bytes:
    try:
        _check_private(path)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"no secret key at {path}: create it with `ds-connector serve --add-user NAME` "
                          "(or `--init`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
    if len(text) < 32:
        raise ConfigError(f"{path}: the secret key is too short (delete it and run `ds-connector serve --init`)")
    return text.encode()


@dataclass(frozen=True)
class AuthFiles:
    users: Path
    secret: Path

    @classmethod
    def beside(cls, config_path: Path, environ: dict[str, str] | None = None) -> AuthFiles:
        """The files systemd handed over (``$CREDENTIALS_DIRECTORY``), else those beside the config."""
        environ = os.environ if environ is None else environ
        home = config_path.parent
        creds = environ.get("CREDENTIALS_DIRECTORY")
        users, secret = home / USERS_FILE, home / SECRET_FILE
        if creds:
            if (Path(creds) / USERS_FILE).is_file():
                users = Path(creds) / USERS_FILE
            if (Path(creds) / SECRET_FILE).is_file():
                secret = Path(creds) / SECRET_FILE
        return cls(users, secret)


# --- signed values -------------------------------------------------------------------------------


class Signer:
    def __init__(self, key: bytes):
        self.key = key

    def sign(self, purpose: str, payload: dict) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self.key, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def unsign(self, purpose: str, value: str | None) -> dict | None:
        """The payload if the signature matches (and ``exp``, when present, is in the future)."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        want = hmac.new(self.key, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(mac)):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(payload, dict):
            return None
        if "exp" in payload and not (isinstance(payload["exp"], int | float) and payload["exp"] > time.time()):
            return None
        return payload

    def token(self, purpose: str, nonce: str) -> str:
        """A CSRF token bound to ``nonce`` (the pre-login cookie, or the session's own)."""
        return _b64(hmac.new(self.key, f"csrf.{purpose}.{nonce}".encode(), hashlib.sha256).digest())

    def check_token(self, purpose: str, nonce: str | None, token: str | None) -> bool:
        return bool(nonce and token) and hmac.compare_digest(self.token(purpose, nonce), token)


def new_session(signer: Signer, user: str, how: str) -> str:
    return signer.sign("session", {"u": user, "how": how, "c": secrets.token_urlsafe(16),
                                   "exp": int(time.time()) + SESSION_SECONDS})


# --- the login throttle --------------------------------------------------------------------------


class Throttle:
    """Failed logins per (user, address); see the module docstring. In memory: a restart forgets."""

    def __init__(self, clock=time.monotonic, max_entries: int = 10_000):
        self.clock = clock
        self.max_entries = max_entries
        self.failures: dict[tuple[str, str], tuple[int, float]] = {}  # key -> (failures, locked until)

    def wait(self, user: str, address: str) -> float:
        """Seconds before this pair may try again (0: now)."""
        _, until = self.failures.get((user, address), (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, user: str, address: str) -> tuple[int, float]:
        """Count a failure; (failures so far, seconds the pair is now locked for)."""
        if len(self.failures) >= self.max_entries:  # a flood of names: forget the oldest half
            for key in list(self.failures)[: self.max_entries // 2]:
                del self.failures[key]
        count = self.failures.get((user, address), (0, 0.0))[0] + 1
        lock = 0.0
        if count >= FREE_FAILURES:
            lock = min(LOCK_MAX_SECONDS, LOCK_BASE_SECONDS * 2 ** (count - FREE_FAILURES))
        self.failures[(user, address)] = (count, self.clock() + lock)
        return count, lock

    def succeeded(self, user: str, address: str) -> None:
        self.failures.pop((user, address), None)


def check_login(users: dict[str, str], name: str, password: str) -> bool:
    stored = users.get(name)
    ok = verify_password(password, stored or _DUMMY)
    return ok and stored is not None
