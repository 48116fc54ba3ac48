"""Which documents have already been validated against the vendored schema, kept across runs.

Building DS's schema and validating a document takes about a quarter of a second: a third of a sync
with nothing new. The verdict depends only on the schema's text, graphql-core's version and the
document's text, so a document validated once need not be validated again: its key (SHA-256 of the
three) goes into ``<state_dir>/validated-queries``, one key a line. A document whose key is not
there (a new version, an edited query, a changed schema) is validated before it is first sent.
The file is only a cache: unreadable, unwritable or deleted, every document is validated again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import graphql

from connector import schema
from connector.logs import get_logger

log = get_logger(__name__)

FILE_NAME = "validated-queries"
MAX_KEYS = 500  # a few per operation and version: older ones go first


@lru_cache(maxsize=1)
def _schema_key() -> str:
    return hashlib.sha256(f"{graphql.version}\n{schema.sdl()}".encode()).hexdigest()


def key(text: str) -> str:
    """The verdict's key of one printed document."""
    return hashlib.sha256(f"{_schema_key()}\n{text}".encode()).hexdigest()


class Verdicts:
    """The validated keys of ``path`` (None: nothing is kept, every document is validated)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._keys: list[str] | None = None

    def _load(self) -> list[str]:
        if self._keys is None:
            self._keys = []
            if self.path is not None:
                try:
                    self._keys = [k for k in self.path.read_text(encoding="ascii").split() if len(k) == 64]
                except (OSError, UnicodeDecodeError):
                    pass
        return self._keys

    def known(self, text: str) -> bool:
        return key(text) in self._load()

    def remember(self, text: str) -> None:
        keys = self._load()
        keys.append(key(text))
        del keys[:-MAX_KEYS]
        if self.path is None:
            return
        try:  # whole or not at all: a temporary file renamed over the old one
            fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write("\n".join(keys) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("api.verdict_not_kept", path=str(self.path), error=str(exc))
