"""Attachment downloads, per the ``[sync] attachments`` policy (NOTES.md §7, rules 16-17).

- Only files DS scanned ``safe`` are fetched; ``pending`` ones wait for a later sync (a finished scan
  does not bump the dossier, so the engine re-reads their dossiers); ``infected`` never.
- Right after the page that listed them: DS file URLs expire after one hour. A URL that answers
  403/404/410 or was seen too long ago makes the engine re-read that dossier for fresh URLs.
- Bytes are checked against ``byteSizeBigInt`` and ``checksum`` (base64 of the MD5 digest), written
  to a temporary file, fsynced and renamed into place; only then is the row marked downloaded.
- The file URL is a pre-signed object-storage URL: the API token is never sent with it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import sqlite_utils

from connector.logs import get_logger
from connector.store import files_to_download, record_file_downloads
from connector.store.mirror import local_paths

log = get_logger(__name__)

URL_LIFETIME = timedelta(minutes=50)  # DS says one hour; keep a margin
EXPIRED_STATUSES = {401, 403, 404, 410}
CHUNK = 1 << 16
OWN_NAME = re.compile(r"^(champ|annotation|message)-[0-9a-f]{12}-")


@dataclass
class DownloadStats:
    downloaded: int = 0
    bytes: int = 0
    failed: int = 0
    pending_scan: int = 0
    expired: list[int] = field(default_factory=list)  # dossiers whose URLs must be re-read


class Downloader:
    def __init__(self, policy: str, directory: Path, *, timeout: float = 120):
        self.policy = policy
        self.directory = directory
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._folders: set[Path] = set()  # directories known to exist
        self._in_flight: set[str] = set()  # file keys being fetched (a dossier listed twice in a pass)

    async def __aenter__(self) -> Downloader:
        if self.policy != "none":
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    def wanted(self, db: sqlite_utils.Database, demarche: int, numbers: set[int] | None = None) -> list[dict]:
        """Rows the policy wants and that are not on disk yet (or failed their checksum)."""
        if self.policy == "none":
            return []
        owner_kind = None if self.policy == "all" else "message"
        return [
            row for row in files_to_download(db, demarche, numbers=numbers, owner_kind=owner_kind)
            if row["virus_scan"] not in ("infected", "integrity_error")
        ]

    async def download(
        self, db: sqlite_utils.Database, rows: list[dict], slots: asyncio.Semaphore | None = None
    ) -> DownloadStats:
        """Fetch the ``safe`` rows whose URL is fresh, ``slots`` at a time, and record them in one
        transaction; report the dossiers whose URLs are stale. A file renamed into place but not
        recorded (a crash between the two) is swept by the next run and fetched again. A row
        already being fetched (by another page's downloads) is left to that fetch."""
        stats = DownloadStats()
        slots = slots or asyncio.Semaphore(1)
        todo = []
        for row in rows:
            if row["virus_scan"] != "safe":
                stats.pending_scan += 1
            elif not row["url"] or _stale(row["url_seen_at"]):
                stats.expired.append(row["dossier_number"])
            elif row["file_key"] not in self._in_flight:
                self._in_flight.add(row["file_key"])
                todo.append(row)

        async def fetch(row: dict) -> str:
            try:
                async with slots:
                    return await self._fetch(row)
            finally:
                self._in_flight.discard(row["file_key"])

        outcomes = await asyncio.gather(*(fetch(row) for row in todo))
        records: list[tuple[str, Path, bool]] = []
        for row, outcome in zip(todo, outcomes):
            if outcome == "expired":
                stats.expired.append(row["dossier_number"])
                continue
            if outcome in ("ok", "mismatch"):
                records.append((row["file_key"], self.target(row), outcome == "ok"))
            if outcome == "ok":
                stats.downloaded += 1
                stats.bytes += int(row["byte_size"] or 0)
            else:
                stats.failed += 1
        for path in record_file_downloads(db, records):
            path.unlink(missing_ok=True)  # the file left its dossier meanwhile
        stats.expired = sorted(set(stats.expired))
        return stats

    def target(self, row: dict) -> Path:
        safe = re.sub(r"[^\w.\- ]", "_", row["filename"]).strip(" .") or "fichier"
        digest = hashlib.sha256(row["file_key"].encode()).hexdigest()[:12]
        return (self.directory / str(row["demarche_number"]) / str(row["dossier_number"])
                / f"{row['owner_kind']}-{digest}-{safe[:120]}")

    async def _fetch(self, row: dict) -> str:
        """Download one file to its place: "ok", "expired" (re-read the dossier), "mismatch"
        (checksum or size wrong: recorded as such, fetched again next time) or "failed"."""
        assert self._session is not None
        path = self.target(row)
        where = {"dossier": row["dossier_number"], "file": row["filename"]}
        try:
            async with self._session.get(row["url"], allow_redirects=False) as response:
                if response.status in EXPIRED_STATUSES:
                    log.info("sync.file_url_expired", status=response.status, **where)
                    return "expired"
                if response.status != 200:
                    log.warning("sync.file_failed", status=response.status, **where)
                    return "failed"
                if path.parent not in self._folders:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._folders.add(path.parent)
                partial = path.with_name(path.name + ".part")
                md5, size = hashlib.md5(), 0
                with open(partial, "wb") as out:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        md5.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                    out.flush()
                    await asyncio.to_thread(os.fsync, out.fileno())  # not on the loop: pages go on
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("sync.file_failed", error=f"{type(exc).__name__}: {exc}", **where)
            return "failed"
        checksum = base64.b64encode(md5.digest()).decode()
        if checksum != row["checksum"] or (row["byte_size"] is not None and size != int(row["byte_size"])):
            partial.unlink(missing_ok=True)
            log.error("sync.file_checksum_mismatch", expected=row["checksum"], got=checksum,
                      expected_size=row["byte_size"], size=size, **where)
            return "mismatch"
        os.replace(partial, path)
        log.debug("sync.file_downloaded", size=size, **where)
        return "ok"


def remove_local(paths: list[Path]) -> None:
    """Unlink local copies of files whose rows went (after the commit that removed them)."""
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("sync.file_unlink_failed", path=str(path), error=str(exc))


def sweep(db: sqlite_utils.Database, directory: Path) -> int:
    """Remove what a killed run may have left in the download directory: ``.part`` files, and copies
    no ``files`` row refers to any more (their dossier was purged and the run died before unlinking).
    Only names this module writes (``<démarche>/<dossier>/<owner>-<hash>-<name>``) are touched, so a
    download_dir shared with other files is safe. The caller holds the instance lock."""
    if not directory.is_dir():
        return 0
    known = local_paths(db)
    removed = 0
    for path in directory.glob("[0-9]*/[0-9]*/*"):
        if not (path.is_file() and OWN_NAME.match(path.name)):
            continue
        if path.name.endswith(".part") or path not in known:
            path.unlink(missing_ok=True)
            removed += 1
    for folder in sorted(directory.glob("[0-9]*/[0-9]*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if removed:
        log.info("sync.files_swept", removed=removed)
    return removed


def _stale(seen_at: str | None) -> bool:
    if not seen_at:
        return True
    seen = datetime.fromisoformat(seen_at)
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - seen > URL_LIFETIME
