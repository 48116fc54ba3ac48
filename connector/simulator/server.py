"""``ds-connector simulate``: a seeded world served over HTTP until Ctrl-C."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections import Counter

from aiohttp import web

from connector.simulator.app import GRAPHQL_PATH, create_app
from connector.simulator.control import PREFIX, Listener
from connector.simulator.listing import visible
from connector.simulator.seed import seed_world
from connector.simulator.state import World
from connector.simulator.worlds import EXTRAS, add_campaign_2024, add_messagerie_files


def banner(world: World, url: str, rate_limit: int, latency: float = 0.0) -> str:
    """What to point a config at: the endpoint, the token, the démarches served."""
    total = Counter(d.demarche_number for d in world.dossiers.values())
    shown = Counter(d.demarche_number for d in world.dossiers.values() if visible(d))
    lines = [
        f"DS simulator (seed {world.seed}) serving {url}",
        f"API token: {next(iter(world.tokens))}",
        f"Démarches served ({len(world.demarches)}):",
        *(f"  {n}  {dem.title}  ({shown[n]} dossiers on the API, {total[n]} in all)"
          for n, dem in world.demarches.items()),
        *([f"Latency: {latency:g} s added to every GraphQL answer."] if latency else []),
        f"Rate limit: {f'{rate_limit} requests per minute per token' if rate_limit else 'off'}. "
        f"Control surface: {url.removesuffix(GRAPHQL_PATH)}{PREFIX} (loopback only). Ctrl-C stops.",
    ]
    return "\n".join(lines)


async def _serve(world: World, host: str, port: int, rate_limit: int, latency: float = 0.0) -> None:
    runner = web.AppRunner(create_app(world, rate_limit=rate_limit, latency=latency), access_log=None)
    await runner.setup()
    try:
        site = Listener(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise SystemExit(f"ds-connector simulate: cannot listen on {host}:{port}: {exc.strerror}") from None
        real_host, real_port = runner.addresses[0][:2]
        shown_host = f"[{real_host}]" if ":" in real_host else real_host
        print(banner(world, f"http://{shown_host}:{real_port}{GRAPHQL_PATH}", rate_limit, latency), flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    print("DS simulator stopped.", flush=True)


def serve(host: str = "127.0.0.1", port: int = 8484, seed: int = 2026, dossiers: int = 300,
          rate_limit: int = 400, token: str | None = None, latency: float = 0.0, extras: tuple[str, ...] = (),
          sizes: tuple[int, ...] = (), files_per_dossier: float | None = None, file_kb: int | None = None) -> None:
    """Seed a world (``token``: the API token to accept, default derived from the seed) and serve it;
    ``port`` 0 picks a free port; ``latency`` seconds are added to every GraphQL answer; ``extras``:
    names of ``connector.simulator.worlds.EXTRAS`` to add; ``sizes``: dossiers per built-in démarche
    (Occitanie, Poitiers, Créteil: ``dossiers`` is then their sum), a fourth size adds Occitanie's
    2024-2025 campaign with that many; ``files_per_dossier``: messagerie attachments added up to
    that many per dossier (``file_kb``: their mean size). Returns on Ctrl-C or SIGTERM."""
    if sizes:
        dossiers = sum(sizes[:3])
    world = seed_world(seed=seed, dossiers=dossiers, token=token,
                       shares=tuple(float(n) for n in sizes[:3]) if sizes else None)
    if len(sizes) > 3:
        add_campaign_2024(world, dossiers=sizes[3])
    for name in dict.fromkeys(extras):
        if not (name == "campaign-2024" and len(sizes) > 3):
            EXTRAS[name](world)
    if files_per_dossier:
        add_messagerie_files(world, files_per_dossier, seed, file_kb)
    gc.freeze()  # the seeded world lives as long as the process: keep it out of every collection
    asyncio.run(_serve(world, host, port, rate_limit, latency))
