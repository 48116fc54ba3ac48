"""``ds-connector serve``: the instructeurs' read-only web view (``connector.web``), and its accounts.

``--add-user NAME`` asks for the password twice (never on the command line) and writes the account
to ``web-users`` beside the config (mode 0600), creating the session secret ``web-secret`` beside it
if needed; ``--init`` only creates the secret (and an empty accounts file), for a site whose reverse
proxy authenticates users. Serving needs neither the API token nor the lock.
"""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import signal
import sys
from pathlib import Path

import click
from aiohttp import web

from connector import logs
from connector.config import load_config
from connector.errors import ConnectorError
from connector.web.app import create_app
from connector.web.auth import AuthFiles, ensure_secret, read_users, set_user, valid_name

MIN_PASSWORD = 10


def add_user(config_path: Path | None, name: str, password: str | None = None) -> int:
    config = load_config(config_path)
    files = AuthFiles.beside(config.path, environ={})  # always the files beside the config
    if not valid_name(name):
        raise ConnectorError(f"invalid user name {name!r}: letters, digits and . _ @ - only (at most 64)")
    if password is None:
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != password:
            raise ConnectorError("the two passwords differ; nothing changed")
    if len(password) < MIN_PASSWORD:
        raise ConnectorError(f"the password is too short (at least {MIN_PASSWORD} characters); nothing changed")
    ensure_secret(files.secret)
    new = set_user(files.users, name, password)
    click.echo(f"{'Added' if new else 'Changed the password of'} {name} in {files.users}", err=True)
    click.echo("Under systemd: sudo systemctl restart ds-connector-web (the accounts are read at start).", err=True)
    return 0


def init(config_path: Path | None) -> int:
    config = load_config(config_path)
    files = AuthFiles.beside(config.path, environ={})
    ensure_secret(files.secret)
    if not files.users.exists():
        files.users.touch(mode=0o600)
    users = read_users(files.users)
    click.echo(f"Secret key: {files.secret}; accounts: {files.users} ({len(users)})", err=True)
    return 0


async def _serve(app: web.Application, host: str, port: int) -> None:
    log = logs.get_logger("connector.web")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConnectorError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    log.info("web.listening", url=f"http://{shown}:{bound[1]}/")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("web.stopping")
        await runner.cleanup()


def serve(config_path: Path | None, host: str | None, port: int | None) -> int:
    config = load_config(config_path)
    logs.configure(level=config.log.level, json=config.log.json, stream=sys.stdout)
    log = logs.get_logger("connector.web")
    files = AuthFiles.beside(config.path)
    app = create_app(config, files)  # ConfigError (exit 78) without a secret key
    host = host or config.web.host
    port = config.web.port if port is None else port
    if not read_users(files.users) and not config.web.trusted_proxies:
        log.warning("web.no_accounts", hint="nobody can log in: ds-connector serve --add-user NAME")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning("web.public_address", host=host, hint="serve behind the académie's HTTPS reverse proxy")
    asyncio.run(_serve(app, host, port))
    return 0
