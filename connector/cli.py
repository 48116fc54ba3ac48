"""The ``ds-connector`` command line: a thin click layer over the library.

Commands parse arguments, load the config and call into ``connector``; errors meant for humans
(:class:`connector.errors.ConnectorError`) are printed without a traceback and mapped to exit codes.

Each command imports its ``connector.commands`` module (and the simulator, the store) inside its
function, for start-up speed: ``--help`` and a mistyped option load neither sqlite_utils, aiohttp nor
the simulator. These lazy imports are allowed here only, and only because none of them closes an import
cycle (``tests/test_imports.py`` checks both).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from pathlib import Path

import click

from connector import __version__
from connector.errors import EX_SOFTWARE, ConfigError, ConnectorError, machine_fault

# Every file the connector writes holds personal data or points at it (the mirror, its -wal/-shm,
# attachments, exports, the lock and heartbeat files): readable by their owner only, whatever the
# caller's umask (systemd's UMask=0077 says the same for the services).
UMASK = 0o077


def human_errors(fn):
    """Print ConnectorErrors as one clear message (plus problems) and exit with their code; a fault
    of the machine (disk full, read-only file system, permission refused) likewise, exit 74."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConnectorError as exc:
            click.echo(f"ds-connector: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (sqlite3.Error, OSError) as exc:
            from connector.store.db import last_opened  # sqlite_utils is not loaded for --help

            fault = machine_fault(exc, database=last_opened())
            if fault is None:
                raise
            click.echo(f"ds-connector: {fault}", err=True)
            sys.exit(fault.exit_code)
        except KeyboardInterrupt:
            click.echo("ds-connector: interrupted", err=True)
            sys.exit(130)

    return wrapper


# One example per command, shown at the end of its --help (as sqlite-utils does).
EXAMPLES = {
    "simulate": "ds-connector simulate --port 8484 --dossiers 5000 --latency 0.3",
    "check-config": "ds-connector check-config --config /etc/ds-connector/config.toml",
    "sync": "ds-connector sync --config config.toml --demarche 131274 --full",
    "demo": "ds-connector demo --state-dir /tmp/demo --dossiers 1000",
    "check": "ds-connector check --config config.toml --demarche 131274 --full",
    "export": "ds-connector export facturation --config config.toml --demarche 131274 --output facturation.csv",
    "actions": "ds-connector actions plan --config config.toml",
    "actions plan": "ds-connector actions plan --config config.toml --demarche 131274",
    "actions run": "ds-connector actions run --config config.toml --settle 120",
    "actions list": "ds-connector actions list --config config.toml --state failed --state unknown",
    "actions retry": "ds-connector actions retry --config config.toml 42",
    "actions cancel": "ds-connector actions cancel --config config.toml 42",
    "daemon": "ds-connector daemon --config /etc/ds-connector/config.toml",
    "status": "ds-connector status --config /etc/ds-connector/config.toml --format prometheus",
    "serve": "ds-connector serve --config /etc/ds-connector/config.toml --add-user camille",
}


class Commands(click.Group):
    """A click group whose command list shows each command's first sentence whole (click's default
    cuts it at 45 characters, mid-sentence), and whose commands end their --help with their example
    from :data:`EXAMPLES`. Its sub-groups are of the same class."""

    group_class = type

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        key = cmd.name if self.name in (None, "cli") else f"{self.name} {cmd.name}"
        example = EXAMPLES.get(key or "")
        if example and not cmd.epilog:
            cmd.epilog = f"\b\nExample:\n  {example}"  # \b: click keeps these lines as they are

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ds-connector")
def cli() -> None:
    """Mirror Démarches-Simplifiées démarches into SQLite and act on them safely.

    Start with `ds-connector demo` on a fresh machine: it runs the built-in DS simulator and a
    full sync against it.
    """


CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: ./config.toml, then /etc/ds-connector/config.toml).",
)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8484, show_default=True, type=int, help="Port (0: any free port).")
@click.option("--seed", default=2026, show_default=True, type=int, help="Seed of the generated data.")
@click.option(
    "--dossiers", default=300, show_default=True, type=click.IntRange(0, 200_000),
    help="Dossiers to generate, spread over the three démarches.",
)
@click.option(
    "--rate-limit", default=400, show_default=True, type=click.IntRange(0),
    help="Requests per token per epoch minute (DS's RACK_ATTACK_GRAPHQL_LIMIT); 0 disables it.",
)
@click.option("--token", default=None, help="Accept this API token (default: a token derived from the seed).")
@click.option(
    "--latency", default=0.0, show_default=True, type=click.FloatRange(0, 600), metavar="SECONDS",
    help="Server time added to every GraphQL answer (concurrent requests wait independently), to be as slow as DS.",
)
@click.option(
    "--with", "extras", multiple=True, type=click.Choice(["ordinary", "versailles", "campaign-2024", "renewal"]),
    help="Also serve: 'ordinary' forms that are no ENT-École forms (subsidy, permit, complaint...), "
         "'versailles' (Poitiers' form cloned by an académie with no built-in profile), 'campaign-2024' "
         "(Occitanie's form at 45 € per school), 'renewal' (two successive Occitanie campaigns, 2025-2026 closed "
         "and 2026-2027, planted for the renewal from one school year to the next; truth at "
         "/_sim/renewal/truth). Repeatable.",
)
@click.option(
    "--demarches", "sizes", default=None, metavar="OCC,POI,CRE[,2024]",
    help="Dossiers per démarche instead of --dossiers' 2:1:1 spread: Occitanie, Poitiers, Créteil (about: "
         "Créteil keeps the fates only it has), and a fourth number adds Occitanie's 2024-2025 campaign "
         "with that many (at most 1 042). A large académie: 2000,1500,750,750.",
)
@click.option(
    "--files-per-dossier", default=None, type=click.FloatRange(0, 20), metavar="F",
    help="Add usager messages with an attachment until the messagerie holds about F attachments per dossier.",
)
@click.option(
    "--file-kb", default=None, type=click.IntRange(1, 100_000), metavar="KB",
    help="Mean size of the attachments --files-per-dossier adds (default: the seed's, mostly small).",
)
@human_errors
def simulate(host: str, port: int, seed: int, dossiers: int, rate_limit: int, token: str | None,
             latency: float, extras: tuple[str, ...], sizes: str | None, files_per_dossier: float | None,
             file_kb: int | None) -> None:
    """Run the built-in DS API simulator (GraphQL on /api/v2/graphql).

    Example: ds-connector simulate --port 8484 --with ordinary --with versailles

    A large académie's world: ds-connector simulate --demarches 2000,1500,750,750 --files-per-dossier 1.6 --file-kb 190
    """
    from connector.simulator.server import serve

    parsed: tuple[int, ...] = ()
    if sizes:
        try:
            parsed = tuple(int(n) for n in sizes.split(","))
        except ValueError:
            raise click.BadParameter(f"expected 3 or 4 numbers separated by commas, not {sizes!r}",
                                     param_hint="--demarches") from None
        if len(parsed) not in (3, 4) or any(n < 0 for n in parsed) or not sum(parsed[:3]) \
                or sum(parsed[:3]) > 200_000 or (len(parsed) == 4 and parsed[3] > 1042):
            raise click.BadParameter(f"expected 3 or 4 numbers >= 0 (the first three not all 0, at most 200 000 "
                                     f"in all, the fourth at most 1 042), not {sizes!r}", param_hint="--demarches")
    serve(host=host, port=port, seed=seed, dossiers=dossiers, rate_limit=rate_limit, token=token, latency=latency,
          extras=extras, sizes=parsed, files_per_dossier=files_per_dossier, file_kb=file_kb)


