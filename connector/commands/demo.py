"""`ds-connector demo`: the built-in simulator, a full sync, some activity, an incremental sync.

It seeds the simulator and serves it on a loopback port (8484, the `simulate` default, when free, so
the demo config keeps working with a later `ds-connector simulate`; else any free port), writes a
ready-to-use config and token under ``state/demo/`` (token file mode 0600), mirrors the three
démarches into a fresh ``state/demo/ds-connector.sqlite``, then plays what usagers, instructeurs and
DS do in a day (new dossiers, a signed convention sent, edits, a decision, a dossier put in the trash,
one purged), syncs again incrementally, and shows what the database holds and what to try next.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
from contextlib import nullcontext
from pathlib import Path

import click
from aiohttp import web
from rich.console import Console

from connector import logs, service
from connector.config import load_config
from connector.commands.actions import add_demo_followup, demo_followup, renewal_demo
from connector.commands.hooks import sync_hooks
from connector.credentials import load_token
from connector.forms.report import anomalies_by_rule, write_exports
from connector.lock import InstanceLock
from connector.progress import SyncDisplay, terminal_console
from connector.simulator import renewal as campaigns
from connector.simulator.app import GRAPHQL_PATH, create_app
from connector.simulator.listing import visible
from connector.simulator.seed import TECH_ACCOUNTS, seed_world
from connector.store import open_db
from connector.sync import SyncReport

PREFERRED_PORT = 8484


async def _listen(runner: web.AppRunner) -> int:
    """Serve on 127.0.0.1:8484 when free, else on a free port: each is bound once, where it is served
    (no window between finding a port free and taking it)."""
    for port in (PREFERRED_PORT, 0):
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError:
            continue
        return runner.addresses[-1][1]
    raise click.ClickException("no free loopback port")


def write_demo_files(state_dir: Path, url: str, token: str, demarches: list[tuple[int, str]]) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    token_file = state_dir / "ds-api-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    lines = [
        "# Written by `ds-connector demo`: points at the built-in simulator",
        "# (`ds-connector simulate` serves the same seed on the same port).",
        "[ds]",
        f'url = "{url}"',
        'token_file = "ds-api-token"',
        "requests_per_minute = 400",
        "",
        "[database]",
        'path = "ds-connector.sqlite"',
        "",
        "[sync]",
        'attachments = "messages"',
        "",
        "[log]",
        'level = "warning"',
        "",
    ]
    for number, title in demarches:
        label = title[:60].replace('"', "'")
        lines += ["[[demarches]]", f"number = {number}", f'label = "{label}"', ""]
    config = state_dir / "config.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config


def _fresh(state_dir: Path) -> None:
    """The demo's database and downloads are rebuilt each time (the simulator is re-seeded)."""
    for name in ("ds-connector.sqlite", "ds-connector.sqlite-wal", "ds-connector.sqlite-shm"):
        (state_dir / name).unlink(missing_ok=True)
    shutil.rmtree(state_dir / "files", ignore_errors=True)
    shutil.rmtree(state_dir / "renewal", ignore_errors=True)


def _activity(sim, demarches: list[int]) -> list[str]:
    """A day in DS, played with the simulator's own control methods."""
    done = []
    first = demarches[0]
    created = sim.create_dossiers(first, count=3)
    done.append(f"3 new dossiers deposited on démarche {first}")
    shown = sorted((d for d in sim.world.dossiers.values() if visible(d)), key=lambda d: d.number)
    by_state = {}
    for d in shown:
        if d.number not in created:
            by_state.setdefault(d.state, []).append(d)
    waiting = by_state.get("en_construction", []) + by_state.get("en_instruction", [])
    signer = waiting[0]
    sim.usager_message(signer.number, kind="signed_pdf")
    done.append(f"dossier {signer.number}: the commune sends its signed convention (PDF)")
    editor = next(d for d in waiting[1:] if any(c.value not in (None, "") for c in d.champs))
    champ = next(c for c in editor.champs if isinstance(c.value, str) and c.value)
    sim.edit_champ(editor.number, champ.stable_id, champ.value + " (corrigé)")
    done.append(f"dossier {editor.number}: the usager corrects a champ")
    trashed = waiting[-1]
    if by_state.get("en_instruction", [])[:-1]:
        decided = by_state["en_instruction"][0]
        sim.ui_state(decided.number, "accepte")
        done.append(f"dossier {decided.number}: an instructeur accepts it in the web UI")
    sim.hide(trashed.number, by="administration")
    done.append(f"dossier {trashed.number}: an administrateur puts it in the trash")
    purged = next(d for d in reversed(shown) if d.state in ("refuse", "sans_suite", "accepte"))
    sim.purge(purged.number, reason="instructeur_request")
    done.append(f"dossier {purged.number}: deleted for good on an instructeur's request")
    sim.advance(60)
    return done


