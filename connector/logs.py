"""structlog setup: JSON lines on stdout for journald, console rendering on a TTY.

Context is bound per run with ``bind_contextvars(run_id=..., demarche=...)``; event names are dotted
(``sync.page_committed``). Tracebacks never carry frame locals (a local ``token`` would leak), and a
redaction processor blanks secret-looking keys.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

REDACTED_KEYS = frozenset({"authorization", "token", "password", "secret", "api_token", "bearer"})


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in REDACTED_KEYS:
            event[key] = "[redacted]"
    return event


class TerminalLines:
    """A terminal stream shared by log lines and one progress line that never share a line.

    Log output is written through :meth:`write` (what structlog's PrintLogger and the stdlib handler
    call): each complete line first clears the progress line, is written, and the progress line is
    redrawn below it. :meth:`progress` rewrites the progress line in place; :meth:`done` ends it.
    """

    CLEAR = "\r\x1b[2K"

    def __init__(self, stream):
        self.stream = stream
        self.line: str | None = None  # the progress line on screen, if any
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            out = complete + "\n"
            if self.line is not None:
                out = self.CLEAR + out + self.line
            self.stream.write(out)
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def progress(self, line: str) -> None:
        self.line = line
        self.stream.write(self.CLEAR + line)
        self.stream.flush()

    def done(self) -> None:
        """Leave the last progress line on screen and go to the next line."""
        if self.line is not None:
            self.stream.write("\n")
            self.stream.flush()
            self.line = None


def configure(level: str = "INFO", json: bool | None = None, stream=None) -> None:
    """Configure structlog and the stdlib loggers of our dependencies (idempotent)."""
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    if json:
        renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False)
        exc = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        final = [exc, renderer]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=stream.isatty())]

    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *final],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Foreign loggers (gql, aiohttp, apscheduler) go through the same renderer.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # gql logs whole payloads (usager data) at DEBUG; aiohttp.access is noisy.
    # APScheduler's "Running job ..." lines repeat what daemon.job_* events say.
    for name in ("gql.transport.aiohttp", "gql.transport", "aiohttp.access", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
