"""The DS API token: found, read safely, never shown.

Lookup order (docs/operations.md §2): ``$CREDENTIALS_DIRECTORY/ds-api-token`` (systemd ``LoadCredential=``), then
the config's ``[ds] token_file`` (refused if group or others have any access), then ``$DS_API_TOKEN``
(development only, logged as a warning). A place that holds a token we cannot use is an error: the
lookup never falls through past a broken token file to a weaker source.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from connector.config import Config
from connector.errors import CredentialError
from connector.logs import get_logger

CREDENTIAL_NAME = "ds-api-token"
ENV_VAR = "DS_API_TOKEN"
HOW = (
    f"put the token in /etc/ds-connector/{CREDENTIAL_NAME} (root:root, mode 0600) with "
    f"LoadCredential={CREDENTIAL_NAME}:/etc/ds-connector/{CREDENTIAL_NAME} in the unit, "
    "or name a mode 0600 file in [ds] token_file"
)

log = get_logger(__name__)


class ApiToken:
    """The secret behind the Authorization header; ``repr``/``str`` never show it."""

    __slots__ = ("_secret", "source")

    def __init__(self, secret: str, source: str):
        self._secret = secret
        self.source = source  # where it was found, for check-config and logs

    def reveal(self) -> str:
        return self._secret

    def __repr__(self) -> str:
        return "ApiToken(***)"

    __str__ = __repr__


def _validated(value: str, where: str) -> str:
    """The token without one trailing newline; refused if empty or not a single printable word."""
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise CredentialError(f"the API token in {where} is empty")
    if not all("!" <= c <= "~" for c in value):
        raise CredentialError(
            f"the API token in {where} contains spaces, several lines or non-ASCII characters; "
            "a DS token is one line of base64"
        )
    return value


def _read(path: Path, where: str, private: bool) -> str:
    """Read a token file; FileNotFoundError passes through, every other failure is a CredentialError."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise CredentialError(f"{where} is not a regular file")
            if private and mode & 0o077:
                raise CredentialError(
                    f"{where} is open to group or others (mode {stat.S_IMODE(mode):04o}); "
                    f"run: chmod 600 {path}"
                )
            data = f.read()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CredentialError(f"{where} is a directory, not a file") from None
    except OSError as exc:
        raise CredentialError(f"cannot read {where}: {exc.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CredentialError(f"the API token in {where} is not ASCII text") from None
    return _validated(text, where)


def load_token(config: Config, environ: Mapping[str, str] = os.environ) -> ApiToken:
    """Find the API token (see the module docstring); CredentialError (exit 78) explains each step."""
    tried = []
    if directory := environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(directory) / CREDENTIAL_NAME
        where = f"the credentials directory ({path})"
        try:
            return ApiToken(_read(path, where, private=False), where)
        except FileNotFoundError:
            tried.append(f"$CREDENTIALS_DIRECTORY ({directory}) holds no {CREDENTIAL_NAME}")
    else:
        tried.append("$CREDENTIALS_DIRECTORY is not set (systemd sets it for LoadCredential=)")

    if (path := config.ds.token_file) is not None:
        where = f"token file {path}"
        try:
            return ApiToken(_read(path, where, private=True), where)
        except FileNotFoundError:
            raise CredentialError(f"{where} (from [ds] token_file) does not exist") from None
    tried.append("[ds] token_file is not set")

    if (value := environ.get(ENV_VAR)) is not None:
        token = ApiToken(_validated(value, f"${ENV_VAR}"), f"${ENV_VAR} (development only)")
        log.warning("credentials.env_token", variable=ENV_VAR, hint="development only: use LoadCredential= or [ds] token_file")
        return token
    tried.append(f"${ENV_VAR} is not set")
    raise CredentialError("no DS API token found", [*tried, HOW])