@cli.command("check-config")
@CONFIG_OPTION
@human_errors
def check_config(config_path: Path | None) -> None:
    """Validate the config file and the API token lookup; list every problem at once.

    Also warns (exit 0) when an existing database, its -wal/-shm or the files directory is readable
    beyond its owner."""
    from connector.commands.check import forms_report
    from connector.commands.check_config import summary as config_summary
    from connector.config import load_config
    from connector.store.db import mirror_modes

    summary = config_summary(config_path)
    config = load_config(config_path)
    modes = [f"  WARNING: {line}" for line in mirror_modes(config)]
    if not modes and config.database.path.exists():
        modes = ["  Files:        readable by their owner only"]
    forms, problems = forms_report(config_path)
    click.echo("\n".join([summary, *modes, forms]))
    if problems:
        raise ConfigError("the forms' roles need attention ([demarches.roles] overrides)", problems)


@cli.command()
@CONFIG_OPTION
@click.option("--demarche", "demarches", type=click.IntRange(1), multiple=True, metavar="N",
              help="Sync only this démarche (repeatable; default: every configured one).")
@click.option("--full", is_flag=True,
              help="Also reconcile: list every dossier, re-fetch what differs, confirm vanished ones.")
@click.option("--once", is_flag=True, hidden=True, help="Accepted for the systemd one-shot unit: sync always runs once.")
@click.option("-v", "--verbose", is_flag=True, help="On a terminal, also show the log lines.")
@click.option("--wait", is_flag=True, help="If the daemon or another sync is running, wait for it instead of exiting 75.")
@human_errors
def sync(config_path: Path | None, demarches: tuple[int, ...], full: bool, once: bool, verbose: bool,
         wait: bool) -> None:
    """Sync the configured démarches into the SQLite mirror, once.

    Takes the single-instance lock (exit 75 if the daemon or another sync holds it). On a terminal it
    shows a progress display (each démarche's phase, the counts, the time left where a total is
    known), otherwise it logs JSON lines; it ends with a two-line summary. Exit codes: 0 done,
    65 partial (dossiers quarantined or files failed; the rest stored), 70 a bug (in one démarche:
    the others are still synced), 73 an attachment could not be written here (disk full, permission,
    name refused), 74 the database could not be written (disk full, read-only, permission: the run
    stopped, nothing lost), 75 DS unavailable (unreachable: given up after about 15 s) or lock held
    (try later), 78 bad config or token.
    """
    from connector.commands.sync import sync_once

    sys.exit(sync_once(config_path, list(demarches), full=full, verbose=verbose, wait=wait))


