"""Each client connection on the event loop: its deadline, the connection cap, and TLS.

aiohttp parses HTTP/1.1 and answers; :class:`Connection` sits between the
transport and aiohttp's request handler and adds what aiohttp's server leaves to
a proxy in front:

* a deadline for the TLS handshake and the request line and headers together,
  counted from accept for a new connection and from the first byte of the next
  request on a kept-alive one: a client that drips its headers is closed, not
  waited for (aiohttp's only timer is the keep-alive one, two minutes here);
* at most ``max_connections`` open: a newcomer closes a connection whose
  password check waits for bcrypt (the oldest such; a scraper whose password is
  cached never waits), else the one least recently active (connected, or a
  request begun or answered), whatever it is doing: a client that holds a slot
  by never reading is the one to go, and a scraper that just connected is not;
* TLS started per connection with the web config's context of the moment, so
  rotated certificates and client-certificate settings apply without a restart;
  a plain HTTP request to the TLS port gets a 400 saying to use https, as Go's
  servers answer it;
* a client that half-closes once its request is sent (HTTP/1.0 tools do) gets its
  answer, to each request it pipelined before, unless it waits for bcrypt: to the
  server a hang-up reads the same.

Abnormal events are logged one line per episode, with a count (:class:`Episodes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

# Go's net/http answer to plain HTTP on a TLS port, word for word.
PLAIN_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)
_HANDSHAKE = 0x16  # the first byte of every TLS record that starts a handshake


def default_max_connections() -> int:
    """A quarter of the descriptor limit, at most 1024: a connection holds two descriptors while
    it waits for its first byte on the TLS port, and the rest is for WhatsGate sockets and files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1024, soft // 4)) if soft != resource.RLIM_INFINITY else 1024


class Episodes:
    """One log line when a kind of trouble starts, then at most one per ``quiet`` seconds with how
    many happened since the last line: a flood of slow clients is a few lines, not one per client."""

    def __init__(self, quiet: float = 10.0) -> None:
        self.quiet = quiet
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def note(self, event: str, message: str, level: int = logging.INFO, **fields: object) -> None:
        now = time.monotonic()
        count = self._count.get(event, 0) + 1
        if now - self._last.get(event, -self.quiet) < self.quiet:
            self._count[event] = count
            return
        self._last[event], self._count[event] = now, 0
        log.log(level, message, extra={"fields": {**fields, "count": count}})


class AiohttpLog:
    """aiohttp's server logger. What it reports is a client's malformed request (it answers those
    with a 400 itself): one line, counted per episode, never a traceback, never the request's bytes
    (its messages quote them, after the first line)."""

    def __init__(self, episodes: Episodes) -> None:
        self.episodes = episodes

    def exception(self, msg: str, *args: object, exc_info: Any = None, **_: Any) -> None:
        # The exception's kind only: its message may quote the request (an Authorization value).
        err = type(exc_info).__name__ if isinstance(exc_info, BaseException) else "error"
        self.episodes.note("bad_request", "bad request", err=err)

    error = warning = exception

    def debug(self, *args: object, **kwargs: Any) -> None:
        """Premature disconnections and the like: nothing to say."""

    info = debug


