"""The systemd notify protocol with the standard library (sd_notify(3), docs/operations.md §1.5).

``$NOTIFY_SOCKET`` names a unix datagram socket; a leading ``@`` is the abstract namespace (a NUL
byte). Without the variable every call is a no-op, so CLI runs and tests need nothing. The watchdog
interval comes from ``$WATCHDOG_USEC`` (only for us when ``$WATCHDOG_PID`` is unset or our pid).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from connector.logs import get_logger

log = get_logger(__name__)


class Notifier:
    """``send("READY=1")``; ``watchdog_interval`` is half of ``WATCHDOG_USEC`` in seconds, or None."""

    def __init__(self, environ: Mapping[str, str] = os.environ):
        self.address: str | bytes | None = None
        address = environ.get("NOTIFY_SOCKET") or None
        if address is not None:
            if address.startswith("@"):
                self.address = b"\0" + address[1:].encode()
            elif address.startswith("/"):
                self.address = address
            else:
                log.warning("notify.bad_socket", hint="NOTIFY_SOCKET must be a path or start with @")
        self.watchdog_interval: float | None = None
        usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
        if usec and (not pid or pid == str(os.getpid())):
            try:
                if int(usec) > 0:
                    self.watchdog_interval = int(usec) / 2 / 1_000_000
            except ValueError:
                log.warning("notify.bad_watchdog_usec", value=usec)
        self._socket: socket.socket | None = None
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of newline-separated ``KEY=value`` fields; False if it could not go."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.connect(self.address)
            self._socket.sendall(message)
            return True
        except OSError as exc:
            self.close()
            self.failures += 1
            if self.failures <= 3:  # systemd gone or restarting: say it, do not flood the journal
                log.warning("notify.send_failed", error=exc.strerror or str(exc))
            return False

    def status(self, text: str) -> bool:
        return self.send("STATUS=" + text.replace("\n", " "))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