@cli.command()
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("state/demo"),
    show_default=True, help="Where the demo config, token and database go.",
)
@click.option("--seed", default=2026, show_default=True, type=int, help="Seed of the simulated data.")
@click.option("--dossiers", default=300, show_default=True, type=click.IntRange(1, 200_000),
              help="Dossiers the simulator generates.")
@human_errors
def demo(state_dir: Path, seed: int, dossiers: int) -> None:
    """Start the built-in simulator on a free loopback port and read it with the connector."""
    from connector.commands.demo import demo as run

    run(state_dir, seed, dossiers)


@cli.command("check")
@CONFIG_OPTION
@click.option("--demarche", "demarches", type=click.IntRange(1), multiple=True, metavar="N",
              help="Check only this démarche (repeatable; default: every configured one).")
@click.option("--full", is_flag=True, help="Re-evaluate every dossier (after a rule or config change).")
@human_errors
def check_forms(config_path: Path | None, demarches: tuple[int, ...], full: bool) -> None:
    """Re-resolve the form roles and evaluate the dossiers of the mirror; list open anomalies per rule.

    Without --full, only the dossiers changed since their last evaluation. Takes the instance lock,
    waiting (and saying so) while a sync or the daemon's run holds it.
    """
    from connector.commands.check import check

    sys.exit(check(config_path, list(demarches), full))


# The export kinds (``forms.exports.KINDS``), repeated so that --help loads neither the store nor
# XlsxWriter; tests/test_imports.py checks the copy.
EXPORT_KINDS = ("ecoles", "ouvertures", "fermetures", "facturation", "anomalies", "renouvellements")


def _delimiter(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if len(value) != 1 or value in '"\r\n' or value.isalnum():
        raise click.BadParameter(f"one character that is not a letter, a digit, a quote or a line break "
                                 f"(e.g. ';', ',' or a tab), not {value!r}")
    return value


@cli.command("export")
@click.argument("kind", type=click.Choice([*EXPORT_KINDS, "all"]))
@CONFIG_OPTION
@click.option("--demarche", "demarches", type=click.IntRange(1), multiple=True, metavar="N",
              help="Only this démarche (repeatable; default: every démarche of the mirror).")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv", "json"]), default=None,
              help="xlsx for people, csv or json for scripts (default: from the --output suffix, else csv).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (default: standard output).")
@click.option("--strict", is_flag=True,
              help="facturation: leave out the lines whose dossier has an open error anomaly.")
