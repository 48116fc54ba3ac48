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
from rich.console import Console
from rich.text import Text

REDACTED_KEYS = frozenset({"authorization", "token", "password", "secret", "api_token", "bearer"})


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in REDACTED_KEYS:
            event[key] = "[redacted]"
    return event


class ConsoleLines:
    """A text stream (what structlog's PrintLogger and the stdlib handler write to) that prints each
    complete line through a rich console: while a progress display is live on that console, the line
    goes above it and the display is redrawn below, so a log line and the display never share a line."""

    def __init__(self, console: Console):
        self.console = console
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, _, self._pending = self._pending.partition("\n")
            self.console.print(Text.from_ansi(line), soft_wrap=True, highlight=False, markup=False)
        return len(text)

    def flush(self) -> None:
        self.console.file.flush()

    def isatty(self) -> bool:
        return self.console.is_terminal


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
