"""Helpers for the follow-up tests: a simulator world with the Occitanie démarche configured for the
deadline, syncing and running the actions in-process (as the daemon does after each sync), reading
statuses and the simulator's mutation journal."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from connector.commands.actions import run_actions
from connector.commands.hooks import sync_hooks
from connector.config import Config, load_config
from connector.simulator.state import World
from syncenv import run_once, sync, write_config

ALL_DAYS = "weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']\nhours = [0, 24]\n"


def occitanie(world: World) -> int:
    return next(n for n, d in world.demarches.items() if d.kind == "occitanie")


def api_instructeur(world: World) -> str:
    """The technical account in every groupe of the Occitanie démarche (the seeder's TECH account)."""
    groupes = world.demarches[occitanie(world)].groupes
    common = set.intersection(*(set(g.instructeur_ids) for g in groupes))
    return world.instructeurs[min(common)].email


def followup_config(directory: Path, simulator: Any, *, reminders: bool = False, classer: bool = False,
                    deadline_extra: str = ALL_DAYS, instructeur: str | None = None, token: str | None = None,
                    only_occitanie: bool = True) -> Config:
    world = simulator.world
    occ = occitanie(world)
    demarches = [occ] if only_occitanie else sorted(world.demarches)
    path = write_config(directory, simulator.url, token or simulator.token, demarches)
    email = instructeur or api_instructeur(world)
    text = path.read_text().replace("[ds]\n", f'[ds]\ninstructeur_email = "{email}"\n', 1)
    block = (f"[demarches.deadline]\nreminders = {str(reminders).lower()}\n"
             f"classer_sans_suite = {str(classer).lower()}\n{deadline_extra}")
    text = text.replace(f"number = {occ}\n", f"number = {occ}\n{block}\n", 1)
    path.write_text(text)
    return load_config(path)


def sync_and_act(config: Config, *, settle: float = 0) -> Any:
    """One daemon cycle: a sync with the hooks, then the actions (after_sync)."""
    report = sync(config, hooks=sync_hooks(config))
    assert report.exit_code == 0, report.summary()
    return asyncio.run(run_actions(config, settle=timedelta(seconds=settle)))


def statuses(config: Config) -> dict[int, str]:
    with closing(sqlite3.connect(config.database.path)) as conn:
        return dict(conn.execute("SELECT dossier_number, status FROM conventions"))


def convention(config: Config, number: int) -> dict[str, Any]:
    with closing(sqlite3.connect(config.database.path)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM conventions WHERE dossier_number = ?", [number]).fetchone()
        return dict(row) if row else {}


def journal(config: Config, **where: Any) -> list[dict[str, Any]]:
    clause = " AND ".join(f"{k} = ?" for k in where) or "1"
    with closing(sqlite3.connect(config.database.path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM actions WHERE {clause} ORDER BY id", list(where.values()))]


def effects(log: list[dict[str, Any]]) -> Counter:
    """Each successful side effect the simulator received, counted: (mutation, dossier, what)."""
    out: Counter = Counter()
    for e in log:
        if e["outcome"] != "ok":
            continue
        inp = e["input"]
        what = inp.get("body") or inp.get("motivation") or str(inp.get("annotations") or "")
        out[(e["name"], e.get("dossier"), what)] += 1
    return out


def paris_at(world: World, when: Any, simulator: Any) -> None:
    """Advance the simulator's clock to ``when`` (an aware datetime)."""
    delta = (when - world.clock.now()).total_seconds()
    assert delta >= 0, f"cannot go back in time to {when}"
    simulator.control("advance", seconds=delta)


def sync_and_refresh(config: Config) -> Any:
    """A sync as the ``sync`` command runs it: the hooks, then after_sync (statuses with DS's clock,
    and the actions when enabled)."""
    report = run_once(config).sync
    assert report.exit_code == 0, report.summary()
    return report
