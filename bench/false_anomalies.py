"""Anomalies, conventions and planned actions that correct dossiers do not deserve, with a newcomer's config.

    .venv/bin/python bench/false_anomalies.py [--code DIR] [--dossiers N]

``ds-connector simulate --with ordinary --with versailles --with campaign-2024`` (this tree's simulator,
helpers of bench/sync.py) serves the seeded world (``--dossiers``, default 0: only the added démarches)
plus forms that are no ENT-École forms, Poitiers' form cloned by the académie de Versailles, and
Occitanie's 2024-2025 campaign at 45 € per school. Every dossier of the added démarches is correct.
Then the connector found in ``--code`` (default: this tree; give an extracted older commit, e.g.
``git archive 7a6264e | tar -x -C /tmp/main``, to compare) syncs them with a config that names the
démarches and nothing else, and runs ``actions plan``. Prints, per démarche: the profile, the open
anomalies by code, the conventions tracked and the dossiers ``actions plan`` lists. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync import start_simulator, write_config  # noqa: E402  (bench/sync.py)

EXTRAS = ("ordinary", "versailles", "campaign-2024")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the connector's source tree to run (default: this one)")
    parser.add_argument("--dossiers", type=int, default=0, help="dossiers of the three built-in démarches")
    args = parser.parse_args()
    sim = start_simulator(args.dossiers, 2026, extras=EXTRAS)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            config = write_config(directory, sim, "none")
            env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
            env["PYTHONPATH"] = str(args.code.resolve())
            for command in (["sync"], ["actions", "plan"]):
                done = subprocess.run([sys.executable, "-m", "connector", *command, "--config", str(config)],
                                      capture_output=True, text=True, env=env, cwd=directory)
                print(f"$ ds-connector {' '.join(command)}  -> exit {done.returncode}")
                if command == ["actions", "plan"]:
                    planned = done.stdout
            report(directory / "ds-connector.sqlite", sim.demarches, planned)
    finally:
        sim.process.terminate()
        sim.process.wait(30)


def report(path: Path, demarches: dict[int, int], planned: str) -> None:
    with closing(sqlite3.connect(path)) as db:
        profiles = dict(db.execute("SELECT demarche_number, profile FROM form_profiles"))
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        print(f"{'démarche':>9}  {'dossiers':>8}  {'profile':10} {'anomalies':>9}  {'conventions':>11}  by code")
        total = 0
        for number in demarches:
            dossiers = db.execute("SELECT count(*) FROM dossiers WHERE demarche_number = ?", [number]).fetchone()[0]
            codes = db.execute("SELECT code, count(*) FROM anomalies WHERE demarche_number = ? AND resolved_at IS NULL "
                               "GROUP BY code ORDER BY 2 DESC", [number]).fetchall()
            flagged = db.execute("SELECT count(DISTINCT dossier_number) FROM anomalies WHERE demarche_number = ? "
                                 "AND resolved_at IS NULL", [number]).fetchone()[0]
            conventions = (db.execute("SELECT count(*) FROM conventions WHERE demarche_number = ?", [number]).fetchone()[0]
                           if "conventions" in tables else 0)
            total += sum(n for _, n in codes)
            print(f"{number:>9}  {dossiers:>8}  {profiles.get(number, '?'):10} {sum(n for _, n in codes):>9}  "
                  f"{conventions:>11}  {', '.join(f'{c} {n}' for c, n in codes) or '-'}"
                  + (f"  ({flagged} dossiers flagged)" if flagged else ""))
        print(f"open anomalies in all: {total}")
    print("actions plan:")
    print("\n".join("  " + line for line in planned.splitlines()) or "  (nothing)")


if __name__ == "__main__":
    main()
