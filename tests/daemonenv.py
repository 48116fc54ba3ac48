"""Helpers for the daemon tests: a notify socket the test binds, and ``ds-connector daemon`` as a child.

``NotifySocket`` is what systemd would be: a unix datagram socket (a path, or an abstract ``@name``)
whose messages are collected by a thread. ``DaemonProcess`` runs the real command with
``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC``) set and reads its JSON log lines as they come.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class NotifySocket:
    def __init__(self, path: Path | None = None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:  # abstract namespace: "@name" for the child, "\0name" here
            name = f"ds-connector-test-{secrets.token_hex(6)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            for field in data.decode().split("\n"):
                self.messages.append((time.monotonic(), field))

    def fields(self, prefix: str = "") -> list[str]:
        return [m for _, m in list(self.messages) if m.startswith(prefix)]

    def wait_for(self, predicate, timeout: float = 60) -> str:
        """The first message for which ``predicate(message)`` holds (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            current = list(self.messages)
            for _, m in current[seen:]:
                if predicate(m):
                    return m
            seen = len(current)
            time.sleep(0.05)
        raise AssertionError(f"no matching notify message in {timeout} s; got {self.fields()}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DS_API_TOKEN", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(extra)
    return env


class DaemonProcess:
    """``ds-connector daemon --config PATH`` as a child; ``lines`` are its parsed JSON log lines."""

    def __init__(self, config_path: Path, *args: str, notify: NotifySocket | None = None,
                 watchdog_usec: int | None = None, interval_seconds: float | None = 2.0):
        extra = {}
        if notify is not None:
            extra["NOTIFY_SOCKET"] = notify.address
        if watchdog_usec is not None:
            extra["WATCHDOG_USEC"] = str(watchdog_usec)
        command = [sys.executable, "-m", "connector.cli", "daemon", "--config", str(config_path), *args]
        if interval_seconds is not None:
            command += ["--interval-seconds", str(interval_seconds)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(**extra))
        self.lines: list[dict[str, Any]] = []
        self.raw_stdout: list[str] = []
        self.stderr = ""
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:  # type: ignore[union-attr]
            text = raw.decode(errors="replace")
            self.raw_stdout.append(text)
            try:
                line = json.loads(text)
            except ValueError:
                line = {"event": "<not json>", "text": text}
            self.lines.append(line)

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line.get("event") == name]

    def wait_event(self, name: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                self._reader.join(2)
                found = self.events(name)
                if len(found) >= count:
                    return found
                raise AssertionError(f"the daemon exited {self.proc.returncode} before {count} {name}; "
                                     f"stderr: {self.stderr[-2000:]}; events: {[x.get('event') for x in self.lines]}")
            time.sleep(0.05)
        raise AssertionError(f"{count} {name} not seen in {timeout} s; events: {[x.get('event') for x in self.lines]}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        self._err_reader.join(5)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait(10)
