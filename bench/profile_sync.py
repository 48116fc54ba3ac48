"""Where a full sync's CPU goes, thread by thread: a profile (cProfile) of one full sync.

The simulator runs in its own process, as in ``bench/sync.py`` (same options for the world); the sync
runs in this process, as ``ds-connector sync`` does it (the run service's hooks: forms, deadlines), with
a profiler on the event loop's thread and, when the connector has one (``connector/store/writer.py``),
another on the SQLite writer's thread. For each thread it prints the CPU seconds (``time.thread_time``),
then the functions that took the most of it, inclusive (cumulative) and exclusive (own time). Profiling
slows Python down: compare the shares, not the seconds, with ``bench/sync.py``'s figures; its times are
wall times, so with two threads a function's time includes its waits for the other thread to let go of
the GIL. It also prints how long the event loop was held between two awaits (the lateness of a 10 ms
timer): what a page's storing costs the requests, downloads and progress display waiting on the loop.

    .venv/bin/python bench/profile_sync.py --demarches 2000,1500,750,750 --latency 0.5 [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from sync import start_simulator, write_config  # noqa: E402 - bench/sync.py, beside this file

from connector import service  # noqa: E402
from connector.commands.hooks import sync_hooks  # noqa: E402
from connector.config import load_config  # noqa: E402
from connector.credentials import load_token  # noqa: E402
from connector.sync import engine, run_sync  # noqa: E402

PROFILES: dict[str, tuple[cProfile.Profile, list[float]]] = {}  # thread -> (its profile, [CPU start, end])


def _profile_writer() -> bool:
    """Put a profiler on the writer's thread, if the connector has a writer thread."""
    writer = getattr(engine, "Writer", None)
    if writer is None:
        return False

    class Profiled(writer):  # type: ignore[misc, valid-type]
        def _open(self) -> Any:  # the first unit, on the writer's thread
            profile = cProfile.Profile()
            PROFILES["SQLite writer"] = (profile, [time.thread_time(), 0.0])
            profile.enable()
            return super()._open()

        async def __aexit__(self, *exc_info: object) -> None:
            def stop(_db: Any) -> None:
                profile, cpu = PROFILES["SQLite writer"]
                profile.disable()
                cpu[1] = time.thread_time()

            await self(stop)
            await super().__aexit__(*exc_info)

    engine.Writer = Profiled  # type: ignore[attr-defined]
    return True


def _print(name: str, top: int) -> None:
    profile, (start, end) = PROFILES[name]
    print(f"\n== {name} thread: {end - start:.2f} CPU s (profiled)")
    for key, title in (("cumulative", "inclusive"), ("tottime", "own time")):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start_at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        print(f"-- {title}, top {top}")
        print("\n".join(lines[start_at:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dossiers", nargs="?", type=int, default=5000)
    parser.add_argument("--demarches", default=None, help="dossiers per démarche, e.g. 2000,1500,750,750")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    if args.demarches:
        args.dossiers = sum(int(n) for n in args.demarches.split(","))
    writer = _profile_writer()
    sim = start_simulator(args.dossiers, args.seed, args.latency, sizes=args.demarches)
    try:
        directory = Path(tempfile.mkdtemp(prefix="ds-profile-"))
        config = load_config(write_config(directory, sim, "none"))
        config = replace(config, log=replace(config.log, level="warning"))  # no debug line per request
        service.configure_logging(config, "once")
        token = load_token(config, environ={})

        lags: list[float] = []

        async def ticker() -> None:
            """How late the loop wakes a 10 ms sleep: how long it was held by work between two awaits."""
            while True:
                asked = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - asked - 0.01)

        async def once() -> Any:
            tick = asyncio.create_task(ticker())
            try:
                async with service.client(config, token) as client:
                    return await run_sync(config, client, hooks=sync_hooks(config))
            finally:
                tick.cancel()

        loop_profile = cProfile.Profile()
        PROFILES["event loop"] = (loop_profile, [time.thread_time(), 0.0])
        wall = time.perf_counter()
        loop_profile.enable()
        report = asyncio.run(once())
        loop_profile.disable()
        PROFILES["event loop"][1][1] = time.thread_time()
        wall = time.perf_counter() - wall
    finally:
        sim.process.terminate()
    print(f"full sync {report.status}: {report.total('dossiers')} dossiers, {report.requests} requests, {wall:.1f} s "
          f"wall; process CPU {time.process_time():.2f} s; writer thread: {'yes' if writer else 'no'}")
    lags.sort()
    print(f"event loop held (lateness of a 10 ms timer, {len(lags)} ticks): median {lags[len(lags) // 2] * 1000:.1f} ms, "
          f"99th percentile {lags[int(len(lags) * 0.99)] * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms")
    for name in PROFILES:
        _print(name, args.top)


if __name__ == "__main__":
    main()
