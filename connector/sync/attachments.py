"""Attachment downloads, per the ``[sync] attachments`` policy (docs/ds-api.md §7, rules 16-17).

- Only files DS scanned ``safe`` are fetched; ``pending`` ones wait for a later sync (a finished scan
  does not bump the dossier, so the engine re-reads their dossiers); ``infected`` never.
- Right after the page that listed them: DS file URLs expire after one hour. A URL that answers
  403/404/410 or was seen too long ago makes the engine re-read that dossier for fresh URLs.
- Bytes are checked against ``byteSizeBigInt`` and ``checksum`` (base64 of the MD5 digest), written
  to a temporary file, fsynced and renamed into place; then the folders of a batch's files are
  fsynced (the renames are durable); only then are their rows marked downloaded. The writing, the
  MD5, the fsyncs and the renames run in the downloader's writing threads (WRITING_THREADS), a
  small file in one trip, a large one 1 MiB at a time: the event loop only receives the bytes, so
  pages go on while files are written.
- The file URL is a pre-signed object-storage URL: the API token is never sent with it.
- Names: usagers name their files, the disk must not depend on it. A copy is
  ``<démarche>/<dossier>/<owner>-<hash>-<name>``: the name sanitised (no separator, NUL, newline or
  other control character, no leading dot or space) and cut to NAME_MAX (255) BYTES in UTF-8, its
  extension kept. A temporary is ``.<owner>-<hash>.dl-<random>``: it starts with a dot, which no copy
  does, and holds nothing the usager chose, so whatever a file is named (``rapport.part``...) it is
  never mistaken for a leftover and swept.
- A file that fails (checksum or size wrong, an HTTP error other than an expired URL, an URL still
  refused right after a re-read gave it, a virus found) is not on disk and has no ``local_path``; it
  is recorded (``files.attempts``, ``failed_reason``) and tried again by a later run after a backoff
  (15 min, 1 h, 4 h, 16 h: ``RETRY_AFTER``), never twice in one run; after ``MAX_TRIES`` failures (at
  once for a virus) it is given up (``given_up_at``). The run says "partial" (exit 65) and ``status``
  turns WARNING naming the count.
- A file that cannot be written for a local reason (disk full, permission, a name the file system
  refuses) is logged ``sync.file_write_failed`` and counted apart (``files_failed_local``): the sync
  summary and its exit code (73, EX_CANTCREAT) show it; the row stays to download, so a later sync
  tries again.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import sqlite_utils

from connector import private
from connector.logs import get_logger
from connector.store import files_to_download, record_file_downloads, record_file_failures
from connector.store.mirror import local_paths
from connector.store.writer import Writer

log = get_logger(__name__)

URL_LIFETIME = timedelta(minutes=50)  # DS says one hour; keep a margin
EXPIRED_STATUSES = {401, 403, 404, 410}
MAX_TRIES = 5
RETRY_AFTER = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=16))
CHUNK = 1 << 16
BATCH = 1 << 20  # bytes handed to a writing thread at a time (a file's whole when smaller)
WRITING_THREADS = 16  # the disk work of the downloads in flight (8 per démarche) waits on no other
OWN_NAME = re.compile(r"^(champ|annotation|message)-[0-9a-f]{12}-")
TEMPORARY = re.compile(r"^\.(champ|annotation|message)-[0-9a-f]{12}\.dl-[0-9a-f]{8}$")
NAME_MAX = 255  # bytes of one path component (ext4, xfs, btrfs, tmpfs)
MAX_EXTENSION = 16  # bytes after the last dot, dot included, kept whole when a name is cut
UNSAFE = re.compile(r"[^\w.\- ]")  # anything but letters, digits, _ . - and space becomes _


@dataclass
class DownloadStats:
    downloaded: int = 0
    bytes: int = 0
    failed: int = 0
    failed_local: int = 0  # could not be written here: disk full, permission, name refused
    pending_scan: int = 0
    given_up: int = 0  # of ``failed``: no more tries
    expired: list[int] = field(default_factory=list)  # dossiers whose URLs must be re-read


class LocalWriteError(Exception):
    """Writing a downloaded file failed on this machine (the OSError is ``__cause__``)."""


@contextmanager
def _local(what: str) -> Iterator[None]:
    """Tell local file-system failures apart from network ones (aiohttp's are OSErrors too)."""
    try:
        yield
    except OSError as exc:
        raise LocalWriteError(what) from exc


def local_name(owner_kind: str, file_key: str, filename: str) -> str:
    """The copy's file name: ``<owner>-<hash>-<name>``, at most NAME_MAX bytes, extension kept."""
    safe = UNSAFE.sub("_", filename).strip(" .") or "fichier"
    prefix = f"{owner_kind}-{_digest(file_key)}-"
    stem, dot, extension = safe.rpartition(".")
    extension = dot + extension
    if not stem or len(extension.encode()) > MAX_EXTENSION:
        stem, extension = safe, ""
    room = NAME_MAX - len(prefix.encode()) - len(extension.encode())
    if len(stem.encode()) > room:  # cut at a character boundary, never in the middle of one
        stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .") or "fichier"
    return prefix + stem + extension


def temporary_name(owner_kind: str, file_key: str) -> str:
    """A download in progress: ``.<owner>-<hash>.dl-<random>``, never the name of a copy."""
    return f".{owner_kind}-{_digest(file_key)}.dl-{secrets.token_hex(4)}"


def is_temporary(name: str) -> bool:
    return TEMPORARY.match(name) is not None


def _digest(file_key: str) -> str:
    return hashlib.sha256(file_key.encode()).hexdigest()[:12]


class Downloader:
    def __init__(self, policy: str, directory: Path, *, timeout: float = 120):
        self.policy = policy
        self.directory = directory
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._folders: set[Path] = set()  # directories known to exist
        self._unwritten: set[str] = set()  # file keys this run could not write: left to the next run
        self._in_flight: set[str] = set()  # file keys being fetched (a dossier listed twice in a pass)
        self._failed: set[str] = set()  # file keys that failed in this run: not tried again in it
        self._writers: ThreadPoolExecutor | None = None  # the disk work: writes, MD5, fsyncs, renames

    async def __aenter__(self) -> Downloader:
        if self.policy != "none":
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._writers = ThreadPoolExecutor(WRITING_THREADS, thread_name_prefix="ds-connector-files")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._writers is not None:
            self._writers.shutdown(wait=True)  # a write under way ends (its temporary is swept next run)

    async def _disk(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)`` in one of the writing threads (off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._writers, work, *args)

    def wanted(self, db: sqlite_utils.Database, demarche: int, numbers: set[int] | None = None) -> list[dict]:
        """Rows the policy wants and that are not on disk yet (or failed their checksum)."""
        if self.policy == "none":
            return []
        owner_kind = None if self.policy == "all" else "message"
        return [row for row in files_to_download(db, demarche, numbers=numbers, owner_kind=owner_kind)
                if row["file_key"] not in self._failed]

    async def download(
        self, store: Writer, rows: list[dict], slots: asyncio.Semaphore | None = None,
        *, after_reread: bool = False,
    ) -> DownloadStats:
        """Fetch the ``safe`` rows whose URL is fresh, ``slots`` at a time, and record them in one
        transaction (a unit of work of the sync's ``store``, the writer); report the dossiers whose URLs are stale. A file renamed into place but not
        recorded (a crash between the two) is swept by the next run and fetched again. A row
        already being fetched (by another page's downloads) is left to that fetch. ``after_reread``:
        the dossiers were just re-read for fresh URLs, so an URL refused now stays refused: a failure."""
        stats = DownloadStats()
        slots = slots or asyncio.Semaphore(1)
        todo = []
        failures: list[tuple[str, str, str | None]] = []
        for row in rows:
            if row["file_key"] in self._unwritten or row["file_key"] in self._failed:  # once per run
                continue
            if row["virus_scan"] in ("infected", "integrity_error"):  # DS will never serve it
                failures.append((row["file_key"], f"virus scan: {row['virus_scan']}", None))
                self._failed.add(row["file_key"])
                log.error("sync.file_failed", dossier=row["dossier_number"], file=row["filename"],
                          reason=f"virus scan: {row['virus_scan']}", given_up=True)
            elif row["virus_scan"] != "safe":
                stats.pending_scan += 1
            elif not row["url"] or _stale(row["url_seen_at"]):
                stats.expired.append(row["dossier_number"])
            elif row["file_key"] not in self._in_flight:
                self._in_flight.add(row["file_key"])
                todo.append(row)

        async def fetch(row: dict) -> tuple[str, str]:
            try:
                async with slots:
                    return await self._fetch(row)
            finally:
                self._in_flight.discard(row["file_key"])

        outcomes = await asyncio.gather(*(fetch(row) for row in todo))
        done: list[dict] = []
        for row, (outcome, reason) in zip(todo, outcomes):
            if outcome == "expired" and after_reread:  # refused again right after a re-read gave it
                outcome, reason = "failed", f"{reason} on the URL a re-read of the dossier had just given"
            if outcome == "expired":
                stats.expired.append(row["dossier_number"])
                continue
            if outcome == "ok":
                done.append(row)
            elif outcome == "local":
                stats.failed_local += 1
                self._unwritten.add(row["file_key"])
            else:  # "failed", "mismatch"
                failures.append((row["file_key"], reason, _next_try(row)))
                self._failed.add(row["file_key"])
        for _, _, next_try in failures:
            stats.failed += 1
            stats.given_up += next_try is None
        if failures:
            await store(record_file_failures, failures)
        if done:
            try:  # the renames made durable before any row says downloaded
                await self._disk(_fsync_folders, {self.target(row).parent for row in done})
            except LocalWriteError as failure:  # not recorded: the next sync fetches them again
                cause = failure.__cause__
                log.error("sync.file_write_failed", step=str(failure), files=len(done),
                          error=getattr(cause, "strerror", None) or str(cause))
                stats.failed_local += len(done)
                self._unwritten.update(row["file_key"] for row in done)
                done = []
        records = [(row["file_key"], self.target(row), True) for row in done]
        stats.downloaded += len(done)
        stats.bytes += sum(int(row["byte_size"] or 0) for row in done)
        for path in await store(record_file_downloads, records) if records else []:
            path.unlink(missing_ok=True)  # the file left its dossier meanwhile
        stats.expired = sorted(set(stats.expired))
        return stats

    def target(self, row: dict) -> Path:
        return (self.directory / str(row["demarche_number"]) / str(row["dossier_number"])
                / local_name(row["owner_kind"], row["file_key"], row["filename"]))

    async def _fetch(self, row: dict) -> tuple[str, str]:
        """Download one file to its place: "ok", "expired" (re-read the dossier), "mismatch"
        (checksum or size wrong: recorded as such, fetched again next time), "failed" (DS or the
        network) or "local" (this machine could not write it: not recorded, tried again next time)."""
        assert self._session is not None
        path = self.target(row)
        partial = path.with_name(temporary_name(row["owner_kind"], row["file_key"]))
        where = {"dossier": row["dossier_number"], "file": row["filename"]}
        sink: _Sink | None = None
        try:
            async with self._session.get(row["url"], allow_redirects=False) as response:
                if response.status in EXPIRED_STATUSES:
                    log.info("sync.file_url_expired", status=response.status, **where)
                    return "expired", f"HTTP {response.status}"
                if response.status != 200:
                    log.warning("sync.file_failed", status=response.status, **where)
                    return "failed", f"HTTP {response.status}"
                sink = _Sink(path, partial, self._folders)
                try:
                    batch: list[bytes] = []
                    batched = 0
                    async for chunk in response.content.iter_chunked(CHUNK):
                        batch.append(chunk)
                        batched += len(chunk)
                        if batched >= BATCH:  # a large file: written as it comes, a batch at a time
                            await self._disk(sink.write, batch)
                            batch, batched = [], 0
                    # The rest (a small file's whole), flush, fsync, and the rename when it checks out:
                    # one trip to a writing thread.
                    await self._disk(sink.complete, batch, row["checksum"], row["byte_size"])
                finally:
                    sink.close()
            checksum, size = base64.b64encode(sink.md5.digest()).decode(), sink.size
            if not sink.renamed:
                log.error("sync.file_checksum_mismatch", expected=row["checksum"], got=checksum,
                          expected_size=row["byte_size"], size=size, **where)
                if checksum != row["checksum"]:
                    return "mismatch", f"checksum {checksum} instead of {row['checksum']}"
                return "mismatch", f"{size} bytes instead of {row['byte_size']}"
        except LocalWriteError as failure:
            cause = failure.__cause__
            assert isinstance(cause, OSError)
            log.error("sync.file_write_failed", step=str(failure), path=str(path),
                      errno=errno.errorcode.get(cause.errno or 0, str(cause.errno)), error=cause.strerror, **where)
            return "local", str(failure)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("sync.file_failed", error=f"{type(exc).__name__}: {exc}", **where)
            return "failed", f"{type(exc).__name__}: {exc}"
        finally:
            if sink is None or not sink.renamed:
                _discard(partial)  # gone already once renamed into place
        log.debug("sync.file_downloaded", size=size, **where)
        return "ok", ""


class _Sink:
    """One download's temporary file, written in the downloader's writing threads: the loop only
    hands it batches of bytes (a small file's whole at once). Each method runs whole in one thread call; OSErrors come out as
    ``LocalWriteError`` (this machine's fault, not the network's)."""

    def __init__(self, path: Path, partial: Path, folders: set[Path]):
        self.path, self.partial, self.folders = path, partial, folders
        self.md5 = hashlib.md5()
        self.size = 0
        self.out: Any = None
        self.renamed = False

    def open(self) -> None:
        if self.out is not None:
            return
        if self.path.parent not in self.folders:
            with _local("create the folder"):
                private.makedirs(self.path.parent)  # 0700: personal data
            self.folders.add(self.path.parent)
        with _local("open the temporary file"):
            self.out = open(self.partial, "xb")

    def write(self, batch: list[bytes]) -> None:
        self.open()
        for chunk in batch:
            self.md5.update(chunk)  # hashlib and write release the GIL: the loop goes on meanwhile
            self.size += len(chunk)
            with _local("write"):
                self.out.write(chunk)

    def complete(self, batch: list[bytes], checksum: str, byte_size: Any) -> None:
        """The last bytes, then flush and fsync (the bytes are on disk before the rename), then the
        rename into place if the MD5 and the size are DS's (``renamed``); else the temporary stays
        for the caller to discard."""
        self.write(batch)
        with _local("write"):
            self.out.flush()
            os.fsync(self.out.fileno())
        self.out.close()
        if base64.b64encode(self.md5.digest()).decode() == checksum and (
                byte_size is None or self.size == int(byte_size)):
            with _local("rename into place"):
                os.replace(self.partial, self.path)
            self.renamed = True

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def _fsync_folders(folders: set[Path]) -> None:
    """Make the renames into these folders durable (their entries), before the rows say downloaded."""
    for folder in folders:
        with _local("sync the folder"):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # the sweep of the next run takes it
        pass


def remove_local(paths: list[Path]) -> None:
    """Unlink local copies of files whose rows went (after the commit that removed them)."""
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("sync.file_unlink_failed", path=str(path), error=str(exc))


def sweep(db: sqlite_utils.Database, directory: Path) -> int:
    """Remove what a killed run may have left in the download directory: temporaries
    (``.<owner>-<hash>.dl-<random>``, never a usager's name), and copies no ``files`` row refers to
    any more (their dossier was purged and the run died before unlinking). Only names this module
    writes (``<démarche>/<dossier>/<owner>-<hash>-<name>`` and the temporaries) are touched, so a
    download_dir shared with other files is safe. The caller holds the instance lock."""
    if not directory.is_dir():
        return 0
    known = local_paths(db)
    removed = 0
    for path in directory.glob("[0-9]*/[0-9]*/*"):  # pathlib's * matches dot-names too
        if not path.is_file():
            continue
        if is_temporary(path.name) or (OWN_NAME.match(path.name) and path not in known):
            path.unlink(missing_ok=True)
            removed += 1
    for folder in sorted(directory.glob("[0-9]*/[0-9]*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if removed:
        log.info("sync.files_swept", removed=removed)
    return removed


def _next_try(row: dict) -> str | None:
    """When to try this file again after one more failure (UTC ISO), or None: given up."""
    attempts = int(row.get("attempts") or 0) + 1
    if attempts >= MAX_TRIES:
        return None
    return (datetime.now(timezone.utc) + RETRY_AFTER[attempts - 1]).isoformat(timespec="seconds")


def _stale(seen_at: str | None) -> bool:
    if not seen_at:
        return True
    seen = datetime.fromisoformat(seen_at)
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - seen > URL_LIFETIME