async def _sync(config, token, lock, label: str, terminal: Console | None) -> SyncReport:
    """One run of the run service (sync, follow-up, report), as ``sync`` runs it; the progress display
    on the terminal (the transcript goes to standard output)."""
    display = None
    if terminal is not None:
        display = SyncDisplay(terminal, full=False, title=label, demarches=[d.number for d in config.demarches])
    with display or nullcontext():
        outcome = await service.run(config, token, lock, kind="demo", progress=display, hooks=sync_hooks(config))
    report = outcome.sync
    assert report is not None
    click.echo(f"{label}: {report.summary(indent=' ' * 5)}")
    for d in report.demarches:
        if d.error is not None:
            raise click.ClickException(f"démarche {d.number}: {d.error}")
    return report


def _contents(database: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        lines = []
        for number, title in conn.execute("SELECT number, title FROM demarches ORDER BY number"):
            states = ", ".join(f"{n} {s}" for s, n in conn.execute(
                "SELECT state, count(*) FROM dossiers WHERE demarche_number = ? GROUP BY state "
                "ORDER BY count(*) DESC", [number]))
            lines.append(f"  démarche {number}  {title[:70]}")
            lines.append(f"    dossiers: {states}")
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "dossiers", "champs", "annotations", "messages", "files", "tombstones", "pending_deletions",
            "quarantine", "sync_runs")}
        downloaded, size = conn.execute(
            "SELECT count(*), coalesce(sum(byte_size), 0) FROM files WHERE downloaded_at IS NOT NULL "
            "AND checksum_ok = 1").fetchone()
        lines.append("  rows: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
        lines.append(f"  attachments downloaded and checksum-verified: {downloaded} ({size / 1e6:.1f} MB)")
        senders = ", ".join(f"{n} {s}" for s, n in conn.execute(
            "SELECT sender, count(*) FROM messages GROUP BY sender ORDER BY count(*) DESC"))
        lines.append(f"  messages by sender: {senders}")
        return lines
    finally:
        conn.close()


async def run_demo(state_dir: Path, seed: int, dossiers: int, terminal: Console | None = None) -> None:
    world = seed_world(seed=seed, dossiers=dossiers)
    token = next(iter(world.tokens))
    app = create_app(world)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = await _listen(runner)
    url = f"http://127.0.0.1:{port}{GRAPHQL_PATH}"
    try:
        demarches = [(d.number, d.title) for d in world.demarches.values()]
        _fresh(state_dir)
        config_path = write_demo_files(state_dir, url, token, demarches)
        occitanie = next(d.number for d in world.demarches.values() if d.kind == "occitanie")
        add_demo_followup(config_path, TECH_ACCOUNTS[occitanie], occitanie)
        config = load_config(config_path)
        api_token = load_token(config, environ={})
        lock = InstanceLock(config.state_dir, holder="demo")  # held until the demo ends
        lock.acquire()
    except BaseException:
        await runner.cleanup()
        raise
    try:
        try:
            click.echo(f"Simulator: {url} (seed {seed}, {len(world.dossiers)} dossiers incl. brouillons and hidden)")
            click.echo(f"Config:    {config_path} (token in {state_dir / 'ds-api-token'}, mode 0600)")
            click.echo("")
            await _main_mirror(config, api_token, lock, app["sim"], demarches, terminal)
            for line in await _renewal(app["sim"], state_dir, url, token, TECH_ACCOUNTS[occitanie]):
                click.echo(line)
        finally:
            await runner.cleanup()
        _after(config, config_path, state_dir, seed, dossiers, port, demarches)
    finally:
        lock.release()


async def _main_mirror(config, api_token, lock, sim, demarches, terminal: Console | None) -> None:
    """Steps 1 to 7 on the main demo mirror, under its instance lock."""
    first = await _sync(config, api_token, lock, "1. Full sync", terminal)
    for d in first.demarches:
        click.echo(f"     démarche {d.number}: {d.dossiers} dossiers in {d.pages} pages, "
                   f"{d.files} attachments")
    click.echo("")
    click.echo("2. Activity on DS:")
    for line in _activity(sim, [n for n, _ in demarches]):
        click.echo(f"     {line}")
    click.echo("")
    await _sync(config, api_token, lock, "3. Incremental sync", terminal)
    await _sync(config, api_token, lock, "4. Nothing new", terminal)
    click.echo("")
    for line in await demo_followup(config, api_token, lock, lambda: sim.mutation_log):
        click.echo(line)
    click.echo("")


def _after(config, config_path: Path, state_dir: Path, seed: int, dossiers: int, port: int, demarches) -> None:
    """What the mirror holds, the forms' findings and exports, what to try next."""
    click.echo("")
    database = _relative(config.database.path)
    click.echo(f"In {database}:")
    for line in _contents(config.database.path):
        click.echo(line)
    click.echo("")
    _forms(config, state_dir)
    # Show the commands the way this one was typed (e.g. .venv/bin/ds-connector).
    bin_dir = os.path.dirname(sys.argv[0]) if os.path.basename(sys.argv[0]) == "ds-connector" else ""
    ds, sqlite = (os.path.join(bin_dir, name) for name in ("ds-connector", "sqlite-utils"))
    click.echo("Next:")
    click.echo(f"  {sqlite} tables {database} --counts")
    click.echo(f'  {sqlite} {database} "SELECT number, state, demandeur_name FROM dossiers LIMIT 5" -t')
    if port == PREFERRED_PORT:
        click.echo(f"  {ds} simulate --seed {seed} --dossiers {dossiers}    (in another terminal), then:")
        click.echo(f"  {ds} sync --config {config_path} --full")
    click.echo(f"  {ds} actions list --config {config_path} --state sent")
    click.echo(f"  {ds} export anomalies --config {config_path} --demarche {demarches[0][0]}")
    click.echo(f"  {sqlite} {database} \"SELECT * FROM dossiers_overview LIMIT 5\" -t")
    click.echo(f"  {ds} sync --help")


async def _renewal(sim, state_dir: Path, url: str, token: str, instructeur: str) -> list[str]:
    """Step 8: two more Occitanie campaigns planted in the running simulator (2025-2026 closed, 2026-2027),
    mirrored into their own database under ``state_dir/renewal`` (the main mirror is untouched): the
    renewal before and after the cut-off, and the reminders ``actions plan`` would send."""
    campaigns.plant(sim.world)
    sim.changed()
    directory = state_dir / "renewal"
    path = write_demo_files(directory, url, token, [(n, sim.world.demarches[n].title)
                                                    for n in (campaigns.PREVIOUS, campaigns.NEXT)])
    text = path.read_text(encoding="utf-8").replace("[ds]\n", f'[ds]\ninstructeur_email = "{instructeur}"\n', 1)
    text += (f"previous = {campaigns.PREVIOUS}\n\n[demarches.renewal]\nrentree = {campaigns.RENTREE}\n"
             f"new_schools = {campaigns.NEW_SCHOOLS}\ncutoff = {campaigns.CUTOFF}\nreminders = false\n")
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    lines = [f"8. Renewal {campaigns.PREVIOUS} (2025-2026, closed) → {campaigns.NEXT} (2026-2027): two more "
             f"campaigns planted, mirrored into {_relative(directory / 'ds-connector.sqlite')}"]
    lines += await renewal_demo(config, load_token(config, environ={}),
                                lambda when: sim.advance((when - sim.now()).total_seconds()))
    return lines


def _forms(config, state_dir: Path) -> None:
    """Open anomalies per rule and the exports (schools, ENT openings and closings, billing) as files."""
    db = open_db(config.database.path)
    try:
        click.echo("Anomalies found in the forms (open, per rule and démarche):")
        for line in anomalies_by_rule(db):
            click.echo(line)
        click.echo("")
        click.echo("Exports (xlsx for people, CSV and JSON for scripts; Occitanie opens once the signed convention "
                   "is in):")
        for line in write_exports(db, config, _relative(state_dir / "exports")):
            click.echo(line)
    finally:
        db.close()
    click.echo("")


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def demo(state_dir: Path, seed: int, dossiers: int) -> None:
    terminal = terminal_console(sys.stderr) if sys.stderr.isatty() else None
    # before any config (the demo writes its own); warnings go above the progress display, never on its lines
    service.configure_logging(None, "demo", stream=logs.ConsoleLines(terminal) if terminal else None)
    asyncio.run(run_demo(state_dir, seed, dossiers, terminal))
