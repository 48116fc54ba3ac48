"""``ds-connector status`` latency on a big mirror, idle and while a sync writes to it.

    .venv/bin/python bench/status.py [DOSSIERS] [--keep DIR]      (default 50 000 dossiers)

Builds the mirror the real way: ``ds-connector simulate`` (rate limit off) in its own process and a
full ``ds-connector sync`` into a fresh database (attachments "none"; helpers of bench/sync.py).
``--keep DIR`` keeps the config and database in DIR, and reuses them when they are already there
(with the same simulator seed, the mirror matches the simulator again).

Then it measures:

1. idle: :func:`connector.status.gather` in this process (20 times), and ``ds-connector status
   --json`` as a child process (5 times: what an operator or Nagios waits for, Python start included);
2. during a write-heavy sync: the simulator touches 10 % of the dossiers, ``ds-connector sync`` re-reads
   and rewrites them page by page (one write transaction a page) while this script calls ``gather``
   in a loop; any error (such as "database is locked") is counted and printed.

Prints medians and maxima; asserts nothing (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync import start_simulator, write_config  # noqa: E402  (bench/sync.py)

from connector.config import Config, load_config  # noqa: E402
from connector.status import gather  # noqa: E402

SEED = 2026


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}


def ds_connector(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True, env=env(),
                          **kwargs)


def synced_mirror(directory: Path, sim) -> tuple[Path, Config]:  # type: ignore[no-untyped-def]
    """A config for ``sim`` in ``directory`` (logs at info) and a full ``ds-connector sync`` into it, as a
    child process; prints how long it took and the sync's last line."""
    config_path = write_config(directory, sim, "none")
    config_path.write_text(config_path.read_text().replace('level = "debug"', 'level = "info"'))
    config = load_config(config_path)
    started = time.perf_counter()
    result = ds_connector("sync", "--config", str(config_path))
    said = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    print(f"sync into {config.database.path} ({time.perf_counter() - started:.0f} s): {said}")
    return config_path, config


def timed(fn, times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def line(label: str, seconds: list[float]) -> str:
    return (f"  {label}: median {statistics.median(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms "
            f"({len(seconds)} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dossiers", nargs="?", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()

    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-status-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"Seeding the simulator with {args.dossiers} dossiers...", flush=True)
    sim = start_simulator(args.dossiers, SEED)
    try:
        config_path, config = synced_mirror(directory, sim)
        with closing(sqlite3.connect(config.database.path)) as conn:
            dossiers = conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]
        size = sum(p.stat().st_size for p in directory.glob("ds-connector.sqlite*")) / 1e6
        print(f"mirror: {dossiers} dossiers, {size:.0f} MB")

        print("Idle:")
        print(line("gather() in-process", timed(lambda: gather(config), 20)))
        print(line("`ds-connector status --json` (child process)",
                   timed(lambda: ds_connector("status", "--json", "--config", str(config_path)), 5)))

        with closing(sqlite3.connect(config.database.path)) as conn:
            numbers = [n for (n,) in conn.execute("SELECT number FROM dossiers")]
        touched = random.Random(1).sample(numbers, len(numbers) // 10)
        for i in range(0, len(touched), 1000):
            sim.post("touch", numbers=touched[i:i + 1000])
        writer = subprocess.Popen([sys.executable, "-m", "connector", "sync", "--config", str(config_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
        during: list[float] = []
        errors: list[str] = []
        figures = None
        time.sleep(1.0)
        while writer.poll() is None:
            started = time.perf_counter()
            try:
                figures = gather(config)
                if figures["database"]["error"]:
                    errors.append(figures["database"]["error"])
            except Exception as exc:  # noqa: BLE001 - counted and shown, it is what we measure
                errors.append(f"{type(exc).__name__}: {exc}")
            during.append(time.perf_counter() - started)
            time.sleep(0.2)
        writer.wait()
        print(f"During a sync rewriting {len(touched)} touched dossiers (exit {writer.returncode}):")
        if during:
            print(line("gather() in-process", during))
        print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        if figures:
            print(f"  last status seen during it: health {figures['health']['state']}, "
                  f"lock held {figures['lock']['held']}, running run {bool(figures['running_run'])}")
    finally:
        sim.process.terminate()
        sim.process.wait(30)


if __name__ == "__main__":
    main()
