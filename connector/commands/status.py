"""``ds-connector status``: :func:`connector.status.gather` rendered as text, JSON or Prometheus.

The exit code is the health (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), in every format.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from connector.config import load_config
from connector.status import gather


def show_status(config_path: Path | None, fmt: str = "text") -> int:
    config = load_config(config_path)
    status = gather(config)
    if fmt == "json":
        click.echo(json.dumps(status, ensure_ascii=False, indent=2))
    elif fmt == "prometheus":
        click.echo(prometheus(status), nl=False)
    else:
        click.echo(text(status))
    return status["health"]["code"]


# --- text --------------------------------------------------------------------------------------


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _local(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def text(s: dict[str, Any]) -> str:
    h = s["health"]
    lines = [f"ds-connector status: {h['state']}"]
    lines += [f"  {r['level']}: {r['reason']}" for r in h["reasons"]]
    d = s["daemon"]
    if d["running"]:
        daemon = f"running (pid {d['pid']}, {d['state']}), heartbeat {_ago(d['heartbeat_age_seconds'])}"
        daemon += f"; next sync {_local(d['next_run_at'])}, full pass {_local(d['next_reconcile_at'])}"
    elif d["seen"]:
        daemon = (f"not running ({d['state']}; last heartbeat {_ago(d['heartbeat_age_seconds'])}, "
                  f"pid {d['pid']})")
    else:
        daemon = "not running (never started with this state directory)"
    lines.append(f"Daemon:    {daemon}")
    lock = s["lock"]
    if lock["held"]:
        lines.append(f"Lock:      held by pid {lock['pid']} ({lock['holder'] or '?'})")
    elif lock["stale"]:
        lines.append(f"Lock:      free (stale pid {lock['stale_pid']} in the lock file: that process died)")
    else:
        lines.append("Lock:      free")
    token = s["token"]
    if token["expires_on"]:
        left = token["days_left"]
        lines.append(f"Token:     expires {token['expires_on']} "
                     + (f"({left} days left)" if left >= 0 else f"(EXPIRED {-left} days ago)"))
    else:
        lines.append("Token:     expiry unknown (set [ds] token_expires_on)")
    db = s["database"]
    if not db["readable"]:
        lines.append(f"Database:  {db['path']}: {db['error']}")
        return "\n".join(lines)
    lines.append(f"Database:  {db['path']}")
    if s["running_run"]:
        r = s["running_run"]
        lines.append(f"Running:   run {r['id']} ({r['kind']}) since {_local(r['started_at'])}")
    if s["last_run"]:
        r = s["last_run"]
        extra = f": {r['error']}" if r["error"] else ""
        lines.append(f"Last run:  {r['id']} ({r['kind']}) {r['status']} {_ago(r['age_seconds'])}, {r['new']} new, "
                     f"{r['updated']} updated, {r['deleted']} deleted, {r['requests']} requests{extra}")
    else:
        lines.append("Last run:  none yet")
    lines.append(f"Rate-limited requests (all runs): {s['rate_limited_requests']}")
    for m in s["demarches"]:
        title = m["label"] or m["title"] or ""
        lines.append("")
        lines.append(f"démarche {m['number']}  {title}".rstrip() + ("" if m["configured"] else "  (not configured)"))
        last = m["last_run"]
        run = "no run yet" if last is None else (
            f"last run {last['result']}" + (f": {last['error']}" if last["error"] else ""))
        lines.append(f"  last success: {_local(m['last_success_at']) if m['last_success_at'] else 'never'} "
                     f"({_ago(m['last_success_age_seconds'])}); {run}")
        states = ", ".join(f"{n} {state}" for state, n in sorted(m["dossiers"]["by_state"].items(), key=lambda x: -x[1]))
        lines.append(f"  dossiers: {m['dossiers']['total']}" + (f" ({states})" if states else ""))
        lines.append(f"  new in 24 h: {m['new_24h']}, in the trash: {m['trash']}, quarantined: {m['quarantined']}, "
                     f"files pending: {m['files']['pending']}, failed: {m['files']['failed']}")
        if m["anomalies"] is not None:
            a = m["anomalies"]
            lines.append(f"  anomalies open: {a['error'] if 'error' in a else a['open']}")
        if m["conventions"] is not None:
            c = m["conventions"]
            lines.append("  conventions: " + (c["error"] if "error" in c else
                         f"{c['awaiting']} awaiting (of which {c['due_within_15_days']} due within 15 days), "
                         f"{c['overdue']} overdue"))
        if m["actions"] is not None:
            a = m["actions"]
            lines.append("  actions: " + (a["error"] if "error" in a else
                         f"{a['planned']} planned, {a['unknown']} unknown, {a['failed']} failed"))
    for r in s.get("renewals", []):
        sc, co = r["schools"], r["communes"]
        lines.append("")
        lines.append(f"renewal {r['previous']} → {r['demarche']}: cut-off {r['cutoff']} "
                     f"({r['days_to_cutoff']} day(s) left)" if r["days_to_cutoff"] >= 0 else
                     f"renewal {r['previous']} → {r['demarche']}: cut-off {r['cutoff']} passed")
        lines.append(f"  communes: {co['renewed']} renewed, {co['pending']} pending, {co['not_renewed']} not renewed")
        lines.append(f"  last year's schools: {sc['renouvelee']} renewed, {sc['en_attente']} pending, "
                     f"{sc['non_renouvelee']} not renewed, {sc['fermee']} closed; new schools: {sc['nouvelle']}")
    return "\n".join(lines)


# --- prometheus (node_exporter textfile collector) -----------------------------------------------


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metrics:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.declared: set[str] = set()

    def add(self, name: str, kind: str, help_: str, value: float | int | None, **labels: Any) -> None:
        if name not in self.declared:
            self.declared.add(name)
            self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        if value is None:
            return
        label = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{label}}} {value}" if label else f"{name} {value}")


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def prometheus(s: dict[str, Any]) -> str:
    m = _Metrics()
    p = "ds_connector_"
    m.add(p + "health", "gauge", "Health as status exits: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", s["health"]["code"])
    m.add(p + "database_readable", "gauge", "1 if status could read the database.", int(s["database"]["readable"]))
    m.add(p + "daemon_running", "gauge", "1 if the daemon's heartbeat is fresh.", int(s["daemon"]["running"]))
    m.add(p + "next_run_timestamp_seconds", "gauge", "When the daemon runs its next sync.", _ts(s["daemon"]["next_run_at"]))
    m.add(p + "lock_held", "gauge", "1 if a sync (daemon job or one-shot) holds the lock now.", int(s["lock"]["held"]))
    expires = s["token"]["expires_on"]
    m.add(p + "token_expiry_timestamp_seconds", "gauge", "When the API token expires (config token_expires_on).",
          _ts(expires + "T00:00:00") if expires else None)
    m.add(p + "rate_limited_requests_total", "counter", "Requests DS answered 429, over every recorded run.",
          s["rate_limited_requests"])
    last = s["last_run"]
    m.add(p + "last_run_timestamp_seconds", "gauge", "When the last finished run ended.",
          _ts(last["finished_at"]) if last else None)
    m.add(p + "last_run_ok", "gauge", "1 if the last finished run's status is ok.",
          int(last["status"] == "ok") if last else None)
    for d in s["demarches"]:
        n = d["number"]
        m.add(p + "last_success_timestamp_seconds", "gauge", "When the démarche last synced all its streams.",
              _ts(d["last_success_at"]), demarche=n)
    for d in s["demarches"]:
        for state, count in d["dossiers"]["by_state"].items():
            m.add(p + "dossiers", "gauge", "Dossiers in the mirror by state.", count, demarche=d["number"], state=state)
    for name, key, help_ in (("quarantined_dossiers", "quarantined", "Dossiers DS could not serve (quarantine)."),
                             ("trash_dossiers", "trash", "Dossiers in DS's trash."),
                             ("new_dossiers_24h", "new_24h", "Dossiers deposited in the last 24 hours.")):
        for d in s["demarches"]:
            m.add(p + name, "gauge", help_, d[key], demarche=d["number"])
    for d in s["demarches"]:
        m.add(p + "files_pending", "gauge", "Attachments wanted and not downloaded yet.", d["files"]["pending"],
              demarche=d["number"])
    for d in s["demarches"]:
        m.add(p + "files_failed", "gauge", "Attachments whose download failed (checksum, size, HTTP, virus).", d["files"]["failed"],
              demarche=d["number"])
    for d in s["demarches"]:
        for state, count in (d["actions"] or {}).items():
            if state != "error":
                m.add(p + "actions", "gauge", "Actions on DS by state.", count, demarche=d["number"], state=state)
    for d in s["demarches"]:
        a = d["anomalies"] or {}
        if "open" in a:
            m.add(p + "anomalies_open", "gauge", "Open anomalies.", a["open"], demarche=d["number"])
    for d in s["demarches"]:
        for status, count in (d["conventions"] or {}).items():
            if status != "error":
                m.add(p + "conventions", "gauge", "Conventions awaited, due within 15 days, overdue.", count,
                      demarche=d["number"], status=status)
    for r in s.get("renewals", []):
        for statut, count in r["schools"].items():
            m.add(p + "renewal_schools", "gauge", "Schools of a campaign pair by renewal status.", count,
                  demarche=r["demarche"], previous=r["previous"], status=statut)
    for r in s.get("renewals", []):
        for state, count in r["communes"].items():
            m.add(p + "renewal_communes", "gauge", "Last year's communes renewed, pending, not renewed.", count,
                  demarche=r["demarche"], previous=r["previous"], state=state)
    for r in s.get("renewals", []):
        m.add(p + "renewal_cutoff_days", "gauge", "Days left to the renewal cut-off (negative: passed).",
              r["days_to_cutoff"], demarche=r["demarche"], previous=r["previous"])
    return "\n".join(m.lines) + "\n"
