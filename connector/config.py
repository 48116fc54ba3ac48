"""The TOML config file, loaded once into frozen dataclasses with every problem listed at once.

Search order: ``--config PATH``, then ``./config.toml``, then ``/etc/ds-connector/config.toml``.
Relative paths in the file resolve against the file's own directory. The API token is never in the
file (see :mod:`connector.credentials`, which reads the token a config names); ``ds-connector
check-config`` (:mod:`connector.commands.check_config`) validates both.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from connector import templates
from connector.errors import ConfigError
from connector.roles import PROFILE_CHOICES, ROLES

SEARCH_PATHS = (Path("config.toml"), Path("/etc/ds-connector/config.toml"))
DEFAULT_URL = "https://demarche.numerique.gouv.fr/api/v2/graphql"
DS_REQUESTS_PER_MINUTE = 400  # DS's rate limit per token (docs/ds-api.md §3)
DS_MAX_PAGE_SIZE = 100  # DS clamps `first` silently above this
GRAPHQL_MAX_INT = 2**31 - 1

AttachmentPolicy = Literal["none", "messages", "all"]
ATTACHMENT_POLICIES: tuple[AttachmentPolicy, ...] = ("none", "messages", "all")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
SECRET_KEYS = frozenset(
    {"token", "api_token", "ds_api_token", "api_key", "apikey", "bearer", "authorization", "password", "secret"}
)
TOKEN_HOME = (
    "the API token never goes in the config file: put it in /etc/ds-connector/ds-api-token (mode 0600) "
    "for systemd's LoadCredential=, or in a file named by [ds] token_file"
)
# Hosts that answer the API with a redirect, which turns the POST into a GET (docs/ds-api.md §1).
REDIRECTING_HOSTS = {"demarches.numerique.gouv.fr": "demarche.numerique.gouv.fr"}


@dataclass(frozen=True)
class DsConfig:
    url: str = DEFAULT_URL
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 65.0  # DS stops GraphQL at 30 s and its database at 60 s
    requests_per_minute: int = 300
    token_file: Path | None = None
    instructeur_email: str | None = None
    token_expires_on: dt.date | None = None  # DS tokens expire (at most a year): warn 30 days ahead


@dataclass(frozen=True)
class DatabaseConfig:
    path: Path


@dataclass(frozen=True)
class SyncConfig:
    download_dir: Path
    interval_minutes: int = 10
    page_size: int = DS_MAX_PAGE_SIZE
    overlap_minutes: int = 10
    reconcile_at: dt.time = dt.time(3, 30)  # daily full reconciliation, server local time
    attachments: AttachmentPolicy = "messages"
    concurrency: int = 4  # démarches synced at the same time


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"

    @property
    def json(self) -> bool | None:
        """The ``json`` argument of :func:`connector.logs.configure` (None: decide from the TTY)."""
        return None if self.format == "auto" else self.format == "json"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEADLINE_REFERENCES = ("date_depot", "date_passage_en_instruction")


@dataclass(frozen=True)
class WebConfig:
    """``[web]``: ``ds-connector serve``, the instructeurs' read-only web view."""

    host: str = "127.0.0.1"
    port: int = 8001
    # Addresses of the reverse proxies whose ``user_header`` (and X-Forwarded-For) are believed.
    trusted_proxies: tuple[str, ...] = ()
    user_header: str = "X-Remote-User"
    # Off only for a plain-http test on another host than localhost: browsers drop Secure cookies there.
    secure_cookies: bool = True


@dataclass(frozen=True)
class DeadlineConfig:
    """``[demarches.deadline]``: the signed-convention deadline of a démarche whose form profile has
    one (issue 9). Statuses are always kept; nothing is written to DS unless ``reminders`` or
    ``classer_sans_suite`` is on."""

    reference: str = "date_depot"
    months: int = 2
    reminders: bool = False
    reminder_days: tuple[int, ...] = (15, 3)
    classer_sans_suite: bool = False
    grace_days: int = 0
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # 0 = Monday
    hours: tuple[int, int] = (9, 17)  # Europe/Paris, [start, end)
    reminder_template: str | None = None
    closure_template: str | None = None
    motivation_template: str | None = None


# --- the renewal from one school year to the next (``previous = N``, ``[demarches.renewal]``) ---------


