"""The CPU floor of writing a mirror: the same rows, already built, inserted page by page.

    .venv/bin/python bench/store_floor.py MIRROR.sqlite [--page 100]

Reads every row of the mirror's dossier tables (dossiers, champs, annotations, messages, files,
labels, dossier_labels) into memory, grouped by dossier in pages of ``--page`` dossiers (démarche
and number order, as the sync receives them), then, into a fresh database made by the connector's
own ``open_db`` (same tables, indexes, pragmas and ``tune_for_sync``), times one ``executemany`` per
table and page and one commit per page: what SQLite alone costs for the rows a full sync writes,
with no JSON, no HTTP and no Python row building. ``bench/sync.py`` runs it (in a child process:
it holds the whole mirror in memory, which a forked sync would count as its own peak RSS) on the
mirror its full sync wrote, and prints the connector's CPU beside this floor plus the lower bound's
own CPU (fetch and decode). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from collections import defaultdict
from contextlib import closing
from pathlib import Path

from connector.store import open_db
from connector.store.mirror import checkpoint, tune_for_sync

# table -> the column naming its dossier (``labels``, the démarches' own, are written first, once)
TABLES = {"dossiers": "number", "champs": "dossier_number", "annotations": "dossier_number",
          "messages": "dossier_number", "files": "dossier_number", "dossier_labels": "dossier_number"}


def floor(mirror: Path, page: int = 100) -> dict:
    """CPU and wall seconds to write the mirror's rows again, and what was written."""
    with closing(sqlite3.connect(f"file:{mirror}?mode=ro", uri=True)) as src:
        order = [n for (n,) in src.execute("SELECT number FROM dossiers ORDER BY demarche_number, number")]
        page_of = {n: i // page for i, n in enumerate(order)}
        pages: dict[int, dict[str, list[tuple]]] = defaultdict(lambda: defaultdict(list))
        columns: dict[str, list[str]] = {}
        for table, key in TABLES.items():
            cursor = src.execute(f"SELECT * FROM {table}")
            columns[table] = [d[0] for d in cursor.description]
            at = columns[table].index(key)
            for row in cursor:
                pages[page_of[row[at]]][table].append(row)
        labels = src.execute("SELECT * FROM labels")
        columns["labels"] = [d[0] for d in labels.description]
        labels = labels.fetchall()
    rows = sum(len(r) for p in pages.values() for r in p.values()) + len(labels)
    statements = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
                  for t, c in columns.items()}
    with tempfile.TemporaryDirectory(prefix="store-floor-") as tmp:
        path = Path(tmp) / "floor.sqlite"
        db = open_db(path)
        tune_for_sync(db)
        conn = db.conn
        cpu, wall = time.process_time(), time.perf_counter()
        with conn:
            conn.executemany(statements["labels"], labels)
        for index in sorted(pages):
            with conn:  # one transaction per page, as the sync commits
                for table in TABLES:
                    conn.executemany(statements[table], pages[index][table])
        checkpoint(db)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        conn.close()
    return {"cpu": cpu, "wall": wall, "dossiers": len(order), "pages": len(pages), "rows": rows,
            "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mirror", type=Path, help="a mirror written by ds-connector sync")
    parser.add_argument("--page", type=int, default=100, help="dossiers per transaction (default 100)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if not args.mirror.is_file():
        raise SystemExit(f"no database at {args.mirror}")
    f = floor(args.mirror, args.page)
    if args.json:
        print(json.dumps(f))
        return
    print(f"SQLite floor: {f['dossiers']} dossiers, {f['rows']} rows in {f['pages']} transactions: "
          f"{f['cpu']:.2f} CPU s ({f['dossiers'] / f['cpu']:.0f} dossiers per CPU second), {f['wall']:.2f} s wall, "
          f"{f['bytes'] / 1e6:.1f} MB written; process {sum(os.times()[:2]):.2f} CPU s in all")


if __name__ == "__main__":
    main()
