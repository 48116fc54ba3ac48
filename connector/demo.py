"""`ds-connector demo`: the built-in simulator on a free loopback port, and a first look at it.

It seeds the simulator, writes a ready-to-use config and token under ``state/demo/`` (token file
mode 0600), then reads every démarche page by page over real HTTP with the connector's own
operations, and tells what to try next. The mirror issue turns the read into a full sync.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import aiohttp
import click
from aiohttp import web

from connector.ds import operations


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demo_files(state_dir: Path, url: str, token: str, demarches: list[tuple[int, str]]) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    token_file = state_dir / "ds-api-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    lines = [
        "# Written by `ds-connector demo`: points at the built-in simulator.",
        "[ds]",
        f'url = "{url}"',
        'token_file = "ds-api-token"',
        "",
        "[database]",
        'path = "ds-connector.sqlite"',
        "",
    ]
    for number, title in demarches:
        lines += ["[[demarches]]", f"number = {number}", f'label = "{title[:60]}"', ""]
    config = state_dir / "config.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config


async def _count_pages(session: aiohttp.ClientSession, url: str, token: str, number: int) -> tuple[int, int]:
    """Page through one démarche's dossiers; return (dossiers, requests)."""
    source = operations.source("dossiers_page")
    name = operations.operation_name("dossiers_page")
    after, seen, requests = None, 0, 0
    while True:
        body = {"query": source, "operationName": name,
                "variables": {"demarcheNumber": number, "first": 100, "after": after}}
        async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            requests += 1
            answer = await resp.json()
        if answer.get("errors"):
            raise click.ClickException(f"démarche {number}: {answer['errors'][0].get('message')}")
        page = answer["data"]["demarche"]["dossiers"]
        seen += len(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return seen, requests
        after = page["pageInfo"]["endCursor"]


async def run_demo(state_dir: Path, seed: int, dossiers: int) -> None:
    from connector.simulator.app import create_app
    from connector.simulator.seed import seed_world

    world = seed_world(seed=seed, dossiers=dossiers)
    token = next(iter(world.tokens))
    port = _free_port()
    runner = web.AppRunner(create_app(world))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/api/v2/graphql"
    try:
        demarches = [(d.number, d.title) for d in world.demarches.values()]
        config = write_demo_files(state_dir, url, token, demarches)
        click.echo(f"Simulator: {url} (seed {seed}, {len(world.dossiers)} dossiers incl. brouillons and hidden)")
        click.echo(f"Config:    {config} (token in {state_dir / 'ds-api-token'}, mode 0600)")
        async with aiohttp.ClientSession() as session:
            for number, title in demarches:
                count, requests = await _count_pages(session, url, token, number)
                click.echo(f"  démarche {number}: {count} visible dossiers in {requests} requests  {title}")
    finally:
        await runner.cleanup()
    click.echo("")
    click.echo("Next:")
    click.echo("  ds-connector simulate --help       run the simulator on a fixed port and point a config at it")
    click.echo(f"  ds-connector check-config --config {config}")


def demo(state_dir: Path, seed: int, dossiers: int) -> None:
    asyncio.run(run_demo(state_dir, seed, dossiers))