@click.option("--delimiter", default=";", show_default=True, callback=_delimiter, help="CSV field separator.")
@click.option("--decimal", type=click.Choice([",", "."]), default=",", show_default=True,
              help="CSV decimal separator.")
@human_errors
def export_lists(kind: str, config_path: Path | None, demarches: tuple[int, ...], fmt: str | None,
                 output: Path | None, strict: bool, delimiter: str, decimal: str) -> None:
    """Export schools, ENT openings and closings (for the AAF), billing, open anomalies, or the renewal of
    last year's schools (renouvellements: a démarche configured with previous = N).

    xlsx is for people: typed cells (amounts are numbers, SIRET, UAI and dossier numbers are text, so
    Excel keeps every digit), French headers, ready to filter and print; `all` writes every kind into
    one workbook. CSV (UTF-8 with a BOM, ';', decimal comma, every field quoted) and JSON are for
    scripts. facturation flags in "à vérifier" the lines whose dossier has an open error anomaly
    (--strict leaves them out). Reads the mirror without the lock.

    \b
    Examples:
      ds-connector export facturation --output facturation.xlsx
      ds-connector export all --demarche 131274 --output exports.xlsx
      ds-connector export ouvertures --format csv > ouvertures.csv
    """
    from connector.commands.export import export
    from connector.forms.exports import CsvStyle

    suffix = output.suffix.lower().lstrip(".") if output else ""
    if fmt is None:
        fmt = suffix if suffix in ("xlsx", "csv", "json") else "csv"
    elif suffix in ("xlsx", "csv", "json") and suffix != fmt:
        raise click.UsageError(f"--format {fmt} but --output ends in .{suffix}")
    if kind == "all" and fmt != "xlsx":
        raise click.UsageError("export all writes one workbook, a sheet per kind: use --format xlsx "
                               "or an --output ending in .xlsx")
    if fmt == "xlsx" and output is None and sys.stdout.isatty():
        raise click.UsageError("xlsx is a binary file: give --output FILE.xlsx (or redirect standard output)")
    if strict and kind not in ("facturation", "all"):
        raise click.UsageError("--strict only concerns facturation (or all)")
    sys.exit(export(config_path, kind, list(demarches), fmt, output, CsvStyle(delimiter, decimal), strict))


@cli.group()
def actions() -> None:
    """The follow-up's side effects on DS (convention reminders and closures, renewal reminders on last
    year's dossiers), journaled exactly once."""


DEMARCHE_OPTION = click.option("--demarche", "demarches", type=click.IntRange(1), multiple=True, metavar="N",
                               help="Only this démarche (repeatable).")
# The journal's states (``store.shape.ACTION_STATES``), repeated so that --help loads no store module;
# tests/test_imports.py checks the two are the same.
ACTION_STATES = ("planned", "sending", "sent", "failed", "unknown", "cancelled")


@actions.command("plan")
@CONFIG_OPTION
@DEMARCHE_OPTION
@click.option("-v", "--verbose", is_flag=True, help="On a terminal, also show the log lines.")
@human_errors
def actions_plan(config_path: Path | None, demarches: tuple[int, ...], verbose: bool) -> None:
    """Show what `actions run` would do now, and why; touches nothing (reads DS's clock).

    With a renewal configured (previous = N), also the figures of each campaign pair and the dossiers
    no reminder can reach (archived, in the trash)."""
    from connector.commands.actions import plan

    sys.exit(plan(config_path, list(demarches), verbose))


