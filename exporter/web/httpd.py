"""A hardened threaded HTTP/1.1 server on the standard library: bounded threads, connections and time.

``http.server.ThreadingHTTPServer`` gives every connection a thread for as long
as the client keeps it open, listens with a backlog of 5, and spins at 100 %
CPU printing tracebacks once accept() fails with EMFILE. Here instead:

* a fixed pool of worker threads waits together on one ``epoll`` of the *idle*
  connections (a registration each: a file descriptor, no thread). Each
  connection is armed for one event at a time (``EPOLLONESHOT``), so the kernel
  wakes exactly one worker when its next request arrives; that worker answers it
  (plus any the client pipelined) and re-arms the connection itself. Idle
  keep-alive clients cost no thread, and a request reaches its worker with no
  hand-off between threads: Prometheus's scrape, seconds after the last one on a
  kept-alive connection, wakes the thread that answers it and nothing else;
* one loop thread owns the listening socket, admits new connections, and closes
  idle ones past their deadline;
* every read of a request runs against one deadline for the whole request
  line and headers (a slow drip is cut off, not re-armed per byte), the TLS
  handshake included, and writes against their own timeout (slow readers);
* at most ``max_connections`` are open: past it the oldest idle connection is
  closed, and if none is idle the newcomer is closed at once;
* accept() failing for lack of descriptors backs off briefly instead of
  spinning, and frees an idle connection to make room;
* a request's body is read before it is handled, and framing a proxy could read
  otherwise is refused (see ``PooledHandler._body_length``); its header lines are
  parsed as ``http.server`` parses them, the plain ones without the email parser
  (see :mod:`.headers`);
* every abnormal event is one log line through ``logging``, never a traceback.

The stdlib was kept over e.g. cheroot because this needs ~650 lines and no
dependency, and ``ssl`` serves TLS with client certificates as the web config needs.
It runs on Linux only (``epoll``); elsewhere it refuses to start, in one line.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import logging
import math
import resource
import select
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import headers

log = logging.getLogger(__name__)

# Accept errors that mean "out of descriptors or kernel memory": wait for room, do not spin.
_NO_ROOM = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# Errors that describe a client leaving, not a fault of ours: logged at debug.
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
# Buffers per sendmsg: Linux's IOV_MAX (the most a gathering write may take).
_IOV_MAX = 1024
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# An idle connection waits for one event: readable (a request, or the client closing). One-shot,
# so that event wakes one worker and the connection stays silent until that worker re-arms it.
# Linux's epoll only: elsewhere the server refuses to start, in one line (see __init__).
_ARMED = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)
# The names a Date header uses (RFC 9110 section 5.6.7), whatever the locale.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def default_max_connections() -> int:
    """Half the descriptor limit (the rest is for WhatsGate sockets and files), at most 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1024, soft // 2)) if soft != resource.RLIM_INFINITY else 1024


class _DeadlineIO(io.RawIOBase):
    """Reads from a socket against a deadline for the whole request, or without waiting (``poll``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0
        self.poll = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self.poll:
            self.sock.settimeout(0)
            try:
                return self.sock.recv_into(buffer)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None  # nothing buffered: BufferedReader.peek() answers b""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


class _Writer(io.BufferedIOBase):
    """Unbuffered writes with a timeout for the whole write, so a client that never reads is dropped."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)
        return len(data)

    def writelines(self, chunks: Any) -> None:
        """Many byte strings as one write: a gathering ``sendmsg`` on a plain (POSIX) socket.

        A gzip /metrics is a few hundred pieces of several MB in all: joining them would
        hold the body twice per scrape in flight, and writing them one by one would give
        up the GIL per piece (each costing up to a switch interval behind a poll). TLS
        sockets have no sendmsg: they get the pieces joined, in one write.
        """
        if isinstance(self.sock, ssl.SSLSocket):
            self.write(b"".join(chunks))
            return
        views = [memoryview(chunk) for chunk in chunks if chunk]
        deadline = time.monotonic() + self.timeout  # for the whole write, as sendall's timeout is
        first = 0
        while first < len(views):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("response not written in time")
            self.sock.settimeout(remaining)
            sent = self.sock.sendmsg(views[first : first + _IOV_MAX])
            while sent:  # drop what was sent; a partly sent piece goes on from where it stopped
                size = views[first].nbytes
                if sent < size:
                    views[first] = views[first][sent:]
                    break
                sent -= size
                first += 1


