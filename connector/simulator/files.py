"""File URLs valid one hour, on the host that was called (docs/ds-api.md §7), and the bytes behind them.

A URL carries its expiry (simulated DS clock, epoch seconds) and an HMAC of key and expiry under
a per-app secret, like object storage temporary URLs; a bad signature or a past expiry is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import quote

from connector.simulator.state import Champ, StoredFile, World

URL_LIFETIME = 3600
PREFIX = "/storage/"


def signature(secret: bytes, key: str, expires: int) -> str:
    return hmac.new(secret, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()[:40]


def file_url(secret: bytes, base_url: str, key: str, filename: str, now: datetime) -> str:
    expires = int(now.timestamp()) + URL_LIFETIME
    return (f"{base_url}{PREFIX}{key}/{quote(filename)}"
            f"?temp_url_expires={expires}&temp_url_sig={signature(secret, key, expires)}")


def valid(secret: bytes, key: str, expires: str, sig: str, now: datetime) -> bool:
    if not expires.isdigit() or int(expires) < now.timestamp():
        return False
    return hmac.compare_digest(sig, signature(secret, key, int(expires)))


def _champ_files(champs: list[Champ]) -> Iterator[StoredFile]:
    for champ in champs:
        yield from champ.files
        for row in champ.rows:
            yield from _champ_files(row.champs)


def all_files(world: World) -> Iterator[StoredFile]:
    """Every stored file of the world's dossiers: champs, annotations, messages, attestations."""
    for d in world.dossiers.values():
        yield from _champ_files(d.champs)
        yield from _champ_files(d.annotations)
        for m in d.messages:
            yield from m.attachments
        if d.attestation is not None:
            yield d.attestation