@dataclass(frozen=True)
class RenewalConfig:
    """``[demarches.renewal]`` of a démarche naming the previous campaign (``previous = N``): la rentrée,
    the date before which new schools open at la rentrée, the cut-off before which last year's communes
    must file the new form; reminders on the previous-year dossiers (off by default), sent once,
    ``reminder_days`` before the cut-off, in the sending window (``weekdays``, ``hours``, Europe/Paris)."""

    cutoff: dt.date
    new_schools: dt.date
    rentree: dt.date
    reminders: bool = False
    reminder_days: int = 15
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    hours: tuple[int, int] = (9, 17)
    reminder_template: str | None = None


def _weekdays(t: _Table, default: tuple[int, ...]) -> tuple[int, ...]:
    """The sending window's days (``weekdays = ["mon", ...]``) as indexes, 0 for Monday; ``default``
    when absent or wrong (the problem listed)."""
    raw_days = t.raw("weekdays")
    if raw_days is _MISSING:
        return default
    if (not isinstance(raw_days, list) or not raw_days
            or not all(isinstance(v, str) and v.lower() in WEEKDAYS for v in raw_days)):
        t.problem("weekdays", f"expected a non-empty array of days among {', '.join(WEEKDAYS)}")
        return default
    return tuple(sorted({WEEKDAYS.index(v.lower()) for v in raw_days}))


def _parse_renewal(t: _Table) -> RenewalConfig | None:
    dates = {}
    for key, example in (("cutoff", "2026-10-29"), ("new_schools", "2026-08-29"), ("rentree", "2026-09-01")):
        dates[key] = t.date(key, None)
        if dates[key] is None and t.raw(key) is _MISSING:
            t.problem(key, f"missing: the renewal needs it, e.g. {key} = {example}")
    reminders = t.boolean("reminders", False)
    weekdays = _weekdays(t, RenewalConfig.weekdays)
    hours = t.raw("hours")
    if hours is _MISSING:
        hours = RenewalConfig.hours
    elif (not isinstance(hours, list) or len(hours) != 2 or not all(type(h) is int and 0 <= h <= 24 for h in hours)
          or hours[0] >= hours[1]):
        t.problem("hours", "expected [start, end] hours (Europe/Paris), start before end, e.g. [9, 17]")
        hours = RenewalConfig.hours
    template = t.string("reminder_template", None)
    for problem in templates.problems(template or ""):
        t.problem("reminder_template", problem)
    if None in dates.values():
        return None
    if not dates["new_schools"] <= dates["cutoff"]:
        t.problem("new_schools", f"{dates['new_schools']} is after the cut-off {dates['cutoff']}")
    return RenewalConfig(
        cutoff=dates["cutoff"], new_schools=dates["new_schools"], rentree=dates["rentree"], reminders=reminders,
        reminder_days=t.integer("reminder_days", RenewalConfig.reminder_days, 1, 365), weekdays=weekdays,
        hours=(hours[0], hours[1]), reminder_template=template)


def _renewal_problems(demarches: list[DemarcheConfig]) -> list[str]:
    """``previous`` must name another configured démarche of the same profile, with a renewal table."""
    by_number = {d.number: d for d in demarches}
    problems = []
    for d in demarches:
        where = f"[[demarches]] number = {d.number}"
        if d.previous is None:
            if d.renewal is not None:
                problems.append(f"{where} [renewal]: set previous = N, the previous campaign's démarche")
            continue
        before = by_number.get(d.previous)
        if d.previous == d.number:
            problems.append(f"{where} previous: {d.previous} is this same démarche: name last year's campaign")
        elif before is None:
            problems.append(f"{where} previous: démarche {d.previous} is not configured: add a [[demarches]] table "
                            "for it (it is mirrored like any other)")
        elif "auto" not in (d.profile, before.profile) and d.profile != before.profile:
            problems.append(f"{where} previous: démarche {d.previous} has another profile ({before.profile}, "
                            f"not {d.profile}): a campaign renews a campaign of the same form")
        if d.renewal is None:
            problems.append(f"{where} previous: add a [demarches.renewal] table with cutoff, new_schools and rentree")
    return problems


def superseded_by(config: Config, number: int) -> int | None:
    """The configured démarche naming ``number`` as its previous campaign, if any: its own deadline
    follow-up stops acting then (the only writes to it are the renewal reminders)."""
    return next((d.number for d in config.demarches if d.previous == number and d.previous != d.number), None)


# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemarcheConfig:
    number: int
    label: str | None = None
    deadline: DeadlineConfig = DeadlineConfig()
    # ENT-École forms (connector.forms): the profile ("auto": detected; "none": not an ENT-École form),
    # role overrides as (role, champ label or descriptor id) pairs, the fee per school in euros (None: the
    # form's, else the cost rule is off), the académie's départements (empty: those of the académie the
    # démarche's service names, else the uai_hors_academie check is off).
    profile: str = "auto"
    roles: tuple[tuple[str, str], ...] = ()
    fee_per_school: float | None = None
    departements: tuple[str, ...] = ()
    # The renewal from one school year to the next: the previous campaign's démarche and the calendar.
    previous: int | None = None
    renewal: RenewalConfig | None = None


@dataclass(frozen=True)
class Config:
    ds: DsConfig
    database: DatabaseConfig
    sync: SyncConfig
    log: LogConfig
    demarches: tuple[DemarcheConfig, ...]
    path: Path  # the file it was read from
    web: WebConfig = WebConfig()

    @property
    def state_dir(self) -> Path:
        """The database's directory: the lock file and the downloads (by default) live there."""
        return self.database.path.parent


def select_demarches(config: Config, numbers: list[int] | None) -> list[DemarcheConfig]:
    """The configured démarches named by ``numbers`` (each once, in the order given), or every one when
    none is named. A number that is not configured is a ConfigError naming the configured ones, so a
    typo in ``--demarche`` stops every command that takes it (sync, export) instead of acting on all."""
    if not numbers:
        return list(config.demarches)
    known = {d.number: d for d in config.demarches}
    unknown = [n for n in numbers if n not in known]
    if unknown:
        raise ConfigError(
            f"démarche(s) {', '.join(map(str, unknown))} not in {config.path}: "
            f"configured are {', '.join(str(d.number) for d in config.demarches)}"
        )
    return [known[n] for n in dict.fromkeys(numbers)]


_MISSING = object()
TOP = "(top level)"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


class _Table:
    """One TOML table: typed getters that record a problem and return the default instead of raising."""

    def __init__(self, where: str, data: dict[str, Any], base_dir: Path, problems: list[str]):
        self.where, self.data, self.base_dir, self.problems = where, data, base_dir, problems
        self.known: set[str] = set()

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.where} {key}: {text}")

    def subtable(self, key: str, parse: Callable[[_Table], Any], seen: list[_Table], default: Any) -> Any:
        """``[demarches.<key>]`` parsed by ``parse`` (its table added to ``seen``, for the unknown keys),
        or ``default`` when absent or not a table (the problem listed)."""
        raw = self.raw(key)
        if raw is _MISSING:
            return default
        if not isinstance(raw, dict):
            self.problem(key, f"expected a table ([demarches.{key}]), got {_kind(raw)}")
            return default
        table = _Table(f"{self.where} [{key}]", raw, self.base_dir, self.problems)
        seen.append(table)
        return parse(table)

    def raw(self, key: str) -> Any:
        self.known.add(key)
        return self.data.get(key, _MISSING)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_kind(value)}")
            return default
        return value

    def integer(self, key: str, default: int | None, lo: int, hi: int, why: str = "") -> Any:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if type(value) is not int:
            self.problem(key, f"expected an integer, got {_kind(value)}")
        elif not lo <= value <= hi:
            self.problem(key, f"{value} is out of range, must be {lo} to {hi}{why}")
        else:
            return value
        return default

    def seconds(self, key: str, default: float, hi: float) -> float:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number of seconds, got {_kind(value)}")
        elif not (math.isfinite(value) and 0 < value <= hi):
            self.problem(key, f"{value} is out of range, must be more than 0 and at most {hi:g}")
        else:
            return float(value)
        return default

    def string(self, key: str, default: str | None) -> Any:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {_kind(value)}")
        elif not value.strip():
            self.problem(key, "must not be empty")
        else:
            return value
        return default

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> Any:
        value = self.string(key, default)
        if value.lower() in choices:
            return value.lower()
        self.problem(key, f"{value!r} is not one of {', '.join(choices)}")
        return default

    def path(self, key: str, default: str | None) -> Path | None:
        value = self.string(key, default)
        if value is None:
            return None
        return self.base_dir / value  # an absolute value replaces base_dir

    def date(self, key: str, default: dt.date | None) -> dt.date | None:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):  # a TOML local date
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        self.problem(key, "expected a date such as 2027-06-30")
        return default

    def time_of_day(self, key: str, default: dt.time) -> dt.time:
        value = self.raw(key)
        if value is _MISSING:
            return default
        if isinstance(value, dt.time):  # a TOML local time, 03:30:00
            return value
        if isinstance(value, str):
            try:
                return dt.datetime.strptime(value, "%H:%M").time()
            except ValueError:
                pass
        self.problem(key, 'expected a time of day such as "03:30"')
        return default


