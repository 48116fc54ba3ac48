"""The lower bound of a full sync: what any client must do to read the same démarches from DS.

    .venv/bin/python bench/lower_bound.py --url URL --token-file FILE --demarche N [--demarche N ...]
                                          [--attachments none|messages] [--json]

Every démarche at once (one task each, sharing one request budget of 400 a minute, DS's own limit,
as the connector's does): its descriptor, every page of its dossiers (100 a page, the connector's
own ``dossiers_page`` document, so the same bytes come back), then its ``deletedDossiers`` and
``pendingDeletedDossiers`` lists, each page requested as soon as the previous one is decoded, the
JSON decoded and thrown away. With ``--attachments messages``, every messagerie attachment DS
scanned ``safe`` (the connector's policy) is downloaded as soon as its page is decoded, 8 at a time
per démarche, alongside the pages, and MD5-checked against its ``checksum``; nothing is written.

No database, no rows, no files: wall time here is the floor a sync of the same démarches can reach
against the same server. ``bench/sync.py`` runs it beside the connector and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from connector.ds import operations
from connector.ds.budget import RequestBudget

PAGE_SIZE = 100
DOWNLOADS_PER_DEMARCHE = 8
CHUNK = 1 << 16
LISTS = {"deleted_dossiers_page": "deletedDossiers", "pending_deleted_dossiers_page": "pendingDeletedDossiers"}


@dataclass
class Figures:
    requests: int = 0
    pages: int = 0
    dossiers: int = 0
    answer_bytes: int = 0
    files: int = 0
    file_bytes: int = 0
    mismatched: int = 0  # downloads whose MD5 or size differed from what DS announced
    failed: int = 0  # downloads answered otherwise than 200
    seconds: float = 0.0


class LowerBound:
    def __init__(self, session: aiohttp.ClientSession, files: aiohttp.ClientSession, url: str, attachments: str,
                 budget: RequestBudget):
        self.session = session
        self.files = files  # file URLs are pre-signed: never the token
        self.url = url
        self.attachments = attachments
        self.budget = budget
        self.figures = Figures()

    async def query(self, name: str, variables: dict) -> dict:
        await self.budget.acquire()
        body = {"query": operations.source(name), "operationName": operations.operation_name(name),
                "variables": variables}
        async with self.session.post(self.url, json=body) as response:
            raw = await response.read()
            if response.status != 200:
                raise SystemExit(f"{name}: HTTP {response.status}: {raw[:300]!r}")
        self.figures.requests += 1
        self.figures.answer_bytes += len(raw)
        answer = json.loads(raw)
        if answer.get("errors"):
            raise SystemExit(f"{name}: {answer['errors']}")
        return answer["data"]

    async def demarche(self, number: int) -> None:
        downloads = asyncio.Semaphore(DOWNLOADS_PER_DEMARCHE)
        pending: set[asyncio.Task] = set()
        await self.query("demarche_descriptor", {"demarcheNumber": number})
        after = None
        while True:
            data = await self.query("dossiers_page", {"demarcheNumber": number, "first": PAGE_SIZE, "after": after})
            page = data["demarche"]["dossiers"]
            self.figures.pages += 1
            self.figures.dossiers += len(page["nodes"])
            if self.attachments == "messages":
                for node in page["nodes"]:
                    for message in node.get("messages") or []:
                        for f in message.get("attachments") or []:
                            if f.get("virusScanResult") == "safe" and f.get("url"):
                                task = asyncio.create_task(self.download(downloads, f))
                                pending.add(task)
                                task.add_done_callback(pending.discard)
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        for name, field in LISTS.items():
            after = None
            while True:
                data = await self.query(name, {"demarcheNumber": number, "first": PAGE_SIZE, "after": after})
                page = data["demarche"][field]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
        await asyncio.gather(*pending)

    async def download(self, slots: asyncio.Semaphore, f: dict) -> None:
        async with slots:
            md5, size = hashlib.md5(), 0
            async with self.files.get(f["url"], allow_redirects=False) as response:
                if response.status != 200:
                    self.figures.failed += 1
                    return
                async for chunk in response.content.iter_chunked(CHUNK):
                    md5.update(chunk)
                    size += len(chunk)
        ok = base64.b64encode(md5.digest()).decode() == f["checksum"] and (
            f.get("byteSize") is None or int(f["byteSize"]) == size)
        self.figures.files += 1
        self.figures.file_bytes += size
        self.figures.mismatched += not ok


async def lower_bound(url: str, token: str, demarches: list[int], attachments: str = "none",
                      requests_per_minute: int = 400) -> Figures:
    """Read every page of every démarche (all démarches at once) and throw it away; see the module doc."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "ds-connector-bench"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as api, \
            aiohttp.ClientSession(timeout=timeout) as files:
        bound = LowerBound(api, files, url, attachments, RequestBudget(requests_per_minute))
        await asyncio.gather(*(bound.demarche(n) for n in demarches))
    bound.figures.seconds = time.perf_counter() - started
    return bound.figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the GraphQL endpoint")
    parser.add_argument("--token-file", required=True, type=Path, help="a file holding the API token")
    parser.add_argument("--demarche", type=int, action="append", required=True, help="a démarche number (repeat)")
    parser.add_argument("--attachments", choices=("none", "messages"), default="none")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    token = args.token_file.read_text(encoding="utf-8").strip()
    figures = asyncio.run(lower_bound(args.url, token, args.demarche, args.attachments))
    if args.json:
        print(json.dumps(asdict(figures)))
    else:
        print(f"lower bound ({args.attachments}): {figures.seconds:.1f} s, {figures.requests} requests, "
              f"{figures.pages} pages, {figures.dossiers} dossiers, {figures.answer_bytes / 1e6:.1f} MB of answers, "
              f"{figures.files} files ({figures.file_bytes / 1e6:.1f} MB, {figures.mismatched} mismatched, "
              f"{figures.failed} failed)")


if __name__ == "__main__":
    sys.exit(main())
