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
import time

import aiohttp

from connector.ds import operations
from sync import start_simulator  # bench/sync.py, beside this file


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
    sim = start_simulator(args.dossiers, seed=2026)  # bench/sync.py's: simulate's default seed, no rate limit
    try:
        print(f"simulator seeded and listening after {sim.seconds:.1f} s")
        asyncio.run(bench(sim.url, sim.token, list(sim.demarches)))
    finally:
        sim.process.terminate()
        sim.process.wait(30)

if __name__ == "__main__":
    main()
