"""``ds-connector check-config``: the config validated with the token lookup, in one summary.

Above ``connector.config`` (which validates the file alone) and ``connector.credentials`` (which finds
the token a config names): the one place that needs both.
"""

from __future__ import annotations

from pathlib import Path

from connector.config import config_problems, find_config
from connector.credentials import load_token
from connector.errors import ConfigError, CredentialError


def summary(path: Path | None = None) -> str:
    """Validate the config and the token lookup; a summary, or one error listing every problem."""
    found = find_config(path)
    config, problems = config_problems(found)
    try:
        token = load_token(config)
    except CredentialError as exc:
        if not problems:
            raise
        problems += [f"API token: {p}" for p in (exc.message, *exc.problems)]
    if problems:
        raise ConfigError(f"invalid configuration in {found}", problems)

    sync = config.sync
    demarches = [f"{d.number}  {d.label or ''}".rstrip()
                 + (f"  (renews {d.previous}, cut-off {d.renewal.cutoff}, reminders "
                    f"{'on' if d.renewal.reminders else 'off'})" if d.previous and d.renewal else "")
                 for d in config.demarches]
    lines = [
        f"Config OK: {config.path}",
        f"  DS API:       {config.ds.url}",
        f"  Budget:       {config.ds.requests_per_minute} requests/min, timeouts connect "
        f"{config.ds.connect_timeout_seconds:g} s / read {config.ds.read_timeout_seconds:g} s",
        f"  Token:        found in {token.source}",
        f"  Database:     {config.database.path}",
        f"  Sync:         every {sync.interval_minutes} min, {sync.page_size} dossiers per page, "
        f"{sync.overlap_minutes} min overlap, daily reconciliation at {sync.reconcile_at:%H:%M}",
        f"  Attachments:  {sync.attachments}" + (f" -> {sync.download_dir}" if sync.attachments != "none" else ""),
        f"  Démarches ({len(demarches)}):",
        *(f"    {d}" for d in demarches),
    ]
    return "\n".join(lines)