@actions.command("run")
@CONFIG_OPTION
@DEMARCHE_OPTION
@click.option("--settle", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds before a sending/unknown action is read back from DS (a request DS may still run).")
@click.option("-v", "--verbose", is_flag=True, help="On a terminal, also show the log lines.")
@human_errors
def actions_run(config_path: Path | None, demarches: tuple[int, ...], settle: float, verbose: bool) -> None:
    """Take the due actions on DS (the daemon does it after each sync). Exit 1 if any failed."""
    from connector.commands.actions import run

    sys.exit(run(config_path, list(demarches), settle, verbose))


@actions.command("list")
@CONFIG_OPTION
@click.option("--state", "states", type=click.Choice(ACTION_STATES), multiple=True, help="Only this state (repeatable).")
@click.option("--dossier", type=click.IntRange(1), default=None, help="Only this dossier.")
@human_errors
def actions_list(config_path: Path | None, states: tuple[str, ...], dossier: int | None) -> None:
    """List the journal of actions (read-only, no lock)."""
    from connector.commands.actions import list_actions

    sys.exit(list_actions(config_path, list(states), dossier))


@actions.command("retry")
@CONFIG_OPTION
@click.argument("action_id", type=click.IntRange(1), metavar="ID")
@human_errors
def actions_retry(config_path: Path | None, action_id: int) -> None:
    """Plan a failed (or cancelled) action again; the next run sends it."""
    from connector.commands.actions import retry

    sys.exit(retry(config_path, action_id))


@actions.command("cancel")
@CONFIG_OPTION
@click.argument("action_id", type=click.IntRange(1), metavar="ID")
@human_errors
def actions_cancel(config_path: Path | None, action_id: int) -> None:
    """Cancel a planned, failed or unknown action: it will not be sent."""
    from connector.commands.actions import cancel

    sys.exit(cancel(config_path, action_id))


@cli.command()
@CONFIG_OPTION
@click.option("--interval-seconds", type=click.FloatRange(0.1), default=None, hidden=True,
              help="Tests only: the sync interval in seconds instead of [sync] interval_minutes.")
@human_errors
def daemon(config_path: Path | None, interval_seconds: float | None) -> None:
    """Run unattended: a sync every [sync] interval_minutes, the full pass daily at reconcile_at.

    Speaks systemd's notify protocol when NOTIFY_SOCKET is set (READY, WATCHDOG, STATUS, STOPPING).
    Holds the single-instance lock only while a run goes (a manual sync between runs works).
    SIGTERM: the page being stored commits, exit 0. SIGHUP: the config is read again (an invalid one
    is logged and the old one kept). Exit 78 on a permanent error (bad config, refused or expired
    token), which systemd does not restart.
    """
    from connector.commands.daemon import run_daemon

    sys.exit(run_daemon(config_path, interval_seconds=interval_seconds))


@cli.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object (stable shape, see README).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "prometheus"]), default="text",
              show_default=True, help="prometheus: the node_exporter textfile-collector format.")
@human_errors
def status(config_path: Path | None, as_json: bool, fmt: str) -> None:
    """Is it working, and what is it about to do? Read-only, without the lock or the token.

    Exit code = health, Nagios-style: 0 OK, 1 WARNING (no success for 3 intervals, quarantine not
    empty, token expiring within 30 days), 2 CRITICAL (no success for a day or never, last run
    failed, an action in `unknown`, token expired), 3 UNKNOWN (no readable database).
    """
    from connector.commands.status import show_status

    sys.exit(show_status(config_path, "json" if as_json else fmt))


@cli.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Address to listen on (default: [web] host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default: [web] port, 8001).")
@click.option("--add-user", "add_user", metavar="NAME", default=None,
              help="Add an account (or change its password), asking for the password twice; then exit.")
@click.option("--init", "init", is_flag=True,
              help="Only create the session secret (and an empty accounts file) beside the config; then exit.")
@human_errors
def serve(config_path: Path | None, host: str | None, port: int | None, add_user: str | None, init: bool) -> None:
    """The instructeurs' web view of the mirror (read-only), behind a login.

    \b
    Examples:
      ds-connector serve --config /etc/ds-connector/config.toml --add-user camille
      ds-connector serve --config /etc/ds-connector/config.toml        # http://127.0.0.1:8001/

    Every page but /healthz needs a login (accounts in web-users beside the config) or, from a
    [web] trusted_proxies address, the [web] user_header. Never uses the API token, never writes.
    """
    from connector.commands import serve as command

    if add_user is not None:
        sys.exit(command.add_user(config_path, add_user))
    if init:
        sys.exit(command.init(config_path))
    sys.exit(command.serve(config_path, host, port))


def main() -> None:
    os.umask(UMASK)
    try:
        cli(prog_name="ds-connector")
    except SystemExit:
        raise
    except Exception:  # a bug: keep the traceback, but never the locals (they may hold the token)
        import traceback

        traceback.print_exc(limit=20)
        sys.exit(EX_SOFTWARE)


if __name__ == "__main__":
    main()
