"""The web view's latency on a big mirror (``ds-connector serve``), idle and while a sync writes.

    .venv/bin/python bench/web.py [DOSSIERS] [--keep DIR]      (default 50 000 dossiers)

Builds the mirror as bench/status.py does (``ds-connector simulate`` in its own process, a full
``ds-connector sync``; ``--keep DIR`` keeps and reuses it, e.g. the one bench/status.py kept), adds an
account, starts ``ds-connector serve`` as a child process, logs in over HTTP and measures, for the
démarche with the most dossiers:

- the campaign page (``/demarches/N``: :func:`connector.status.gather`, the same figures as
  ``ds-connector status --json``, plus its breakdowns), and ``gather()`` alone in this process;
- list pages of 100 rows (conventions by deadline, schools, open anomalies, dossiers; a search by
  name) and a dossier page;

1. idle (10 requests each); 2. while ``ds-connector sync`` rewrites the 10 % of dossiers the simulator
touched, page by page: every page in turn until the sync ends; any answer but 200 is counted.

Prints medians and maxima (the target is 300 ms); asserts nothing: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from status import SEED, env, synced_mirror  # noqa: E402  (bench/status.py)
from sync import start_simulator  # noqa: E402  (bench/sync.py)

from connector.status import gather  # noqa: E402
from connector.web.auth import AuthFiles, ensure_secret, set_user  # noqa: E402

USER, PASSWORD = "bench", "a bench password"


class Session:
    """Plain HTTP with the session cookie (sent over http to 127.0.0.1, as browsers do)."""

    def __init__(self, url: str):
        self.host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.port = int(port)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";")[0]
        conn.close()
        return response.status, text

    def login(self) -> None:
        _, page = self.request("GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        status, _ = self.request("POST", "/login", {"csrf": csrf, "user": USER, "password": PASSWORD, "next": "/"})
        assert status == 303, f"login failed ({status})"


def line(label: str, seconds: list[float]) -> str:
    return (f"  {label:<42} median {statistics.median(seconds) * 1000:4.0f} ms, max {max(seconds) * 1000:5.0f} ms "
            f"({len(seconds)} requests)")


def start_server(config_path: Path) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--config", str(config_path), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env())
    for raw in server.stdout:  # JSON lines ([log] level info): the first one says where it listens
        event = json.loads(raw)
        if event.get("event") == "web.listening":
            # the rest is drained, so that the child never blocks on a full pipe
            threading.Thread(target=lambda: server.stdout.read(), daemon=True).start()
            return server, event["url"]
    raise SystemExit(f"ds-connector serve did not start (exit {server.wait()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dossiers", nargs="?", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()

    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-web-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"Seeding the simulator with {args.dossiers} dossiers...", flush=True)
    sim = start_simulator(args.dossiers, SEED)
    server = None
    try:
        config_path, config = synced_mirror(directory, sim)
        with closing(sqlite3.connect(config.database.path)) as conn:
            counts = conn.execute("SELECT demarche_number, count(*) FROM dossiers GROUP BY 1 "
                                  "ORDER BY 2 DESC").fetchall()
            numbers = [n for (n,) in conn.execute("SELECT number FROM dossiers")]
            demarche = counts[0][0]
            dossier = conn.execute("SELECT dossier_number FROM conventions WHERE proof_message_id IS NOT NULL "
                                   "LIMIT 1").fetchone() or (numbers[0],)
        print(f"mirror: {len(numbers)} dossiers; démarche {demarche} has {counts[0][1]}")
        files = AuthFiles.beside(config_path, environ={})
        ensure_secret(files.secret)
        set_user(files.users, USER, PASSWORD)

        server, url = start_server(config_path)
        session = Session(url)
        session.login()
        pages = {
            "campaign page": f"/demarches/{demarche}",
            "conventions, 100 rows (by deadline)": f"/demarches/{demarche}/conventions",
            "schools, 100 rows": f"/demarches/{demarche}/ecoles",
            "open anomalies, 100 rows": f"/demarches/{demarche}/anomalies?open=1",
            "dossiers, 100 rows, page 50": f"/demarches/{demarche}/dossiers?page=50",
            "dossiers, search 'saint' by name": f"/demarches/{demarche}/dossiers?q=saint&sort=collectivite",
            "a dossier page": f"/dossiers/{dossier[0]}",
        }

        def measure(path: str) -> tuple[float, int]:
            started = time.perf_counter()
            status, _ = session.request("GET", path)
            return time.perf_counter() - started, status

        print("Idle:")
        for label, path in pages.items():
            measure(path)  # warm
            print(line(label, [measure(path)[0] for _ in range(10)]))
        gathered = []
        for _ in range(10):
            started = time.perf_counter()
            gather(config)
            gathered.append(time.perf_counter() - started)
        print(line("(gather() alone, in-process)", gathered))

        touched = random.Random(1).sample(numbers, len(numbers) // 10)
        for i in range(0, len(touched), 1000):
            sim.post("touch", numbers=touched[i:i + 1000])
        writer = subprocess.Popen([sys.executable, "-m", "connector", "sync", "--config", str(config_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
        during: dict[str, list[float]] = {label: [] for label in pages}
        errors: list[str] = []
        time.sleep(1.0)
        while writer.poll() is None:
            for label, path in pages.items():
                seconds, status = measure(path)
                during[label].append(seconds)
                if status != 200:
                    errors.append(f"{path}: HTTP {status}")
        writer.wait()
        print(f"During a sync rewriting {len(touched)} touched dossiers (exit {writer.returncode}):")
        for label, seconds in during.items():
            if seconds:
                print(line(label, seconds))
        print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        sim.process.terminate()
        sim.process.wait(30)


if __name__ == "__main__":
    main()
