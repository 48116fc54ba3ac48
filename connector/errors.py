"""Errors meant for humans: a one-line message (or a list of problems), an exit code, no traceback.

Anything that is not a ConnectorError is a bug and is logged with its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

# sysexits.h
EX_OK = 0
EX_DATAERR = 65  # a run stored all it could, but some dossiers were quarantined or files failed: "partial"
EX_SOFTWARE = 70
EX_CANTCREAT = 73  # a downloaded file could not be written here (disk full, permission, name refused)
EX_IOERR = 74  # the machine refused a write to the database or state directory (disk full, read-only, permission)
EX_TEMPFAIL = 75  # another instance holds the lock: try again later
EX_CONFIG = 78  # bad config, missing credential, revoked or expired token: systemd must not restart


class ConnectorError(Exception):
    """Base of every error shown to an operator without a traceback."""

    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class ConfigError(ConnectorError):
    """The configuration file is missing, unreadable or invalid (every problem listed)."""

    exit_code = EX_CONFIG


class CredentialError(ConnectorError):
    """The API token cannot be found or read safely."""

    exit_code = EX_CONFIG


class LockHeld(ConnectorError):
    """Another sync or the daemon holds the single-instance lock."""

    exit_code = EX_TEMPFAIL


class ApiError(ConnectorError):
    """The DS API answered something the connector cannot go on with."""


class AuthError(ApiError):
    """Permanent authentication or authorisation failure: retrying cannot help."""

    exit_code = EX_CONFIG


class BadToken(AuthError):
    """403 forbidden: no, malformed, unknown or revoked token, or a forbidden network."""


class TokenExpired(AuthError):
    """401: the token was valid but has expired."""


class DemarcheUnauthorized(AuthError):
    """200 + unauthorized on demarche: the token does not cover this démarche."""


class DemarcheNotFound(AuthError):
    """200 + not_found on demarche: no such démarche number."""


class RedirectRefused(ConfigError):
    """The endpoint answered a 3xx: the configured URL is wrong (a redirected POST becomes a GET)."""


class InvalidQuery(ConnectorError):
    """A query document does not validate against the vendored DS schema: a bug, nothing was sent."""

    exit_code = EX_SOFTWARE


class RateLimited(ApiError):
    """429: the token's per-minute limit is spent; ``delay`` seconds until the next request may go."""

    exit_code = EX_TEMPFAIL  # transient: a later run will do

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay


class ApiUnavailable(ApiError):
    """DS could not be reached or its answer was cut off (network error, HTTP timeout, truncated body)."""

    exit_code = EX_TEMPFAIL  # transient: a later run will do


class DsUnreachable(ApiUnavailable):
    """No connection to DS at all: connection refused, a name that does not resolve, a TLS failure.

    Retried briefly (a restarting proxy), then the whole run stops with one line naming the URL: a
    wrong ``[ds] url`` or a blocked network does not heal in minutes. Not raised for timeouts, 429
    or 5xx, which keep the long retry.
    """


class PageFailed(ApiError):
    """DS answered but could not serve the request: HTTP 5xx, GraphQL ``timeout``, ``invalid_null``.

    ``data`` holds whatever partial data came back. The sync engine commits nothing, shrinks its page
    and tries again (docs/ds-api.md rule 10).
    """

    exit_code = EX_TEMPFAIL  # transient: a later run will do

    def __init__(
        self,
        message: str,
        *,
        codes: list[str],
        errors: list[dict],
        data: dict | None = None,
        status: int | None = None,
        exception_id: str | None = None,
    ):
        super().__init__(message)
        self.codes = codes
        self.errors = errors
        self.data = data
        self.status = status
        self.exception_id = exception_id


class MutationNotSent(ApiError):
    """The mutation certainly did not run (refused before DS executed it): safe to send later.

    ``delay`` is set when DS asked to wait (429).
    """

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class MutationOutcomeUnknown(ApiError):
    """The mutation reached DS but no clear answer came back: it may or may not have run.

    Never resend blindly: read the dossier back first (docs/operations.md §5).
    """


class Stopped(Exception):
    """The run was asked to stop (SIGTERM): raised after a commit, between two requests, or instead
    of a read whose turn came after the stop (``DsClient.query(go_on=...)``). Not an error: what was
    committed stays, the run reports "stopped"."""


class MachineFault(ConnectorError):
    """The machine refused a write or a read the connector needs: disk full, read-only file system,
    permission refused, I/O error. Nothing is lost (every page commits whole); the run stopped."""

    exit_code = EX_IOERR


_SQLITE_FAULTS = (  # sqlite3's messages for the codes that are the machine's, not ours
    ("database or disk is full", "the disk is full", "free space there (or move [database] path)"),
    ("attempt to write a readonly database", "it is read-only (read-only file system or file mode)",
     "make it writable by the user running ds-connector"),
    ("unable to open database file", "it cannot be opened (a missing directory or a permission refused)",
     "check that the user running ds-connector may write its directory"),
    ("disk i/o error", "an I/O error occurred (a full or failing disk)", "check the disk (dmesg, df)"),
    ("readonly database", "it is read-only", "make it writable by the user running ds-connector"),
)
_OS_FAULTS = {
    errno.ENOSPC: ("the disk is full", "free space there"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "remount it read-write or move the path"),
    errno.EACCES: ("permission refused", "run as the service user (runuser -u ds-connector -- ...) "
                   "or give that user the directory"),
    errno.EPERM: ("operation not permitted", "run as the service user or give that user the directory"),
    errno.EIO: ("an I/O error occurred", "check the disk (dmesg, df)"),
}
_AFTER = "nothing was lost: the next sync goes on from the last page stored"


def machine_fault(exc: BaseException, database: Path | str | None = None) -> MachineFault | None:
    """The one-line error for a fault of the machine (``exc`` or any exception in its chain), or None
    if ``exc`` is not one (then it is a bug). ``database``: the path an sqlite3 error is about."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            text = str(current).lower()
            for needle, what, todo in _SQLITE_FAULTS:
                if needle in text:
                    where = f"the database {database}" if database else "the database"
                    return MachineFault(f"cannot write {where}: {what}; {todo} ({_AFTER})")
        elif isinstance(current, OSError) and current.errno in _OS_FAULTS:
            what, todo = _OS_FAULTS[current.errno]
            where = current.filename if current.filename is not None else database
            verb = "cannot use" if current.errno in (errno.EACCES, errno.EPERM) else "cannot write"  # reads too
            return MachineFault(f"{verb} {where or 'a file'}: {what}; {todo} ({_AFTER})")
        current = current.__cause__ or current.__context__
    return None
