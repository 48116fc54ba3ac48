"""The progress display of a sync on a terminal: one live block for the whole run, drawn by rich.

A header line for the run (the phase of the run, time spent, démarches done, dossiers and files so
far, the time left when every démarche still running knows its total) and one line per démarche (its
phase, its counts, a bar and the time left when its phase knows a total: the reconciliation's
listing and re-reads, the attachments queued). DS gives no count for an incremental pass, so the
dossiers phase shows counts and a rate, never a made-up total.

Every line is cut to the terminal's width (read again at each redraw, so a resized window is
followed); log lines printed through :class:`connector.logs.ConsoleLines` go above the block. The
block is transient: once the run is over it is erased and the summary is printed in its place. It is
only ever built on a terminal: pipes and journald get the JSON lines (see ``commands/sync.py``).

The engine reports through a ``progress(report)`` callback (``DemarcheReport``: ``phase``,
``step_done``, ``step_total``, ``files_queued`` and the counts); this module reads those fields and
nothing else of the engine.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

REFRESH_PER_SECOND = 8
BAR_WIDTH = 20
PHASE_WIDTH = len("reconciliation")


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> Text:
    filled = 0 if total <= 0 else min(width, done * width // total)
    text = Text("━" * filled, style="green")
    text.append("━" * (width - filled), style="grey37")
    return text


class _Row:
    """What the display remembers of one démarche between two reports."""

    def __init__(self, number: int):
        self.number = number
        self.report: Any = None
        self.phase = "waiting"
        self.phase_started = time.monotonic()
        self.step_started_at = 0  # step_done when the phase's current count began
        self.last_done = 0
        self.restarts = 0  # counts restarted within the phase: the reconciliation lists, then re-reads

    def update(self, report: Any) -> bool:
        """Take the démarche's latest report (the engine updates one object in place); True when its
        phase changed or its count restarted (worth a redraw now)."""
        restarted = report.phase == self.phase and report.step_done < self.last_done
        changed = report.phase != self.phase or restarted
        self.report, self.last_done = report, report.step_done
        if changed:
            self.restarts = self.restarts + 1 if restarted else 0
            self.phase, self.phase_started, self.step_started_at = report.phase, time.monotonic(), report.step_done
        return changed

    def left(self) -> float | None:
        """Seconds left in this phase, from its pace so far; None when unknown."""
        r = self.report
        if r is None or r.step_total is None or self.phase in ("done", "waiting"):
            return None
        done, total = r.step_done - self.step_started_at, r.step_total - self.step_started_at
        if r.step_done >= r.step_total:
            return 0.0
        spent = time.monotonic() - self.phase_started
        if done <= 0 or spent <= 0:
            return None
        return (total - done) * spent / done


class SyncDisplay:
    """The live block of one sync (``with SyncDisplay(...) as display:``), and the engine's
    ``progress`` callback (``display(report)``). :meth:`stage` names what the run does once the
    démarches are done (``follow-up``)."""

    def __init__(self, console: Console, *, full: bool, demarches: list[int], title: str | None = None):
        self.console = console
        self.title = title or ("full sync" if full else "sync")
        self.rows = {number: _Row(number) for number in demarches}
        self.started = time.monotonic()
        self.run_stage: str | None = None
        self.live = Live(self, console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True,
                         redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> SyncDisplay:
        self.live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.live.stop()

    def __call__(self, report: Any) -> None:
        row = self.rows.get(report.number)
        if row is None:
            row = self.rows[report.number] = _Row(report.number)
        if row.update(report):
            self.live.refresh()  # a phase is named as it starts, however short it is

    def stage(self, name: str) -> None:
        """The run is now doing this (after the démarches): shown in the header."""
        self.run_stage = name
        self.live.refresh()

    # -- drawing ------------------------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        for line in self.lines(width):
            line.no_wrap = True
            line.overflow = "ellipsis"
            line.truncate(width, overflow="ellipsis")
            yield line

    def lines(self, width: int) -> list[Text]:
        rows = list(self.rows.values())
        reports = [r.report for r in rows if r.report is not None]
        finished = sum(r.phase == "done" or (r.report is not None and r.report.error is not None) for r in rows)
        header = Text(self.title, style="bold")
        if self.run_stage:
            header.append(f" · {self.run_stage}", style="bold cyan")
        header.append(f" · {clock(time.monotonic() - self.started)} · {finished}/{len(rows)} démarches done")
        dossiers = sum(r.dossiers for r in reports)
        new, updated = sum(r.new for r in reports), sum(r.updated for r in reports)
        header.append(f" · {dossiers} dossiers ({new} new, {updated} updated)")
        files = sum(r.files for r in reports)
        if files or any(r.files_queued for r in reports):
            header.append(f" · {files} files")
        running = [r for r in rows if r.phase != "done" and not (r.report is not None and r.report.error)]
        lefts = [r.left() for r in running]
        if self.run_stage is None and running and None not in lefts:
            header.append(f" · ~{clock(max(lefts))} left", style="yellow")  # type: ignore[type-var]
        return [header, *(self.line(row, width) for row in rows)]

    def line(self, row: _Row, width: int) -> Text:
        r = row.report
        text = Text(f"  {row.number:<9}")
        if r is not None and r.error is not None:
            text.append(f"{'failed':<{PHASE_WIDTH}}  ", style="bold red")
            text.append(str(r.error))
            return text
        text.append(f"{row.phase:<{PHASE_WIDTH}}  ", style="green" if row.phase == "done" else "cyan")
        if r is None:
            return text
        counts = f"{r.dossiers} dossiers ({r.new} new, {r.updated} updated)"
        if r.files or r.files_queued:
            counts += f", {r.files} files"
        if row.phase in ("reconciliation", "attachments") and r.step_total:
            unit = "files" if row.phase == "attachments" else "dossiers"
            what = "fetched" if row.phase == "attachments" else ("re-read" if row.restarts else "listed")
            room = width - len(text) - 2
            bar_width = max(min(BAR_WIDTH, room - 40), 0)
            if bar_width >= 5:
                text.append_text(bar(r.step_done, r.step_total, bar_width))
                text.append(" ")
            about = "~" if row.phase == "reconciliation" and not row.restarts else ""  # the mirror's count
            text.append(f"{what} {r.step_done}/{about}{r.step_total} {unit}")
            left = row.left()
            if left is not None:
                text.append(f" · ~{clock(left)} left", style="yellow")
            text.append(f" · {counts}", style="dim")
            return text
        text.append(counts)
        if row.phase == "dossiers":
            spent = max(time.monotonic() - r.started, 1e-6)
            text.append(f" · {r.pages} pages · {r.dossiers / spent:.0f}/s", style="dim")
        elif row.phase == "deletions" and (r.deleted or r.pending):
            text.append(f" · {r.deleted} deleted, {r.pending} to the trash", style="dim")
        return text


def terminal_console(stream: Any) -> Console:
    """The rich console the display and the log lines share on this terminal stream."""
    return Console(file=stream, highlight=False, soft_wrap=False)