def _url_problem(url: str) -> str | None:
    """Why the API URL is unusable, without echoing it (it might hold a secret)."""
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if not parts.scheme or not host:
        return f"not an absolute URL; DS's is {DEFAULT_URL}"
    if parts.username is not None or parts.password is not None:
        return f"must not contain credentials; {TOKEN_HOME}"
    if parts.query or parts.fragment:
        return "must not contain a query string or a fragment"
    if parts.scheme == "http":
        if not _is_loopback(host):
            return f"http is only allowed to a loopback host (127.0.0.1, localhost, ::1), not {host}: use https"
    elif parts.scheme != "https":
        return f"scheme {parts.scheme!r} is not allowed: use https"
    if host in REDIRECTING_HOSTS:
        return f"{host} answers with a redirect that turns the POST into a GET: use {REDIRECTING_HOSTS[host]}"
    if parts.path in ("", "/"):
        return f"has no path; DS's GraphQL endpoint is {urlsplit(DEFAULT_URL).path}"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _section(data: dict[str, Any], name: str, base_dir: Path, problems: list[str]) -> _Table:
    value = data.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"[{name}]: expected a table, got {_kind(value)}")
        value = {}
    return _Table(f"[{name}]", value, base_dir, problems)


def _parse_ds(t: _Table) -> DsConfig:
    url = t.string("url", DEFAULT_URL)
    if (why := _url_problem(url)) is not None:
        t.problem("url", why)
    email = t.string("instructeur_email", None)
    if email is not None and (email.count("@") != 1 or any(c.isspace() for c in email)):
        t.problem("instructeur_email", "not an e-mail address")
    return DsConfig(
        url=url,
        connect_timeout_seconds=t.seconds("connect_timeout_seconds", DsConfig.connect_timeout_seconds, 300),
        read_timeout_seconds=t.seconds("read_timeout_seconds", DsConfig.read_timeout_seconds, 600),
        requests_per_minute=t.integer(
            "requests_per_minute", DsConfig.requests_per_minute, 1, DS_REQUESTS_PER_MINUTE,
            f" (DS refuses more than {DS_REQUESTS_PER_MINUTE} requests per minute per token)",
        ),
        token_file=t.path("token_file", None),
        instructeur_email=email,
        token_expires_on=t.date("token_expires_on", None),
    )


MAX_CONCURRENCY = 16  # démarches at once; they share one request budget and one database writer


def _parse_sync(t: _Table, state_dir: Path) -> SyncConfig:
    return SyncConfig(
        interval_minutes=t.integer("interval_minutes", SyncConfig.interval_minutes, 1, 24 * 60),
        page_size=t.integer(
            "page_size", SyncConfig.page_size, 1, DS_MAX_PAGE_SIZE,
            f" (DS serves at most {DS_MAX_PAGE_SIZE} dossiers per page)",
        ),
        overlap_minutes=t.integer("overlap_minutes", SyncConfig.overlap_minutes, 0, 24 * 60),
        reconcile_at=t.time_of_day("reconcile_at", SyncConfig.reconcile_at),
        attachments=t.choice("attachments", SyncConfig.attachments, ATTACHMENT_POLICIES),
        download_dir=t.path("download_dir", None) or state_dir / "files",
        concurrency=t.integer("concurrency", SyncConfig.concurrency, 1, MAX_CONCURRENCY),
    )


def _parse_deadline(t: _Table) -> DeadlineConfig:
    d = DeadlineConfig()

    def integers(key: str, default: tuple[int, ...], lo: int, hi: int) -> tuple[int, ...]:
        value = t.raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            t.problem(key, f"expected an array of integers, got {_kind(value)}")
            return default
        if bad := [v for v in value if not lo <= v <= hi]:
            t.problem(key, f"{', '.join(map(str, bad))} out of range, must be {lo} to {hi}")
            return default
        return tuple(value)

    weekdays = _weekdays(t, d.weekdays)
    hours = integers("hours", d.hours, 0, 24)
    if len(hours) != 2 or hours[0] >= hours[1]:
        t.problem("hours", "expected [start, end] hours (Europe/Paris), start before end, e.g. [9, 17]")
        hours = d.hours
    texts: dict[str, str | None] = {}
    for key in ("reminder_template", "closure_template", "motivation_template"):
        texts[key] = t.string(key, None)
        for problem in templates.problems(texts[key] or ""):
            t.problem(key, problem)
    reminder_days = integers("reminder_days", d.reminder_days, 1, 365)
    return DeadlineConfig(
        reference=t.choice("reference", d.reference, DEADLINE_REFERENCES),
        months=t.integer("months", d.months, 1, 24),
        reminders=t.boolean("reminders", d.reminders),
        reminder_days=tuple(sorted(set(reminder_days), reverse=True)),
        classer_sans_suite=t.boolean("classer_sans_suite", d.classer_sans_suite),
        grace_days=t.integer("grace_days", d.grace_days, 0, 365),
        weekdays=weekdays,
        hours=(hours[0], hours[1]),
        **texts,
    )


