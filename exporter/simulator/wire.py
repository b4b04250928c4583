"""What the simulator sends: whole replies, hand-written streams, and the helpers both share.

Most answers are a ``Reply`` (status, body, content type, extra headers) that the HTTP handler
frames normally. Hostile behaviours need control over every byte and every pause (a body
dripped byte by byte, headers and then silence), so they are a ``Stream``: a function given a
``Wire`` that writes raw bytes, status line included. ``None`` drops the connection unanswered.
"""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

Reply = tuple[int, bytes, str, dict[str, str]]
JSON_TYPE = "application/json; charset=UTF-8"
REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect"}
REASONS |= {308: "Permanent Redirect", 429: "Too Many Requests", 500: "Internal Server Error"}
REASONS |= {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as WhatsGate sends it (non-ASCII characters unescaped)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def error(name: str, message: str, status: int = 500) -> Reply:
    """WhatsGate's error object; it answers most errors with status 500, whatever the cause."""
    return status, json_bytes({"name": name, "message": message, "code": 0}), JSON_TYPE, {}


UNAUTHORIZED = error("Unauthorized", "Your request was made with invalid credentials.")


def head(status: int, headers: dict[str, str]) -> bytes:
    """A status line and headers, written by hand so that hostile values pass unchanged.

    Latin-1 is how ``http.server`` decoded the request's headers, so a key echoed back from
    them goes out as the very bytes that came in.
    """
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Server: WhatsGateSimulator/1.0"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


class Wire:
    """A connection as a stream sees it: raw writes, and waits that end when they should.

    Every wait ends early, returning False, when the simulator stops or the client hangs up,
    so that no hostile reply outlives its audience or delays ``Simulator.stop()``.
    """

    POLL = 0.1  # how often a wait looks for a hung-up client; also bounds stop() latency

    def __init__(self, sock: socket.socket, out: io.BufferedIOBase, stopping: threading.Event) -> None:
        self._sock = sock
        self._out = out
        self.stopping = stopping

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._out.flush()

    def wait(self, seconds: float | None) -> bool:
        """Sleeps ``seconds`` (None: until stopped); False if stopped or the client is gone."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            step = self.POLL if deadline is None else min(self.POLL, deadline - time.monotonic())
            if step <= 0:
                return not self.stopping.is_set()
            if self.stopping.wait(step) or self._client_gone():
                return False

    def _client_gone(self) -> bool:
        """Readable with nothing to read means EOF: the client hung up.

        ``poll`` rather than ``select``: select fails past descriptor 1023, which
        connection-flood tests reach.
        """
        try:
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            if not poller.poll(0):
                return False
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # reset, or closed under us by stop()
            return True


Stream = Callable[[Wire], None]
Answer = Reply | Stream | None
