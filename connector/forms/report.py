"""What the demo shows of the forms layer: open anomalies per rule and démarche, and the exports
written as files (xlsx for people, CSV and JSON for scripts)."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from connector.config import Config
from connector.forms import exports
from connector.forms.rules import RULES
from connector.store import forms as store


def anomalies_by_rule(db: sqlite_utils.Database) -> list[str]:
    counts: dict[str, dict[int, int]] = {}
    demarches: list[int] = []
    for demarche, code, _, n in store.open_anomaly_counts(db):
        counts.setdefault(code, {})[demarche] = n
        if demarche not in demarches:
            demarches.append(demarche)
    profiles = {n: store.stored_profile(db, n) or "?" for n in demarches}
    head = "  " + f"{'rule':26} {'severity':8} " + " ".join(f"{profiles[n]:>10}" for n in demarches)
    lines = [head]
    for code, rule in RULES.items():
        if code in counts:
            cells = " ".join(f"{counts[code].get(n, 0):>10}" for n in demarches)
            lines.append(f"  {code:26} {rule.severity:8} {cells}")
    return lines


def write_exports(db: sqlite_utils.Database, config: Config | None, directory: Path) -> list[str]:
    """Each kind as xlsx (for people) and CSV (for scripts), and the anomalies as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    built = {kind: exports.build(db, config, kind, None) for kind in exports.KINDS}
    for kind, export in built.items():
        if kind == "renouvellements" and not export.rows:
            continue  # no démarche renews a previous campaign (previous = N)
        path = directory / f"{kind}.xlsx"
        path.write_bytes(exports.to_xlsx([export]))
        path.with_suffix(".csv").write_text(exports.to_csv(kind, export.rows), encoding="utf-8", newline="")
        lines.append(f"  {path} (and .csv): {len(export.rows)} line(s)")
    rows = built["anomalies"].rows
    path = directory / "anomalies.json"
    path.write_text(exports.to_json("anomalies", rows), encoding="utf-8")
    lines.append(f"  {path}: {len(rows)} object(s)")
    return lines