def _parse_web(t: _Table) -> WebConfig:
    proxies: list[str] = []
    raw = t.raw("trusted_proxies")
    if raw is not _MISSING:
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            t.problem("trusted_proxies", "expected a list of IP addresses such as [\"127.0.0.1\"]")
        else:
            for address in raw:
                try:
                    proxies.append(str(ipaddress.ip_address(address.strip())))
                except ValueError:
                    t.problem("trusted_proxies", f"{address!r} is not an IP address")
    header = t.string("user_header", WebConfig.user_header)
    if not re.fullmatch(r"[A-Za-z0-9-]+", header):
        t.problem("user_header", f"{header!r} is not an HTTP header name")
        header = WebConfig.user_header
    secure = t.boolean("secure_cookies", WebConfig.secure_cookies)
    return WebConfig(host=t.string("host", WebConfig.host), port=t.integer("port", WebConfig.port, 1, 65535),
                     trusted_proxies=tuple(proxies), user_header=header, secure_cookies=secure)


def _parse_demarches(value: Any, base_dir: Path, problems: list[str]) -> list[_Table]:
    how = "add one [[demarches]] table with a number per démarche to mirror"
    if value is _MISSING or value == []:
        problems.append(f"[[demarches]]: no démarche configured: {how}")
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(f"[[demarches]]: expected an array of tables, got {_kind(value)}: {how}")
        return []
    return [_Table(f"[[demarches]] #{i}", item, base_dir, problems) for i, item in enumerate(value, 1)]