class Connection:
    """One client connection and its buffered reader, which lives as long as the connection."""

    def __init__(self, sock: socket.socket, addr: Any, write_timeout: float) -> None:
        self.sock = sock
        self.addr = addr
        self.reader = _DeadlineIO(sock)
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = _Writer(sock, write_timeout)
        self.fd = sock.fileno()
        self.deadline = 0.0  # while idle: when the loop closes it
        self.busy = False  # a worker is answering it (the server's lock guards this)
        self.handshaken = not isinstance(sock, ssl.SSLSocket)
        self.fresh = True  # no request read yet: the first one's deadline runs from accept

    def readable(self) -> bool:
        """Whether a read would not wait: bytes (or the client's close) in the kernel or in TLS."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:  # the raw socket's recv, even under TLS: peeking at bytes, not decrypting them
            socket.socket.recv(self.sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass  # an error: the worker finds it when it reads, and closes the connection
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class PooledHandler(BaseHTTPRequestHandler):
    """A request handler for one request of a :class:`Connection` (not one whole connection)."""

    protocol_version = "HTTP/1.1"
    request: Connection
    raw_requestline: bytes  # set by handle_one_request before parse_request
    body = b""  # the request's body, read by parse_request
    max_body = 65536  # bytes: no endpoint takes a body; a lifecycle POST may carry a small one

    def setup(self) -> None:
        self.connection = self.request.sock
        self.rfile = self.request.rfile
        self.wfile = self.request.wfile

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        """Nothing to close: the connection outlives the request."""

    def parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` (CPython 3.11's, step for step, its error
        answers word for word), with the header block read by :mod:`.headers`, which gives
        the same message at half the cost of http.client's email parser; and, unlike it, the
        request's body read (see :meth:`_body_length`)."""
        self.command = None  # type: ignore[assignment]  # set in case of error on the first line
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:  # enough to determine the protocol version
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                base_version_number = version.split("/", 1)[1]
                parts = base_version_number.split(".")
                # RFC 2145 section 3.1: one ".", integers compared apart, leading zeros ignored.
                if len(parts) != 2 or any(not p.isdigit() or len(p) > 10 for p in parts):
                    raise ValueError
                version_number = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            if version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if version_number >= (2, 0):
                self.send_error(
                    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({base_version_number})"
                )
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        # gh-87389: "//path" is an absolute URI without scheme to clients (an open redirect).
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = headers.parse_headers(self.rfile, self.MessageClass)
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        conntype = self.headers.get("Connection", "").lower()
        if conntype == "close":
            self.close_connection = True
        elif conntype == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        length = self._body_length()
        if length is None:
            return False
        expect = self.headers.get("Expect", "")
        if (
            expect.lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
            and not self.handle_expect_100()
        ):
            return False
        self.body = self.rfile.read(length) if length else b""
        if len(self.body) < length:  # the client closed mid-body: nothing to answer
            self.close_connection = True
            return False
        return True

    def _body_length(self) -> int | None:
        """The request body's length; None once an error is answered (the connection then closes).

        http.server reads no body: one sent with a request was read as the next request on
        the connection (request smuggling, behind a proxy that takes the two as one). Here
        every request's body is read before it is handled (no endpoint uses one: it is
        dropped), and framing that cannot be trusted is refused with the connection closed,
        as RFC 9112 section 6.3 asks: a Transfer-Encoding (no chunked bodies here), a
        Content-Length that is not one string of ASCII digits (repeated identically at
        most), or a body over :attr:`max_body`.
        """
        if self.headers.get("Transfer-Encoding") is not None:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Transfer-Encoding is not supported")
            return None
        values = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not values:
            return 0
        value = values.pop()
        if values or not (value.isascii() and value.isdigit()):
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return None
        if int(value) > self.max_body:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Request body over {self.max_body} bytes")
            return None
        return int(value)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header's text (RFC 9110's IMF-fixdate), made once a second (its resolution).

        Formatted from ``time.gmtime`` rather than by ``email.utils.formatdate``, which goes
        through datetime objects: 0.04 against 0.07 ms on a cold core, as a scrape seconds
        after the last one finds it (and so never the cached text).
        """
        # The second as email.utils.formatdate takes it: through datetime, which rounds to the
        # microsecond first (x.9999996 is the next second), and floors below zero.
        fraction, whole = math.modf(time.time() if timestamp is None else timestamp)
        micro = round(fraction * 1e6)
        now = int(whole) + (1 if micro >= 1_000_000 else -1 if micro < 0 else 0)
        cached = PooledHandler._date  # one read, one assignment: threads share it
        if cached[0] != now:
            t = time.gmtime(now)
            text = f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year:04d} "
            cached = PooledHandler._date = (now, f"{text}{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
        return cached[1]

    _date: tuple[int, str] = (-1, "")

    def log_error(self, format: str, *args: Any) -> None:
        # Timeouts while reading a request, bad request lines: one line, at info.
        log.info(
            "bad or slow request",
            extra={"fields": {"client": self.client_address[0], "detail": format % args}},
        )


class HardenedHTTPServer(socketserver.TCPServer):
    """See the module docstring. ``tls`` returns the SSL context for a new connection (or None)."""

    allow_reuse_address = True  # rebind at once after a restart, as every exporter does
    request_queue_size = socket.SOMAXCONN  # a normal backlog: bursts of connects wait in the kernel, not >1 s
    workers = 16  # threads answering requests; idle connections take none
    header_timeout = 10.0  # TLS handshake + request line + headers, in total
    idle_timeout = 120.0  # keep-alive: above twice the usual scrape interval of 15-60 s
    write_timeout = 30.0  # for the whole response (a /metrics of many MB on a slow link)
    max_connections = default_max_connections()
    tls: Callable[[], ssl.SSLContext | None] | None = None
    server_address: tuple[str, int]

    def __init__(self, address: tuple[str, int], handler: type[PooledHandler]) -> None:
        if not hasattr(select, "epoll"):
            raise OSError(errno.ENOSYS, "this web server needs Linux (epoll)")
        # All before binding: a failed bind calls server_close.
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._ready = select.epoll()  # the idle connections, waited on by every worker
        # Readable (never drained) once the workers must end: level-triggered, so it wakes them all.
        self._quit_r, self._quit_w = socket.socketpair()
        self._ready.register(self._quit_r, select.EPOLLIN)
        super().__init__(address, handler)
        self.socket.setblocking(False)
        # The lock guards every connection's state: idle (in _idle, armed) or busy (one worker's).
        self._lock = threading.Lock()
        self._idle: OrderedDict[Connection, None] = OrderedDict()  # oldest first
        self._by_fd: dict[int, Connection] = {}  # every open connection
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopped = threading.Event()
        self._stopped.set()
        self._episodes: dict[str, int] = {}  # event -> count in the current episode (one log line each)
        self.rejected = 0

    # --- the loop thread: accept, and close what stayed idle too long ---------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        self._threads = [
            threading.Thread(target=self._work, name=f"http-{n}", daemon=True) for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        sel = selectors.DefaultSelector()
        sel.register(self.socket, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        paused_until = 0.0
        tick = min(poll_interval, self.header_timeout / 4, self.idle_timeout / 4)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(tick):
                    if key.data == "listen" and not self._accept():
                        sel.unregister(self.socket)  # out of descriptors: wait, do not spin
                        paused_until = time.monotonic() + 0.1
                now = time.monotonic()
                if paused_until and now >= paused_until:
                    paused_until = 0.0
                    sel.register(self.socket, selectors.EVENT_READ, "listen")
                with self._lock:  # all of them: deadlines of new and kept-alive ones interleave
                    expired = [c for c in self._idle if c.deadline <= now]
                    for conn in expired:
                        self._forget(conn)
                for conn in expired:
                    self._shut(conn)
        finally:
            with contextlib.suppress(OSError):
                self._quit_w.send(b"x")  # every worker ends once it is done with its request
            with self._lock:
                idle = list(self._idle)
                for conn in idle:
                    self._forget(conn)
            for conn in idle:
                self._shut(conn)
            sel.close()
            self._stopped.set()

    def _accept(self) -> bool:
        """Accept what is waiting; False when out of descriptors with nothing idle to free."""
        for _ in range(64):
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                if exc.errno in _NO_ROOM:
                    self._episode("fd_limit", "cannot accept: out of file descriptors; backing off", exc)
                    victim = self._evict()
                    if victim is not None:
                        self._shut(victim)
                        return True
                    return False
                if exc.errno == errno.ECONNABORTED:
                    continue
                self._episode("accept", "accept failed", exc)
                return True
            self._episodes.pop("fd_limit", None)
            with self._lock:
                full = len(self._by_fd) >= self.max_connections
            if full:
                victim = self._evict()  # the oldest idle client makes room
                if victim is not None:
                    self._shut(victim)
                    full = False
            if full:
                self.rejected += 1
                self._episode("full", f"connection limit reached ({self.max_connections}): refusing", None)
                self._refuse(sock)
                continue
            self._episodes.pop("full", None)
            self._admit(sock, addr)
        return True

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        # As Go's servers do: a response's head and body are two writes, and without this
        # Nagle holds a small body until the client's delayed ACK of the head, 40 ms later.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.tls() if self.tls else None
        try:
            if context is not None:
                sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            log.info("tls setup failed", extra={"fields": {"client": addr[0], "err": str(exc)}})
            sock.close()
            return
        conn = Connection(sock, addr, self.write_timeout)
        with self._lock:
            self._by_fd[conn.fd] = conn
            self._idle_until(conn, time.monotonic() + self.header_timeout)  # the first request must come soon
        self._ready.register(conn.fd, _ARMED)

    def _refuse(self, sock: socket.socket) -> None:
        try:
            if self.tls is None or self.tls() is None:
                sock.setblocking(False)
                sock.send(_BUSY)
        except OSError:
            pass
        sock.close()

    # --- a connection's states ------------------------------------------------------------------
    # The lock guards only the state (idle or busy, known or forgotten); the system calls that go
    # with a change (epoll_ctl, close) are made after it is released. Each gives up the GIL, and
    # while polls hold the GIL getting it back takes up to a switch interval: made under the lock,
    # every other worker and the loop would queue behind it (p99 of scrapes during re-polls).

    def _idle_until(self, conn: Connection, deadline: float) -> None:
        """Idle (lock held): closed by the loop at ``deadline``, or taken for its next event."""
        conn.busy = False
        conn.deadline = deadline
        self._idle[conn] = None

    def _rearm(self, conn: Connection) -> None:
        """Arm an idle connection for its next event (lock not held). It may have been closed
        meanwhile (the loop evicting it): then its descriptor is gone, or another connection's,
        which an extra arming leaves as it was (armed, or busy and skipped)."""
        with contextlib.suppress(OSError, ValueError):
            self._ready.modify(conn.fd, _ARMED)

    def _forget(self, conn: Connection) -> None:
        """No longer known (lock held): no worker can take it, the loop no longer closes it."""
        del self._by_fd[conn.fd]
        self._idle.pop(conn, None)

    def _shut(self, conn: Connection) -> None:
        """Close a forgotten connection (lock not held); its descriptor may then be reused."""
        with contextlib.suppress(OSError, ValueError):  # ValueError: the server closed meanwhile
            self._ready.unregister(conn.fd)
        conn.close()

    def _evict(self) -> Connection | None:
        """Forget the oldest idle connection, for the caller to close; None if none is idle."""
        with self._lock:
            victim = next(iter(self._idle), None)
            if victim is not None:
                self._forget(victim)
            return victim

    def _close(self, conn: Connection) -> None:
        with self._lock:
            self._forget(conn)
        self._shut(conn)

    def _episode(self, event: str, message: str, exc: OSError | None) -> None:
        """One log line when a kind of trouble starts; it ends at the next normal accept."""
        count = self._episodes.get(event, 0)
        self._episodes[event] = count + 1
        if count == 0:
            fields: dict[str, object] = {"event": event}
            if exc is not None:
                fields["err"] = exc.strerror or str(exc)
            log.warning(message, extra={"fields": fields})

    # --- worker threads -------------------------------------------------------------------------

    def _work(self) -> None:
        """Wait with the other workers for an idle connection's next request, answer it, repeat."""
        ready, quit_fd = self._ready, self._quit_r.fileno()
        while True:
            try:
                events = ready.poll(-1, 1)  # the kernel wakes one waiting worker per event
            except InterruptedError:
                continue
            except (OSError, ValueError):  # the epoll was closed: the server is gone
                return
            for fd, _ in events:
                if fd == quit_fd:
                    return
                conn = self._take(fd)
                if conn is not None:
                    self._serve(conn)  # catches all but BaseException: the worker lives on

    def _take(self, fd: int) -> Connection | None:
        """The idle connection an event is for, now this worker's; None if it is not to be served."""
        with self._lock:
            conn = self._by_fd.get(fd)
            # None: the loop closed it (its deadline passed) after the kernel woke us.
            # Busy: its descriptor was then reused by a newer connection, and a worker
            # took that one for an event of its own.
            if conn is None or conn.busy:
                return None
            conn.busy = True
            del self._idle[conn]
        if conn.readable():
            return conn
        # Reused and idle: the event was the old connection's, and this one has nothing to read.
        # Taken, it would hold a worker, and be closed at the header deadline while its client
        # did nothing wrong. It stays idle, with its deadline, armed for its own event.
        with self._lock:
            self._idle_until(conn, conn.deadline)
        self._rearm(conn)
        return None

    def _serve(self, conn: Connection) -> None:
        """Answer the request(s) waiting on ``conn``, then arm it again or close it."""
        client = conn.addr[0] if conn.addr else ""
        try:
            # A new connection's handshake and first request share the deadline set at accept;
            # a kept-alive connection's next request has its own, from when its bytes came.
            conn.reader.deadline = conn.deadline if conn.fresh else time.monotonic() + self.header_timeout
            conn.fresh = False
            if not conn.handshaken:
                conn.sock.settimeout(max(0.001, conn.reader.deadline - time.monotonic()))
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                conn.handshaken = True
            while True:
                handler: Any = self.RequestHandlerClass(conn, conn.addr, self)  # type: ignore[arg-type]
                if handler.close_connection or self._stop.is_set():
                    self._close(conn)
                    return
                conn.reader.poll = True
                try:
                    more = conn.rfile.peek(1)  # a pipelined request, already in our buffer?
                finally:
                    conn.reader.poll = False
                if not more:
                    break
                conn.reader.deadline = time.monotonic() + self.header_timeout  # the pipelined one's
        except ssl.SSLError as exc:
            log.info(
                "tls handshake failed", extra={"fields": {"client": client, "err": exc.reason or str(exc)}}
            )
            self._close(conn)
            return
        except TimeoutError:
            log.info("client too slow: closed", extra={"fields": {"client": client}})
            self._close(conn)
            return
        except _GONE as exc:
            log.info(
                "client went away mid-response", extra={"fields": {"client": client, "err": exc.strerror}}
            )
            self._close(conn)
            return
        except Exception as exc:  # one line, never a traceback: the server keeps serving
            log.error(
                "request failed", extra={"fields": {"client": client, "err": f"{type(exc).__name__}: {exc}"}}
            )
            self._close(conn)
            return
        with self._lock:  # stopping is read here: the loop closes what is idle once it has stopped
            stopping = self._stop.is_set()
            if stopping:
                self._forget(conn)
            else:
                self._idle_until(conn, time.monotonic() + self.idle_timeout)
        if stopping:
            self._shut(conn)
        else:
            self._rearm(conn)  # by this worker: no hand-off to the loop

    # --- stopping ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop serve_forever and wait for it (callable from any other thread, as in socketserver)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        self._stop.set()
        super().server_close()
        with contextlib.suppress(OSError):
            self._quit_w.send(b"x")
        for thread in self._threads:  # each ends at once, or after the request it is answering
            thread.join(0.1)
        for sock in (self._wake_r, self._wake_w, self._quit_r, self._quit_w):
            sock.close()
        self._ready.close()
