"""The sync on a terminal (issue 17 §4): one progress display, cut to the terminal's width, naming its
phases; log lines above it, never on its lines; nothing drawn when the output is not a terminal.

The sync runs in a real pseudo-terminal (``pty.openpty``) whose size is set with ``TIOCSWINSZ``, as a
terminal emulator does, against the simulator over HTTP."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from daemonenv import child_env
from syncenv import write_config

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
PHASES = ("descriptor", "dossiers", "deletions", "reconciliation", "attachments", "follow-up")


def resize(fd: int, columns: int, rows: int = 30) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def run_in_terminal(args: list[str], *, columns: int, rows: int = 30, timeout: float = 120,
                    then: tuple[str, int] | None = None) -> tuple[int, str, int]:
    """``ds-connector ARGS`` with stdin, stdout and stderr on a pseudo-terminal of this size: its exit
    code, everything it wrote (escape sequences included), and with ``then=(text, columns)`` the
    offset in it where the terminal was resized to ``columns``, once ``text`` had been written."""
    master, slave = pty.openpty()
    resize(slave, columns, rows)
    resized = -1
    env = {k: v for k, v in child_env(TERM="xterm-256color").items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "connector", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env)
    os.close(slave)
    raw = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            raw += chunk
            if then is not None and resized < 0 and then[0].encode() in raw:
                resize(master, then[1], rows)
                resized = len(raw)
        code = proc.wait(timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, raw.decode(errors="replace"), resized


def screen_lines(raw: str) -> list[str]:
    """Every piece of text the terminal was asked to draw on one line: escape sequences removed,
    split at carriage returns and line feeds."""
    return [line for line in re.split(r"[\r\n]", ANSI.sub("", raw)) if line.strip()]


def summary_index(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if re.match(r"^(full )?sync (ok|partial|failed): ", line))


def test_a_full_sync_in_a_70_column_terminal_names_its_phases_and_never_goes_past_the_edge(make_simulator,
                                                                                          tmp_path: Path):
    simulator = make_simulator(dossiers=300, latency=0.01)
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches),
                          page_size=25)
    code, raw, _ = run_in_terminal(["sync", "--full", "--config", str(config)], columns=70)
    assert code == 0, raw[-2000:]
    lines = screen_lines(raw)
    end = summary_index(lines)
    progress, summary = lines[:end], lines[end:]
    assert progress, raw[-2000:]
    too_wide = [line for line in progress if len(line) > 70]
    assert not too_wide, too_wide[:5]
    shown = "\n".join(progress)
    for phase in PHASES:
        assert re.search(rf"\b{phase}\b", shown), f"phase {phase} never named"
    for number in simulator.world.demarches:
        assert re.search(rf"^  {number}\s+(descriptor|dossiers|deletions|reconciliation|attachments|done)", shown,
                         re.M), number
    assert re.search(r"\d/3 démarches done", shown)  # the run's total, beside each démarche's line
    assert re.search(r"listed \d+/~?\d+ dossiers", shown)  # the reconciliation knows its total
    # the summary (not part of the display) fits 100 columns; the display is gone once it is printed
    assert len(summary) == 2 and all(len(line) <= 100 for line in summary), summary
    assert "JSON" not in raw and '"event"' not in raw  # a person gets the display, not the JSON lines


def test_the_display_follows_a_resized_terminal(make_simulator, tmp_path: Path):
    simulator = make_simulator(dossiers=300, latency=0.03)
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches),
                          page_size=10)
    code, raw, resized = run_in_terminal(["sync", "--config", str(config)], columns=100,
                                         then=("démarches done", 50))
    assert code == 0 and resized > 0, raw[-2000:]
    before = [line for line in screen_lines(raw[:resized]) if "démarches done" in line]
    after = screen_lines(raw[resized:])
    after = after[:summary_index(after)]
    headers = [i for i, line in enumerate(after) if line.startswith("sync · ")]
    assert len(headers) >= 2, after  # redrawn after the resize (the first may have been under way)
    assert max(len(line) for line in before) > 50
    redrawn = after[headers[1]:]
    assert redrawn and all(len(line) <= 50 for line in redrawn), [line for line in redrawn if len(line) > 50]


def test_log_lines_go_above_the_display_never_on_its_lines(make_simulator, tmp_path: Path):
    simulator = make_simulator(dossiers=120)
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches),
                          page_size=10)
    code, raw, _ = run_in_terminal(["sync", "-v", "--config", str(config)], columns=100)
    assert code == 0, raw[-2000:]
    lines = screen_lines(raw)
    logged = [line for line in lines if "sync.page_committed" in line]
    drawn = [line for line in lines if "démarches done" in line]
    assert logged and drawn
    glued = [line for line in logged if "démarches done" in line or "dossiers (" in line]
    assert not glued, glued[:3]  # a log line never shares a line with the display


def test_nothing_is_drawn_when_standard_output_is_not_a_terminal(make_simulator, tmp_path: Path):
    """Standard error on a terminal but standard output piped (``sync | jq``): the JSON lines, no display."""
    simulator = make_simulator(dossiers=30)
    config = write_config(tmp_path, simulator.url, simulator.token, sorted(simulator.world.demarches))
    master, slave = pty.openpty()
    result = subprocess.run([sys.executable, "-m", "connector", "sync", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=slave, env=child_env(), timeout=120, text=True)
    os.close(slave)
    os.set_blocking(master, False)
    try:
        drawn = os.read(master, 65536).decode(errors="replace")
    except (BlockingIOError, OSError):
        drawn = ""
    os.close(master)
    assert result.returncode == 0
    assert drawn == ""
    assert result.stdout.splitlines()[0].startswith("{") and '"event": "sync.started"' in result.stdout