def _parse_forms(t: _Table) -> dict[str, Any]:
    """The forms keys of one [[demarches]] table: profile, [demarches.roles], fee_per_school, departements."""
    out: dict[str, Any] = {"profile": t.choice("profile", "auto", PROFILE_CHOICES)}
    roles = t.raw("roles")
    if roles is not _MISSING:
        if not isinstance(roles, dict):
            t.problem("roles", f"expected a table of role = \"champ label or descriptor id\", got {_kind(roles)}")
        else:
            pairs = []
            for role, value in roles.items():
                if role not in ROLES:
                    close = difflib.get_close_matches(role, ROLES, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else f" (roles: {', '.join(ROLES)})"
                    t.problem(f"roles.{role}", "unknown role" + hint)
                elif not isinstance(value, str) or not value.strip():
                    t.problem(f"roles.{role}", "expected a champ label or a descriptor id (a non-empty string)")
                else:
                    pairs.append((role, value.strip()))
            out["roles"] = tuple(pairs)
    fee = t.raw("fee_per_school")
    if fee is not _MISSING:
        if isinstance(fee, bool) or not isinstance(fee, int | float) or not (math.isfinite(fee) and 0 < fee <= 10_000):
            t.problem("fee_per_school", "expected an amount in euros, more than 0 and at most 10000 (41 for 2026-2027)")
        else:
            out["fee_per_school"] = float(fee)
    depts = t.raw("departements")
    if depts is not _MISSING:
        if not isinstance(depts, list) or not all(isinstance(d, str) and d.strip() for d in depts):
            t.problem("departements", 'expected an array of département codes, e.g. ["16", "17", "79", "86"]')
        else:
            out["departements"] = tuple(d.strip().upper() for d in depts)
    return out


def _unknown_keys(sections: dict[str, list[_Table]], problems: list[str]) -> None:
    """Report keys nobody read: a secret, a key of another section, or a typo ("did you mean")."""
    home = {key: name for name, tables in sections.items() if name != TOP for t in tables for key in t.known}
    for name, tables in sections.items():
        for t in tables:
            known = sorted(t.known)
            for key in [k for k in t.data if k not in t.known]:
                where = f"{t.where} {key}"
                if key.lower() in SECRET_KEYS:
                    problems.append(f"{where}: {TOKEN_HOME}")
                elif home.get(key, name) != name:
                    problems.append(f"{where}: unknown key here; it belongs in {home[key]}")
                elif close := difflib.get_close_matches(key, known, n=1):
                    problems.append(f"{where}: unknown key (did you mean {close[0]!r}?)")
                else:
                    problems.append(f"{where}: unknown key (known: {', '.join(known)})")


def _build(data: dict[str, Any], base_dir: Path, source: str) -> tuple[Config, list[str]]:
    """The config (defaults standing in for bad values) and every problem found."""
    problems: list[str] = []
    top = _Table(TOP, data, base_dir, problems)
    for name in ("ds", "database", "sync", "log", "web", "demarches"):
        top.raw(name)
    ds_t, db_t, sync_t, log_t, web_t = (_section(data, name, base_dir, problems)
                                        for name in ("ds", "database", "sync", "log", "web"))
    demarche_ts = _parse_demarches(data.get("demarches", _MISSING), base_dir, problems)

    ds = _parse_ds(ds_t)
    database = DatabaseConfig(path=db_t.path("path", "state/ds-connector.sqlite"))
    sync = _parse_sync(sync_t, database.path.parent)
    log = LogConfig(
        level=log_t.choice("level", LogConfig.level, LOG_LEVELS),
        format=log_t.choice("format", LogConfig.format, LOG_FORMATS),
    )
    web = _parse_web(web_t)
    demarches: list[DemarcheConfig] = []
    first_seen: dict[int, str] = {}
    deadline_ts: list[_Table] = []
    renewal_ts: list[_Table] = []
    for t in demarche_ts:
        label = t.string("label", None)
        if t.raw("number") is _MISSING:
            t.problem("number", "missing: every [[demarches]] table needs the démarche number")
            continue
        number = t.integer("number", None, 1, GRAPHQL_MAX_INT)
        if number is None:
            continue
        if number in first_seen:
            t.problem("number", f"démarche {number} is already configured in {first_seen[number]}")
            continue
        first_seen[number] = t.where
        deadline = t.subtable("deadline", _parse_deadline, deadline_ts, DeadlineConfig())
        renewal = t.subtable("renewal", _parse_renewal, renewal_ts, None)
        previous = t.integer("previous", None, 1, GRAPHQL_MAX_INT)
        demarches.append(DemarcheConfig(number=number, label=label, deadline=deadline, previous=previous,
                                        renewal=renewal, **_parse_forms(t)))
    problems += _renewal_problems(demarches)

    _unknown_keys(
        {TOP: [top], "[ds]": [ds_t], "[database]": [db_t], "[sync]": [sync_t], "[log]": [log_t], "[web]": [web_t],
         "[[demarches]]": demarche_ts, "[demarches.deadline]": deadline_ts,
         "[demarches.renewal]": renewal_ts},
        problems,
    )
    config = Config(ds=ds, database=database, sync=sync, log=log, demarches=tuple(demarches), path=Path(source),
                    web=web)
    return config, problems


def parse_config(data: dict[str, Any], base_dir: Path, source: str) -> Config:
    """Validate parsed TOML; raise ConfigError listing every problem. ``source`` names the file."""
    config, problems = _build(data, base_dir, source)
    if problems:
        raise ConfigError(f"invalid configuration in {source}", problems)
    return config


def find_config(path: Path | None = None) -> Path:
    """The config file to read: ``path`` if given, else the first of SEARCH_PATHS that exists."""
    if path is not None:
        return path.absolute()
    for candidate in SEARCH_PATHS:
        if _exists(candidate):
            return candidate.absolute()
    searched = ", ".join(str(p.absolute()) for p in SEARCH_PATHS)
    raise ConfigError(f"no config file found (searched {searched}); pass --config PATH")


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        pass  # there, but we may not even look at it: _read says why
    return True


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line L, column C)"
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None


def load_config(path: Path | None = None) -> Config:
    """Find, read and validate the config file; ConfigError (exit 78) on any problem."""
    found = find_config(path)
    return parse_config(_read(found), found.parent, str(found))


def config_problems(found: Path) -> tuple[Config, list[str]]:
    """Read and validate the config file ``found`` (see :func:`find_config`) without raising on its
    problems: the config as far as it could be built, and every problem (``check-config`` adds the
    token lookup's before it reports them all at once)."""
    return _build(_read(found), found.parent, str(found))
