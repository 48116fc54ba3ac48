"""The connector's sync against the simulator on loopback, beside the lower bound of the same work.

    .venv/bin/python bench/sync.py [DOSSIERS] [--latency SECONDS] [--attachments none|messages|all|both]
                                   [--reconcile]     (default 5000 dossiers, no latency, attachments "both")
                                   [--demarches OCC,POI,CRE[,2024]] [--files-per-dossier F]

A large académie's world (4 démarches, about 1.6 messagerie attachments a dossier, DS's pace):

    .venv/bin/python bench/sync.py --demarches 2000,1500,750,750 --files-per-dossier 1.6 --file-kb 190 --latency 0.5

Starts ``ds-connector simulate --latency SECONDS`` (rate limit off) in its own process, so every
GraphQL answer takes that much server time, as DS's do (0.5 s: a page of 100 full dossiers on DS
takes seconds). Then, per attachments policy ("both": none, then messages), against that same
simulator process: the lower bound (``bench/lower_bound.py`` in a child process: every page of every
démarche, the démarches in parallel, decoded and thrown away; with "messages", every messagerie
attachment downloaded and MD5-checked, 8 at a time per démarche, nothing written), and
``ds-connector sync`` as a child process with a config (400 requests per minute, pages of 100, debug
logs in JSON) and its 0600 token file in a fresh temporary directory: (1) the first sync into a
fresh database, (2) an incremental sync with nothing new; for the last policy also (3) an
incremental sync after some activity (per démarche: new dossiers, usager messages with a signed PDF,
touched, hidden and purged dossiers), and with ``--reconcile`` (4) ``sync --full`` on the
up-to-date mirror. A first, unmeasured lower-bound pass warms the simulator's caches so that neither
side pays for them. The ratio printed is the full sync's wall time over the lower bound's (each a
whole process, start-up included), against issue 10's targets (1.3 with attachments none, 1.8 with
messages). The sync's CPU is also printed beside its floor: the lower bound's own CPU (start-up,
fetch, decode) plus what SQLite alone costs to write the same rows (``bench/store_floor.py`` on the
mirror of the first policy).

Per run it prints wall seconds, the sync process's own CPU seconds (user + sys) and peak RSS (from
``os.wait4``), the simulator's CPU seconds meanwhile (``/proc/<pid>/stat``: the other process),
requests per démarche (the ``api.request`` debug lines), the database size and the files fetched,
the after-sync follow-up's seconds and the deadline démarches it planned or skipped as unchanged;
then the targets of issues 4 §7 and 10 §7, each met or not. Nothing is asserted: timings depend on
the machine and its load. The client-side budget lets 400 requests start in any 60 s, so it bounds
wall time only past 400 requests (60 s per 400 after the first 400).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

REQUESTS_PER_MINUTE = 400
PAGE_SIZE = 100
TICKS = os.sysconf("SC_CLK_TCK")
ACTIVITY = {"new": 5, "messages": 3, "touched": 3, "hidden": 1, "purged": 1}  # per démarche, run (3)


@dataclass
class Simulator:
    process: subprocess.Popen[str]
    url: str
    control: str
    token: str
    demarches: dict[int, int]  # number -> dossiers on the API
    seconds: float  # seeding and start-up

    def served(self, reset: bool = True) -> Counter[str]:
        """GraphQL requests the simulator received by operation ("file": file GETs), then zeroed
        (empty from a simulator older than its ``served`` count: the sync's own log still counts)."""
        try:
            return Counter(self.post("served/reset" if reset else "served")["requests"])
        except urllib.error.HTTPError:
            return Counter()

    def cpu(self) -> float:
        """utime + stime of the simulator process, in seconds."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def post(self, operation: str, **payload: object) -> dict:
        request = urllib.request.Request(self.control + operation, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)


@dataclass
class Run:
    label: str
    wall: float
    cpu: float  # the sync process's user + sys
    peak_rss_kb: int
    sim_cpu: float
    exit_code: int
    summary: str
    row: dict  # its sync_runs row
    requests: Counter[int] = field(default_factory=Counter)  # démarche -> api.request lines
    served: Counter[str] = field(default_factory=Counter)  # operation -> requests the simulator received
    load: str = ""  # the 1-minute load average when the run ended (other processes share the cores)
    operations: Counter[str] = field(default_factory=Counter)
    received: Counter[int] = field(default_factory=Counter)  # démarche -> dossier nodes (sync.demarche_done)
    files: int = 0
    file_bytes: int = 0
    db_bytes: int = 0
    lists: dict[int, Counter[str]] = field(default_factory=dict)  # démarche -> deleted / pending rows after it
    writer_cpu: float | None = None  # CPU of the SQLite writer's thread (sync.finished), None before it existed
    followup: float | None = None  # seconds of the after-sync follow-up (followup.after_sync_finished)
    followup_skipped: list[int] = field(default_factory=list)  # deadline démarches it did not plan
    followup_planned: list[int] = field(default_factory=list)


def start_simulator(dossiers: int, seed: int, latency: float = 0.0, extras: tuple[str, ...] = (),
                    sizes: str | None = None, files_per_dossier: float | None = None,
                    file_kb: int | None = None) -> Simulator:
    started = time.perf_counter()
    world = (["--demarches", sizes] if sizes else []) + (
        ["--files-per-dossier", str(files_per_dossier)] if files_per_dossier else []) + (
        ["--file-kb", str(file_kb)] if file_kb else [])
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "simulate", "--host", "127.0.0.1", "--port", "0",
         "--seed", str(seed), "--dossiers", str(dossiers), "--rate-limit", "0", "--latency", str(latency),
         *(a for name in extras for a in ("--with", name)), *world],
        stdout=subprocess.PIPE, text=True)
    banner = []
    while not banner or not banner[-1].startswith("Rate limit"):
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit("the simulator did not start")
        banner.append(line)
    text = "".join(banner)
    return Simulator(
        process,
        url=re.search(r"serving (\S+)", text).group(1),  # type: ignore[union-attr]
        control=re.search(r"Control surface: (\S+)", text).group(1),  # type: ignore[union-attr]
        token=re.search(r"API token: (\S+)", text).group(1),  # type: ignore[union-attr]
        demarches={int(m[1]): int(m[2]) for m in re.finditer(r"^\s+(\d+)\s.*\((\d+) dossiers on the API",
                                                              text, re.MULTILINE)},
        seconds=time.perf_counter() - started,
    )


def write_config(directory: Path, sim: Simulator, attachments: str) -> Path:
    """As an operator would: the token in a 0600 file next to the config, never on a command line."""
    write_token(directory, sim)
    lines = [
        "[ds]", f'url = "{sim.url}"', 'token_file = "ds-api-token"', f"requests_per_minute = {REQUESTS_PER_MINUTE}",
        "", "[database]", 'path = "ds-connector.sqlite"',
        "", "[sync]", f'attachments = "{attachments}"', f"page_size = {PAGE_SIZE}",
        "", "[log]", 'level = "debug"', 'format = "json"', "",
    ]
    for number in sim.demarches:
        lines += ["[[demarches]]", f"number = {number}", ""]
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_sync(label: str, config: Path, sim: Simulator, *args: str) -> Run:
    """``ds-connector sync`` as a child process, measured with ``os.wait4``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY")}
    sim.served()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sim_before, started = sim.cpu(), time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "connector", "sync", "--config", str(config), *args],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        sim_cpu = sim.cpu() - sim_before
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines, problems = out.read().splitlines(), err.read().strip()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    if child.returncode != 0 or problems:
        print(f"  ({label}: exit {child.returncode}) {problems}", file=sys.stderr)
    db_path = config.parent / "ds-connector.sqlite"
    if not db_path.exists():
        raise SystemExit(f"{label}: ds-connector sync exited {child.returncode} without a database: {problems}")
    run = Run(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, sim_cpu, child.returncode,
              summary="; ".join(line.strip() for line in lines if not line.startswith("{")), row={},  # its summary lines
              served=sim.served(), load=load())
    for event in events:
        if event.get("event") == "api.request":
            run.requests[event.get("demarche", 0)] += 1
            run.operations[event.get("operation", "?")] += 1
        elif event.get("event") == "sync.demarche_done":
            run.received[event.get("demarche", 0)] = event.get("dossiers", 0)
        elif event.get("event") == "sync.finished" and "writer_cpu_seconds" in event:
            run.writer_cpu = event["writer_cpu_seconds"]
        elif event.get("event") == "followup.after_sync_finished":
            run.followup = event.get("seconds")
            run.followup_skipped, run.followup_planned = event.get("skipped", []), event.get("planned", [])
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        run.row = dict(db.execute("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone())
        run.files, run.file_bytes = db.execute(
            "SELECT count(*), coalesce(sum(byte_size), 0) FROM files WHERE downloaded_at IS NOT NULL").fetchone()
        for table, key in (("tombstones", "deleted"), ("pending_deletions", "pending")):
            for demarche, count in db.execute(f"SELECT demarche_number, count(*) FROM {table} GROUP BY 1"):
                run.lists.setdefault(demarche, Counter())[key] = count
    run.db_bytes = sum(p.stat().st_size for p in db_path.parent.glob("ds-connector.sqlite*") if p.is_file())
    return run


@dataclass
class Bound:
    """One run of bench/lower_bound.py (a child process, measured like a sync)."""

    attachments: str
    wall: float
    cpu: float
    peak_rss_kb: int
    figures: dict  # its own JSON: requests, pages, dossiers, files, file_bytes, mismatched, seconds
    load: str = ""


def load() -> str:
    """The load averages (1, 5, 15 min): the cores are shared, the figures say under what load."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_lower_bound(sim: Simulator, directory: Path, attachments: str) -> Bound:
    command = [sys.executable, str(Path(__file__).with_name("lower_bound.py")), "--url", sim.url,
               "--token-file", str(directory / "ds-api-token"), "--attachments", attachments, "--json"]
    for number in sim.demarches:
        command += ["--demarche", str(number)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        output, problems = out.read(), err.read().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the lower bound failed: {problems or output}")
    return Bound(attachments, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, json.loads(output), load())


def run_store_floor(mirror: Path) -> dict:
    """bench/store_floor.py on this mirror, in a child process (it holds the mirror's rows in memory:
    done here, every later child's peak RSS would count them, fork copying the parent)."""
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("store_floor.py")), str(mirror),
                           "--page", str(PAGE_SIZE), "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the SQLite floor failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def write_token(directory: Path, sim: Simulator) -> None:
    fd = os.open(directory / "ds-api-token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(sim.token + "\n")


def make_activity(sim: Simulator, db_path: Path) -> Counter[str]:
    """Per démarche: new dossiers, usager messages with a signed PDF, touched, hidden, purged ones."""
    done: Counter[str] = Counter()
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        picks = {n: [row[0] for row in db.execute(
            "SELECT number FROM dossiers WHERE demarche_number = ? AND pending_deletion = 0 "
            "AND state = 'en_construction' ORDER BY number LIMIT ?", [n, sum(ACTIVITY.values())])]
            for n in sim.demarches}
    for demarche, numbers in picks.items():
        try:
            done["new"] += len(sim.post("dossiers", demarche=demarche, count=ACTIVITY["new"])["numbers"])
        except urllib.error.HTTPError:  # an added académie form: the simulator files new dossiers on built-ins only
            pass
        for number in numbers[:ACTIVITY["messages"]]:
            sim.post("message", number=number, kind="signed_pdf")
            done["messages"] += 1
        rest = numbers[ACTIVITY["messages"]:]
        touched, rest = rest[:ACTIVITY["touched"]], rest[ACTIVITY["touched"]:]
        sim.post("touch", numbers=touched)
        done["touched"] += len(touched)
        for number in rest[:ACTIVITY["hidden"]]:
            sim.post("hide", number=number, by="usager")
            done["hidden"] += 1
        for number in rest[ACTIVITY["hidden"]:ACTIVITY["hidden"] + ACTIVITY["purged"]]:
            sim.post("purge", number=number)
            done["purged"] += 1
    return done


def pages(count: int) -> int:
    """Requests to read a list of ``count`` items (an empty list still costs one)."""
    return max(1, math.ceil(count / PAGE_SIZE))


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def budget_floor(requests: int) -> float:
    """The least wall time the budget allows: 400 requests in any 60 s, so 60 s per 400 after the first."""
    return 60.0 * max(0, math.ceil(requests / REQUESTS_PER_MINUTE) - 1)


def report(args: argparse.Namespace, sim: Simulator, runs: list[Run], attachments: str) -> None:
    mb = 1024 * 1024
    print()
    print(f"{'run':<28}{'wall s':>8}{'CPU s':>8}{'doss/s':>8}{'sim CPU':>9}{'requests':>9}{'floor s':>9}"
          f"{'dossiers':>9}{'new':>7}{'upd':>6}{'del':>5}{'files':>7}{'file MB':>8}{'RSS MB':>8}{'DB MB':>7}")
    previous_files = previous_bytes = 0
    for run in runs:
        r = run.row
        rate = f"{r['dossiers'] / run.cpu:.0f}" if r["dossiers"] and run.cpu else "-"
        print(f"{run.label:<28}{run.wall:>8.1f}{run.cpu:>8.2f}{rate:>8}{run.sim_cpu:>9.2f}{r['requests']:>9}"
              f"{budget_floor(r['requests']):>9.1f}{r['dossiers']:>9}{r['new']:>7}{r['updated']:>6}"
              f"{r['deleted']:>5}{run.files - previous_files:>7}{(run.file_bytes - previous_bytes) / mb:>8.1f}"
              f"{run.peak_rss_kb / 1024:>8.1f}{run.db_bytes / mb:>7.1f}")
        previous_files, previous_bytes = run.files, run.file_bytes
    print("  CPU s: the sync process's user+sys (os.wait4); doss/s: dossiers received / CPU s; sim CPU: the "
          "simulator's CPU meanwhile;\n  floor s: the budget's floor on wall time (400 requests in any 60 s); "
          "files: downloaded by that run (DB MB includes -wal)")
    for run in runs:
        if run.followup is not None:
            print(f"  {run.label}: after-sync follow-up {run.followup:.3f} s, deadline démarches planned "
                  f"{run.followup_planned or 'none'}, skipped (nothing could have changed) "
                  f"{run.followup_skipped or 'none'}")
    for run in runs:
        print(f"  {run.label}: exit {run.exit_code}, {run.row['status']}, load {run.load}, operations "
              + ", ".join(f"{op} {n}" for op, n in sorted(run.operations.items()))
              + "; the simulator received " + ", ".join(f"{op} {n}" for op, n in sorted(run.served.items())))

    full, quiet = runs[0], runs[1]
    target = {n: pages(count) + 3 for n, count in sim.demarches.items()}
    lists = {n: full.lists.get(n, Counter()) for n in sim.demarches}
    exact = {n: 1 + pages(count) + pages(lists[n]["deleted"]) + pages(lists[n]["pending"])
             for n, count in sim.demarches.items()}
    print()
    print(f"{'démarche':>10}{'on the API':>12}{'deleted':>9}{'trash':>7}{'target':>8}{'streams':>9}{'full':>6}"
          f"{'no-change':>11}{'(re-read)':>10}" + "".join(f"{run.label.split()[0]:>6}" for run in runs[2:]))
    for n, count in sim.demarches.items():
        print(f"{n:>10}{count:>12}{lists[n]['deleted']:>9}{lists[n]['pending']:>7}{target[n]:>8}{exact[n]:>9}"
              f"{full.requests[n]:>6}{quiet.requests[n]:>11}{quiet.received[n]:>10}"
              + "".join(f"{run.requests[n]:>6}" for run in runs[2:]))
    print("  requests per démarche (api.request debug lines) of each run; deleted / trash: DS's deletedDossiers and\n"
          "  pendingDeletedDossiers lists as mirrored by the full sync; target: ⌈n/100⌉ + 3 (issue 4 §7); streams:\n"
          "  1 descriptor + one request per 100 of each list (the floor when a deletion list exceeds one page);\n"
          "  re-read: dossiers the no-change sync received again (the overlap window before the watermark)")

    n = sum(sim.demarches.values())
    total_target = sum(target.values())
    worst_quiet = max(quiet.requests[d] for d in sim.demarches)
    rate = full.row["dossiers"] / full.cpu if full.cpu else 0.0
    rss = full.peak_rss_kb / 1024
    print()
    print(f"targets (issue 4 §7), N = {args.dossiers} seeded, {n} dossiers on the API, attachments {attachments}:")
    print(f"  full sync requests {full.row['requests']} ≤ Σ(⌈n_d/100⌉ + 3) = {total_target}: "
          f"{verdict(full.row['requests'] <= total_target and all(full.requests[d] <= target[d] for d in target))}"
          f"  (per stream: {sum(exact.values())}; an N+1 connector: N + ⌈N/50⌉ = {n + math.ceil(n / 50)})")
    print(f"  no-change incremental: at most {worst_quiet} requests per démarche ≤ 3: {verdict(worst_quiet <= 3)}")
    net = full.row["dossiers"] / (full.cpu - quiet.cpu) if full.cpu > quiet.cpu else 0.0
    print(f"  connector throughput {rate:.0f} dossiers/s of its own CPU ≥ 2000: {verdict(rate >= 2000)}"
          f"  ({net:.0f}/s without the start-up, taken as the no-change run's {quiet.cpu:.2f} s; "
          f"wall {full.row['dossiers'] / full.wall:.0f}/s)")
    print(f"  peak RSS {rss:.0f} MB < 200 MB (target at N = 50 000): {verdict(rss < 200)}")
    print(f"  database {full.db_bytes / mb:.1f} MB after the full sync ({full.db_bytes / max(n, 1) / 1024:.1f} KB "
          f"a dossier); simulator peak RSS {sim.peak_rss_mb():.0f} MB (its own process)")


TARGET_RATIO = {"none": 1.2, "messages": 1.5, "all": 1.5}  # issue 18 (issue 10: 1.3 and 1.8)


def compare(args: argparse.Namespace, sim: Simulator, results: list[tuple[str, Bound, list[Run]]],
            store: dict | None = None) -> None:
    """The connector's full sync beside the lower bound of the same work, one line per policy."""
    mb = 1e6
    n = sum(sim.demarches.values())
    print()
    print(f"side by side: N = {args.dossiers} seeded ({n} on the API), {len(sim.demarches)} démarches, "
          f"{args.latency:g} s of server time per GraphQL answer, the same simulator process:")
    print(f"{'attachments':<12}{'bound s':>8}{'req':>5}{'files':>7}{'MB':>7}{'CPU s':>7}{'RSS MB':>8}"
          f"{'sync s':>8}{'req':>5}{'files':>7}{'CPU s':>7}{'doss/s':>8}{'RSS MB':>8}{'ratio':>7}{'target':>8}"
          f"{'no-change req/dém':>19}{'load':>16}")
    for policy, bound, runs in results:
        full, quiet = runs[0], runs[1]
        f = bound.figures
        ratio = full.wall / bound.wall
        rate = full.row["dossiers"] / full.cpu if full.cpu else 0.0
        target = TARGET_RATIO[policy]
        worst_quiet = max(quiet.requests[d] for d in sim.demarches)
        print(f"{policy:<12}{bound.wall:>8.1f}{f['requests']:>5}{f['files']:>7}{f['file_bytes'] / mb:>7.0f}"
              f"{bound.cpu:>7.1f}{bound.peak_rss_kb / 1024:>8.0f}"
              f"{full.wall:>8.1f}{sum(n for op, n in full.served.items() if op != 'file') or full.row['requests']:>5}"
              f"{full.files:>7}"
              f"{full.cpu:>7.1f}{rate:>8.0f}"
              f"{full.peak_rss_kb / 1024:>8.0f}{ratio:>7.2f}{'≤ ' + str(target):>8}{worst_quiet:>19}"
              f"{full.load:>16}  {verdict(ratio <= target)}")
        if f["mismatched"] or f["failed"]:
            print(f"  lower bound ({policy}): {f['mismatched']} downloads mismatched, {f['failed']} failed")
    print("  bound s / sync s: wall seconds of each whole process (start-up included); ratio = sync s / bound s;\n"
          "  req: GraphQL requests as the simulator counted them; doss/s: dossiers received per CPU second of the\n"
          "  sync process (target ≥ 1000, goal 2000); no-change req/dém: the most requests a démarche cost in the\n"
          "  sync with nothing new (target ≤ 3); MB: attachment bytes; load: 1/5/15-min load averages at the end")
    if store is not None:
        policy, bound, runs = results[0]
        full, floor_cpu = runs[0], bound.cpu + store["cpu"]
        print(f"CPU beside its floor (attachments {policy}): the full sync {full.cpu:.2f} s = "
              f"{full.row['dossiers'] / full.cpu:.0f} dossiers/s; floor {floor_cpu:.2f} s = the lower bound's "
              f"{bound.cpu:.2f} s (start-up, fetch, decode)\n  + SQLite's {store['cpu']:.2f} s for the same "
              f"{store['rows']} rows pre-built, {store['pages']} commits (bench/store_floor.py) = "
              f"{full.row['dossiers'] / floor_cpu:.0f} dossiers/s at most with every table written; "
              f"ratio {full.cpu / floor_cpu:.2f}")
    for policy, _, runs in results:
        full = runs[0]
        if full.writer_cpu is not None:
            print(f"CPU by thread (attachments {policy}): the SQLite writer {full.writer_cpu:.2f} s (pages through "
                  f"the door, forms and deadlines, cursors), the rest {full.cpu - full.writer_cpu:.2f} s (start-up, "
                  "the event loop: requests, decoding; the files' threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dossiers", nargs="?", type=int, default=5000, help="dossiers to seed (default 5000)")
    parser.add_argument("--attachments", choices=("none", "messages", "all", "both"), default="both",
                        help="the [sync] attachments policy; both: none, then messages (default)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="server seconds the simulator adds to every GraphQL answer (DS-like: 0.5)")
    parser.add_argument("--seed", type=int, default=2026, help="the simulator's seed (default 2026)")
    parser.add_argument("--reconcile", action="store_true", help="also time `sync --full` on the up-to-date mirror")
    parser.add_argument("--demarches", metavar="OCC,POI,CRE[,2024]", default=None,
                        help="dossiers per démarche (simulate --demarches), e.g. 2000,1500,750,750; DOSSIERS is "
                             "then their sum")
    parser.add_argument("--files-per-dossier", type=float, default=None, metavar="F",
                        help="messagerie attachments per dossier (simulate --files-per-dossier), e.g. 1.6")
    parser.add_argument("--file-kb", type=int, default=None, metavar="KB",
                        help="their mean size (simulate --file-kb), e.g. 190: 1.6 a dossier make 1.5 GB at N = 5000")
    args = parser.parse_args()
    if args.demarches:
        try:
            args.dossiers = sum(int(n) for n in args.demarches.split(","))
        except ValueError:
            parser.error(f"--demarches: expected numbers separated by commas, not {args.demarches!r}")
    policies = ["none", "messages"] if args.attachments == "both" else [args.attachments]
    sim = start_simulator(args.dossiers, args.seed, args.latency, sizes=args.demarches,
                          files_per_dossier=args.files_per_dossier, file_kb=args.file_kb)
    print(f"load {load()} (1, 5, 15 min; {os.cpu_count()} cores)", flush=True)
    try:
        print(f"simulator seeded with {args.dossiers} dossiers and listening after {sim.seconds:.1f} s "
              f"(its CPU {sim.cpu():.1f} s, latency {args.latency:g} s): "
              + ", ".join(f"démarche {n}: {c} on the API" for n, c in sim.demarches.items()), flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
            root = Path(tmp)
            write_token(root, sim)
            warm = run_lower_bound(sim, root, "none")
            print(f"  warm-up lower bound (not counted): {warm.wall:.1f} s, {warm.figures['requests']} requests",
                  flush=True)
            results: list[tuple[str, Bound, list[Run]]] = []
            store: dict | None = None
            for index, policy in enumerate(policies):
                # the lower bound downloads messagerie attachments only: "all" is compared with that
                bound = run_lower_bound(sim, root, "none" if policy == "none" else "messages")
                print(f"  lower bound, attachments {policy}: {bound.wall:.1f} s, {bound.figures['requests']} "
                      f"requests, {bound.figures['files']} files", flush=True)
                directory = root / policy
                directory.mkdir()
                config = write_config(directory, sim, policy)
                runs = [run_sync(f"1 full ({policy})", config, sim)]
                print(f"  {runs[-1].summary}", flush=True)
                runs.append(run_sync("2 incremental, no change", config, sim))
                print(f"  {runs[-1].summary}", flush=True)
                if index == len(policies) - 1:
                    done = make_activity(sim, directory / "ds-connector.sqlite")
                    print("  activity: " + ", ".join(f"{k} {v}" for k, v in done.items()), flush=True)
                    runs.append(run_sync("3 incremental, activity", config, sim))
                    print(f"  {runs[-1].summary}", flush=True)
                    if args.reconcile:
                        runs.append(run_sync("4 --full reconciliation", config, sim, "--full"))
                        print(f"  {runs[-1].summary}", flush=True)
                results.append((policy, bound, runs))
                if index == 0:
                    store = run_store_floor(directory / "ds-connector.sqlite")
                    print(f"  SQLite floor: {store['cpu']:.2f} CPU s for {store['rows']} rows", flush=True)
            report(args, sim, results[-1][2], policies[-1])
            compare(args, sim, results, store)
    finally:
        sim.process.terminate()
        sim.process.wait(30)


if __name__ == "__main__":
    main()
