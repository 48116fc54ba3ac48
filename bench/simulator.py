"""How fast the DS simulator serves full dossiers: every dossier of a seeded world, 100 per page.

    .venv/bin/python bench/simulator.py [DOSSIERS]      (default 5000)

Seeds the world, serves it on a free loopback port, pages through every démarche over real HTTP
with the connector's full-dossier query (``queries/dossiers_page.graphql``, first: 100), and
prints dossiers served per second. A second pass shows the cost once dossier shapes are cached.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
from aiohttp import web

from connector.ds import operations
from connector.simulator.app import GRAPHQL_PATH, create_app
from connector.simulator.seed import seed_world


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


async def main(count: int) -> None:
    started = time.perf_counter()
    world = seed_world(seed=2026, dossiers=count)
    print(f"seeded {len(world.dossiers)} dossiers in {time.perf_counter() - started:.1f} s")
    runner = web.AppRunner(create_app(world, rate_limit=0), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{GRAPHQL_PATH}"
    token = next(iter(world.tokens))
    try:
        async with aiohttp.ClientSession() as session:
            for label in ("first pass (shapes built)", "second pass (shapes cached)"):
                started = time.perf_counter()
                served, requests = await one_pass(session, url, token, list(world.demarches))
                seconds = time.perf_counter() - started
                print(f"{label}: {served} dossiers in {requests} requests, {seconds:.2f} s, "
                      f"{served / seconds:.0f} dossiers/s")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
