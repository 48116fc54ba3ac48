"""``ds-connector actions plan|run|list|retry|cancel``: the convention follow-up's side effects on DS."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, time, timedelta
from pathlib import Path

import click

from connector import service
from connector.config import Config, load_config, select_demarches
from connector.credentials import ApiToken, load_token
from connector.errors import ConnectorError
from connector.commands.hooks import sync_hooks
from connector.followup import actions as followup
from connector.followup import journal, renewal_reminders
from connector.lock import InstanceLock
from connector.logs import get_logger
from connector.store import followup as store
from connector.store.db import open_db, open_db_readonly
from connector.store.values import PARIS

log = get_logger(__name__)


def plan_lines(report: followup.RunReport) -> list[str]:
    lines = [f"DS clock: {report.ds_now:%Y-%m-%d %H:%M:%S %Z}" if report.ds_now else "DS clock: unknown"]
    if not report.plans and not report.renewals:
        lines.append("No configured démarche has the convention deadline.")
    for plan in report.plans:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(plan.statuses.items()))
        lines.append(f"démarche {plan.demarche} ({plan.profile.name if plan.profile else '?'}): {counts}")
        if plan.problem:
            lines.append(f"  cannot act: {plan.problem}")
        todo = [d for d in plan.decisions if d.kind]
        skipped = [d for d in plan.decisions if not d.kind]
        if not todo and not skipped:
            lines.append("  nothing to do now")
        for d in todo:
            when = f" (from {d.not_before})" if d.not_before else ""
            lines.append(f"  dossier {d.dossier}: {d.kind}{when} — {d.rule}")
        for d in skipped:
            lines.append(f"  dossier {d.dossier}: nothing — {d.rule}")
    for rp in report.renewals:
        schools = ", ".join(f"{n} {s}" for s, n in rp.schools.items() if n)
        lines.append(f"renewal {rp.previous} → {rp.demarche}: cut-off in {rp.days_to_cutoff} day(s); schools: "
                     f"{schools or 'none'}; communes: {rp.communes['renewed']} renewed, {rp.communes['pending']} "
                     f"pending, {rp.communes['not_renewed']} not renewed")
        if rp.problem:
            lines.append(f"  cannot act: {rp.problem}")
        for d in rp.decisions:
            what = f"{d.kind} (from {d.not_before})" if d.kind else "nothing"
            lines.append(f"  dossier {d.dossier} (previous campaign): {what} — {d.rule}")
    return lines


def plan(config_path: Path | None, demarches: list[int], verbose: bool = False) -> int:
    """What ``run`` would do now, and why, at DS's clock. Nothing is kept: DS is asked its clock first,
    then the plans are worked out under the instance lock in a transaction that is rolled back (it
    waits for a run in progress)."""
    config = load_config(config_path)
    select_demarches(config, demarches)
    service.configure_logging(config, "actions", verbose=verbose)
    token = load_token(config)
    with service.hold_lock(config, "actions plan", wait=True) as lock:
        report = asyncio.run(service.plan(config, token, lock, sync_hooks(config), demarches or None))
    for line in plan_lines(report):
        click.echo(line)
    return 0


def run(config_path: Path | None, demarches: list[int], settle: float, verbose: bool = False) -> int:
    config = load_config(config_path)
    select_demarches(config, demarches)
    service.configure_logging(config, "actions", verbose=verbose)
    report = asyncio.run(run_actions(config, demarches, timedelta(seconds=settle)))
    click.echo(report.summary())
    return 0 if not (report.failed or report.unknown) else 1


async def run_actions(config: Config, demarches: list[int] | None = None,
                      settle: timedelta = timedelta(seconds=60)) -> followup.RunReport:
    """``actions run``: the run service's follow-up alone, its actions on, under the instance lock
    (LockHeld, exit 75, while a sync or the daemon's run holds it). ``report.renewals`` holds the
    renewal plans."""
    with InstanceLock(config.state_dir, holder="actions run") as lock:
        outcome = await service.run(config, load_token(config), lock, kind="actions", hooks=sync_hooks(config),
                                    demarches=demarches or None, sync=False, settle=settle)
    assert outcome.followup is not None
    return outcome.followup


def list_actions(config_path: Path | None, states: list[str], dossier: int | None) -> int:
    config = load_config(config_path)
    db = open_db_readonly(config.database.path)
    rows = store.actions(db, states=tuple(states), dossier=dossier)
    if not rows:
        click.echo("No action in the journal" + (" with these filters." if states or dossier else "."))
        return 0
    click.echo(f"{'id':>5}  {'dossier':>9}  {'kind':<24} {'state':<10} {'tries':>5}  {'updated (UTC)':<20} why / DS")
    for a in rows:
        note = a.last_error or a.rule
        click.echo(f"{a.id:>5}  {a.dossier_number:>9}  {a.kind:<24} {a.state:<10} {a.attempts:>5}  "
                   f"{a.updated_at[:19]:<20} {note}")
    counts = ", ".join(f"{n} {s}" for s, n in store.state_counts(db).items())
    click.echo(f"journal: {counts}")
    return 0


def retry(config_path: Path | None, action_id: int) -> int:
    a = _operator(config_path, action_id, journal.operator_retry, "followup.operator_retry")
    click.echo(f"action {a.id} (dossier {a.dossier_number}, {a.kind}) is planned again: the next run sends it")
    return 0


def cancel(config_path: Path | None, action_id: int) -> int:
    a = _operator(config_path, action_id, journal.operator_cancel, "followup.operator_cancel")
    click.echo(f"action {a.id} (dossier {a.dossier_number}, {a.kind}) is cancelled")
    return 0


def _operator(config_path: Path | None, action_id: int, move, event: str):
    """An operator's ``actions retry|cancel ID``: the journal's transition, logged; a refused one is a
    human error. Under the instance lock (waiting for a run in progress): the run's follow-up may be
    sending that very action."""
    config = load_config(config_path)
    with service.hold_lock(config, f"actions {event.rsplit('_', 1)[-1]}", wait=True):
        db = open_db(config.database.path)
        try:
            a = move(db, action_id)
        except journal.JournalError as exc:
            raise ConnectorError(str(exc)) from None
        finally:
            db.conn.close()
    log.info(event, action=action_id, dossier=a.dossier_number)
    return a


# --- the demo (connector/commands/demo.py) ------------------------------------------------------


def add_demo_followup(config_path: Path, instructeur_email: str, demarche: int) -> None:
    """Make the demo config act as ``instructeur_email`` and give ``demarche`` a deadline block (actions
    off: the demo turns them on for one run)."""
    text = config_path.read_text(encoding="utf-8")
    text = text.replace("[ds]\n", f'[ds]\ninstructeur_email = "{instructeur_email}"\n', 1)
    block = ("[demarches.deadline]\nreminders = false\nclasser_sans_suite = false\n"
             "weekdays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nhours = [0, 24]\n")
    marker = f"number = {demarche}\n"
    head, _, tail = text.partition(marker)
    first_line, newline, rest = tail.partition("\n\n")
    text = head + marker + first_line + newline + block + "\n" + rest if newline else text + "\n" + block
    config_path.write_text(text, encoding="utf-8")


async def demo_followup(config: Config, token: ApiToken, lock: InstanceLock, log_entries) -> list[str]:  # type: ignore[no-untyped-def]
    """The demo's follow-up part (under the demo's ``lock``): statuses, ``actions plan``, then one run
    with actions enabled and the journal. ``log_entries()``: the simulator's mutation journal."""
    lines: list[str] = []
    report = await service.plan(config, token, lock, sync_hooks(config))
    for plan in report.plans:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(plan.statuses.items()))
        lines.append(f"5. Signed conventions of démarche {plan.demarche} ({plan.profile.name}), "
                     f"DS clock {report.ds_now:%Y-%m-%d %H:%M} UTC:")
        lines.append(f"     {counts}")
    on = dataclasses.replace(config, demarches=tuple(
        dataclasses.replace(d, deadline=dataclasses.replace(d.deadline, reminders=True, classer_sans_suite=True))
        for d in config.demarches))
    would = await service.plan(on, token, lock, sync_hooks(on))
    decisions = [d for p in would.plans for d in p.decisions if d.kind]
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(_count(d.kind for d in decisions).items()))
    lines.append("")
    lines.append(f"6. actions plan (with reminders and classer_sans_suite on): {len(decisions)} actions ({kinds})")
    shown = {}
    for d in decisions:
        shown.setdefault(d.kind, d)
    for d in shown.values():
        lines.append(f"     dossier {d.dossier}: {d.kind} — {d.rule}")
    ran = (await service.run(on, token, lock, kind="demo", hooks=sync_hooks(on), sync=False,
                             settle=timedelta())).followup
    assert ran is not None
    lines.append("")
    lines.append(f"7. actions run on the simulator: {ran.summary()}")
    db = open_db_readonly(config.database.path)
    try:
        states = _count(f"{a.kind} {a.state}" for a in store.actions(db))
        lines.append("   journal: " + ", ".join(f"{n} {k}" for k, n in sorted(states.items())))
        counts = store.status_counts(db, next(iter(p.demarche for p in report.plans)))
        lines.append("   statuses now: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    finally:
        db.conn.close()
    entries = log_entries()
    effects = _count((e["name"], e.get("dossier"), str(e["input"].get("body") or e["input"].get("annotations")
                                                        or e["input"].get("motivation") or ""))
                     for e in entries if e["outcome"] == "ok")
    lines.append(f"   the simulator received {len(entries)} mutations, {len(effects)} distinct side effects, "
                 f"{sum(n - 1 for n in effects.values())} duplicates")
    return lines


def _count(items) -> dict:  # type: ignore[no-untyped-def]
    out: dict = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


async def renewal_demo(config: Config, token, advance_to) -> list[str]:  # type: ignore[no-untyped-def]
    """The demo's renewal part (a config with one campaign pair): a sync, the figures and the reminders
    ``actions plan`` would send (reminders turned on for the plan only), then the clock moved past the
    cut-off (``advance_to(when)``), a sync, the figures again."""
    on = dataclasses.replace(config, demarches=tuple(
        dataclasses.replace(d, renewal=dataclasses.replace(d.renewal, reminders=True)) if d.renewal else d
        for d in config.demarches))

    async def plans() -> list[renewal_reminders.RenewalPlan]:
        with InstanceLock(config.state_dir, holder="demo") as lock:
            outcome = await service.run(config, token, lock, kind="demo", hooks=sync_hooks(config))
            assert outcome.sync is not None
            for d in outcome.sync.demarches:
                if d.error is not None:
                    raise ConnectorError(f"démarche {d.number}: {d.error}")
            return (await service.plan(on, token, lock, sync_hooks(on))).renewals

    def figures(rp: renewal_reminders.RenewalPlan) -> str:
        s, c = rp.schools, rp.communes
        last_year = ", ".join(f"{s[k]} {k}" for k in ("renouvelee", "en_attente", "non_renouvelee", "fermee") if s[k])
        return (f"last year's schools: {last_year}; new schools: {s['nouvelle']}; communes: {c['renewed']} renewed, "
                f"{c['pending']} pending, {c['not_renewed']} not renewed")

    lines = []
    rp, = await plans()
    lines.append(f"     DS clock {rp.today}, cut-off in {rp.days_to_cutoff} day(s): {figures(rp)}")
    todo = [d for d in rp.decisions if d.kind]
    lines.append(f"     actions plan (with reminders on): {len(todo)} reminder(s) on last year's dossiers of the "
                 "communes that have not filed")
    lines += [f"     dossier {d.dossier}: nothing — {d.rule}" for d in rp.decisions if not d.kind]
    cutoff = next(d.renewal.cutoff for d in config.demarches if d.renewal)
    advance_to(datetime.combine(cutoff + timedelta(days=1), time(8), PARIS))
    rp, = await plans()
    lines.append(f"     DS clock {rp.today}, the cut-off passed: {figures(rp)}")
    return lines
