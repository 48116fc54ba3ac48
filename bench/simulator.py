"""How fast the DS simulator serves full dossiers: every dossier of a seeded world, 100 per page.

    .venv/bin/python bench/simulator.py [DOSSIERS]      (default 5000)

Starts ``ds-connector simulate`` (rate limit off) in its own process, pages through every démarche
over real HTTP with the connector's full-dossier query (``queries/dossiers_page.graphql``, first:
100), and prints dossiers served per second. The first pass builds each dossier's GraphQL shape;
the second pass shows the cost once shapes are cached.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time

import aiohttp

from connector.ds import operations


async def one_pass(session: aiohttp.ClientSession, url: str, token: str, demarches: list[int]) -> tuple[int, int]:
    query, name = operations.source("dossiers_page"), operations.operation_name("dossiers_page")
    served = requests = 0
    for number in demarches:
        after = None
        while True:
            body = {"query": query, "operationName": name,
                    "variables": {"demarcheNumber": number, "first": 100, "after": after}}
            async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
                answer = await response.json()
            requests += 1
            if "errors" in answer:
                raise SystemExit(f"démarche {number}: {answer['errors'][0]['message']}")
            page = answer["data"]["demarche"]["dossiers"]
            served += len(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    return served, requests


async def bench(url: str, token: str, demarches: list[int]) -> None:
    async with aiohttp.ClientSession() as session:
        for label in ("first pass (shapes built)", "second pass (shapes cached)"):
            started = time.perf_counter()
            served, requests = await one_pass(session, url, token, demarches)
            seconds = time.perf_counter() - started
            print(f"{label}: {served} dossiers in {requests} requests, {seconds:.2f} s, "
                  f"{served / seconds:.0f} dossiers/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dossiers", nargs="?", type=int, default=5000, help="dossiers to seed (default 5000)")
    args = parser.parse_args()
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "connector", "simulate", "--port", "0", "--rate-limit", "0",
         "--dossiers", str(args.dossiers)], stdout=subprocess.PIPE, text=True)
    try:
        banner = []
        while not banner or not banner[-1].startswith("Rate limit"):
            line = server.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise SystemExit("the simulator did not start")
            banner.append(line)
        print(f"simulator seeded and listening after {time.perf_counter() - started:.1f} s")
        url = re.search(r"serving (\S+)", banner[0]).group(1)  # type: ignore[union-attr]
        token = banner[1].split(": ", 1)[1].strip()
        demarches = [int(line.split()[0]) for line in banner[3:-1]]
        asyncio.run(bench(url, token, demarches))
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