class Connection(asyncio.Protocol):
    """One client connection: see the module docstring. ``inner`` is aiohttp's request handler."""

    def __init__(self, pool: Connections, inner: Any) -> None:
        self.pool = pool
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.busy = False  # a request of it is being answered
        self._more = False  # bytes came since a request last began: the next one is in hand, or partly
        self._started = False  # inner has the connection
        self._discard = False  # a plain HTTP request on the TLS port, answered: what follows is dropped
        self.half_closed = False  # by the client, with a request in hand
        self._timer: asyncio.TimerHandle | None = None
        self._peek: socket.socket | None = None
        self._handshaking: asyncio.Task[None] | None = None  # held: the loop keeps only weak references

    # --- asyncio's Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else ""
        self.pool.admit(self)
        self._deadline()
        if self.pool.tls_on():
            transport.pause_reading()  # nothing is read until the first byte says TLS or not
            self._await_first_byte()
        else:
            self._start(transport)

    def data_received(self, data: bytes) -> None:
        if self._discard:
            return
        if not self.busy and self._timer is None:
            self._deadline()  # the first bytes of the next request on a kept-alive connection
        self._more = True  # bytes of a request not begun yet
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.pool.tls_on() or self in self.pool.waiting or not (self.busy or self._more):
            return None  # closed: nothing asked, a hang-up mid-check, or TLS (which cannot half-close)
        self.half_closed = True
        if not self.inner._messages:  # else closed once the requests it queued (pipelined) are answered
            self.inner.close()  # aiohttp's: the request begun (or the next) answered, then closed; no more
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._close_peek()
        self.pool.forget(self)
        if self._started:
            self._started = False
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._started:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._started:
            self.inner.resume_writing()

    # --- requests (from the server's handler) ---------------------------------------------------

    def begin(self) -> None:
        """A request was read whole: its deadline is met; writing has its own."""
        self.busy, self._more = True, False
        self._cancel()
        self.pool.touch(self)

    def end(self) -> None:
        self.busy = False
        self.pool.touch(self)
        if self.half_closed and not self.inner._messages:  # the last of those the client sent
            self.inner.close()
        if self._more:  # the next request's first bytes came meanwhile: its deadline starts now
            self._deadline()

    # --- deadline -------------------------------------------------------------------------------

    def _deadline(self) -> None:
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(self.pool.header_timeout, self._too_slow)

    def _remaining(self) -> float:
        return max(0.001, self._timer.when() - asyncio.get_running_loop().time()) if self._timer else 0.001

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        self.pool.episodes.note("slow", "client too slow: closed", client=self.client)
        self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- TLS ------------------------------------------------------------------------------------

    def _await_first_byte(self) -> None:
        """Wait, without reading it, for the client's first byte: TLS or a plain HTTP request?

        The transport owns its descriptor in the event loop, so a duplicate is watched.
        """
        assert self.transport is not None
        raw = self.transport.get_extra_info("socket")
        self._peek = socket.socket(fileno=os.dup(raw.fileno()))
        asyncio.get_running_loop().add_reader(self._peek.fileno(), self._first_byte)

    def _close_peek(self) -> None:
        if self._peek is not None:
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._peek.fileno())
            self._peek.close()
            self._peek = None

    def _first_byte(self) -> None:
        assert self._peek is not None and self.transport is not None
        try:
            first = self._peek.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing: still watched
        except OSError:
            first = b""
        self._close_peek()
        if not first:
            self.abort()  # gone before saying anything
        elif first[0] != _HANDSHAKE:
            self.pool.episodes.note("plain_on_tls", "plain HTTP request on the TLS port", client=self.client)
            # Answered, then the request read and dropped until the client closes (or the deadline):
            # closed with its request unread, the connection would be reset, the answer with it.
            self._discard = True
            self.transport.write(PLAIN_ON_TLS)
            self.transport.write_eof()
            self.transport.resume_reading()
        else:
            self._handshaking = asyncio.get_running_loop().create_task(self._handshake())

    async def _handshake(self) -> None:
        raw = self.transport
        assert raw is not None
        try:
            context = await self.pool.tls_context()
            tls = await asyncio.get_running_loop().start_tls(
                raw, self, context, server_side=True, ssl_handshake_timeout=self._remaining()
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            err = (exc.reason if isinstance(exc, ssl.SSLError) else None) or str(exc) or type(exc).__name__
            self.pool.episodes.note("tls", "tls handshake failed", client=self.client, err=err)
            raw.abort()
            self.pool.forget(self)  # a failed handshake's end is not passed on to us
            self._cancel()
            return
        if tls is None:  # closed meanwhile
            return
        self._start(tls)

    def _start(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._started = True
        self.inner.connection_made(transport)


class Connections:
    """The protocol factory for the listening socket: every open connection, least recently active first."""

    def __init__(
        self,
        handler: Callable[[], Any],
        tls_on: Callable[[], bool],
        tls_context: Callable[[], Awaitable[ssl.SSLContext]],
        header_timeout: float,
        max_connections: int,
        episodes: Episodes,
    ) -> None:
        self.handler = handler
        self.tls_on = tls_on
        self.tls_context = tls_context
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.episodes = episodes
        self._open: dict[Connection, None] = {}  # insertion order: least recently active first
        self.waiting: dict[Connection, None] = {}  # waiting for bcrypt, oldest first
        self._of: dict[object, Connection] = {}  # aiohttp's handler → its connection

    def __call__(self) -> Connection:
        inner = self.handler()
        conn = Connection(self, inner)
        self._of[inner] = conn
        return conn

    def of(self, inner: object) -> Connection | None:
        return self._of.get(inner)

    def admit(self, conn: Connection) -> None:
        """Count a new connection in, closing the least recently active one when at the cap."""
        if len(self._open) >= self.max_connections > 0:
            victim = next(iter(self.waiting), None) or next(iter(self._open))
            what = f"connection limit reached ({self.max_connections}): closing the least recently active"
            self.episodes.note("full", what, logging.WARNING, client=victim.client)
            self.forget(victim)
            victim.abort()
        self._open[conn] = None

    def touch(self, conn: Connection) -> None:
        """Active just now: the last to be closed for a newcomer."""
        if conn in self._open:
            del self._open[conn]
            self._open[conn] = None

    @contextlib.contextmanager
    def checking(self, conn: Connection | None) -> Iterator[None]:
        """While ``conn``'s password check waits for bcrypt: the first to close for a newcomer."""
        if conn is not None:
            if conn.half_closed:  # or hung up: no bcrypt check for it, as for a client gone
                raise asyncio.CancelledError
            self.waiting[conn] = None
        try:
            yield
        finally:
            if conn is not None:
                self.waiting.pop(conn, None)

    def forget(self, conn: Connection) -> None:
        self._open.pop(conn, None)
        self.waiting.pop(conn, None)
        self._of.pop(conn.inner, None)

    def close_all(self) -> None:
        for conn in list(self._open):
            self.forget(conn)
            conn.abort()
