"""How long the simulator takes to seed a big world, and how much memory the world holds.

    .venv/bin/python bench/seed_world.py [DOSSIERS]      (default 50000)

Prints wall and CPU seconds of ``seed_world(dossiers=DOSSIERS)``, the peak resident memory of the
process, and what the world holds. Nothing is asserted: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter

from connector.simulator.seed import seed_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dossiers", nargs="?", type=int, default=50_000, help="dossiers to seed (default 50000)")
    args = parser.parse_args()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    world = seed_world(dossiers=args.dossiers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    champs = sum(len(d.champs) + len(d.annotations) for d in world.dossiers.values())
    messages = sum(len(d.messages) for d in world.dossiers.values())
    print(f"seed_world(dossiers={args.dossiers}): {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"peak RSS {peak / 1024:.0f} MiB (interpreter and imports: {before / 1024:.0f} MiB)")
    print(f"  {len(world.dossiers)} dossiers + {len(world.deleted)} purged, {champs} root champs and annotations, "
          f"{messages} messages")
    for number, count in sorted(Counter(d.demarche_number for d in world.dossiers.values()).items()):
        print(f"  démarche {number}: {count} dossiers  {world.demarches[number].title[:60]}")


if __name__ == "__main__":
    main()
