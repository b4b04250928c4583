"""The HTTP side: /metrics from the store's cached bytes, the status page, health, readiness, discovery.

Served by aiohttp's low-level server from one event loop: a slow or hostile
client costs a coroutine and a buffer, never a thread, so it cannot hold up a
scrape. Handlers never call WhatsGate and never wait for a poll: they read the
store's current snapshot and write bytes rendered when it was published.
:mod:`.connections` bounds connections and time; the optional web config
(:mod:`exporter.config.webconfig`) adds TLS, basic auth on every endpoint (bcrypt on a small
pool of threads, :mod:`.auth`), a rate limit and security headers. The status page is
:mod:`exporter.page.status`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import HttpVersion11, web

from .. import __version__
from ..alerting.evaluator import Alert
from ..config.webconfig import WebConfig
from ..metrics.exposition import Exposition, Plain
from ..page.status import status_page
from ..snapshot.store import Store
from .auth import Gate
from .connections import AiohttpLog, Connection, Connections, Episodes, default_max_connections
from .encoding import accepts_gzip
from .listen import bind, shown, written
from .watcher import WebConfigWatcher
from .writes import handed_over, pieces

log = logging.getLogger(__name__)

# What generate_latest's output is (prometheus-client's own CONTENT_TYPE_LATEST
# moved to version=1.0.0, a format with UTF-8 names this exporter does not use).
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
SERVER = f"whatsgate-exporter/{__version__}"
NO_WEB_CONFIG = Gate.of(WebConfig())
Body = list[bytes] | Plain  # a response's bytes: chunks, or a plain /metrics inflated while written
RELOAD_WAIT = 0.25  # seconds a request waits for a web config reload before going on without it


class _Request(web.BaseRequest):
    """Every answer carries the web config's headers, aiohttp's own (a 400 for bad framing) too."""

    ATTRS = web.BaseRequest.ATTRS | frozenset(["extra", "foreign"])
    extra: tuple[tuple[str, str], ...] = ()
    foreign = False  # a request line of an HTTP version other than 1.x

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        for name, value in self.extra:
            response.headers[name] = value
        response.headers["Server"] = SERVER  # not aiohttp's, which names Python's version
        if type(response) is web.Response and response.status >= 400:
            # aiohttp's own error answer (ours are StreamResponses): its text quotes the request,
            # an Authorization value included. The status says enough.
            text = f"{response.status} {response.reason}\n".encode()
            response.body = text
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
            response.headers["Content-Length"] = str(len(text))


class ExporterServer:
    """Serves the store over HTTP(S) until :meth:`shutdown`; :meth:`serve_forever` runs the loop."""

    header_timeout = 10.0  # TLS handshake + request line + headers, in total
    idle_timeout = 120.0  # keep-alive: above twice the usual scrape interval of 15-60 s
    write_timeout = 30.0  # for the whole response (a /metrics of many MB on a slow link)
    max_connections = default_max_connections()

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        exposition: Exposition,
        telemetry_path: str = "/metrics",
        web_config: WebConfigWatcher | None = None,
    ) -> None:
        self.socket = bind(*address)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.store = store
        self.exposition = exposition
        self.telemetry_path = telemetry_path
        self._paths = {telemetry_path, "/probe", "/sd", "/", "/healthz", "/ready"}  # GET and HEAD
        self.web_config = web_config
        # The alerting agent's alerts for the status page (firing ones are shown); set by cli.
        self.alerts: Callable[[], Sequence[Alert]] = lambda: ()
        # POST /-/reload, set by cli with --web.enable-lifecycle: (ok, message).
        self.reload: Callable[[], tuple[bool, str]] | None = None
        self.episodes = Episodes()
        self.connections: Connections | None = None
        # One bcrypt check at a time: a flood of wrong passwords takes one core at most (the polls
        # keep the others) and waits its turn here, never on the event loop.
        self._auth = ThreadPoolExecutor(1, "bcrypt")
        # Slow work off the event loop, one at a time each: re-reading the web config (which a
        # request may wait for), and the status page or a lifecycle reload (which it must not).
        self._files = ThreadPoolExecutor(1, "web-config")
        self._work = ThreadPoolExecutor(1, "web-work")
        self._reloading: asyncio.Future[Gate] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._done.set()

    # --- addresses ------------------------------------------------------------------------------

    @property
    def external_url(self) -> str:
        """How others reach this server: the host name in place of a wildcard address."""
        return shown(self.scheme, self.server_address, socket.gethostname()) + "/"

    @property
    def url(self) -> str:
        return shown(self.scheme, self.server_address, "localhost")

    @property
    def bound(self) -> str:
        """The address really listened on, as the flag writes it: ``[::]:9877``, ``127.0.0.1:9877``."""
        return written(*self.server_address)

    @property
    def scheme(self) -> str:
        """https when the web config (as at start-up) serves TLS."""
        return "https" if self.web_config is not None and self.web_config.config.context else "http"

    def _current(self) -> Gate:
        return self.web_config.config if self.web_config is not None else NO_WEB_CONFIG

    async def _web(self) -> Gate:
        """The web config, re-read first (off the loop) when its files are due for a look."""
        watcher = self.web_config
        if watcher is None:
            return NO_WEB_CONFIG
        if watcher.due():
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.get_running_loop().run_in_executor(self._files, watcher.get)
            # A reload is usually quick and then applies to this very request; a slow one (a
            # bcrypt hash of a high cost to make) finishes on its own while requests go on.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reloading), RELOAD_WAIT)
        return watcher.config

    async def _tls_context(self) -> ssl.SSLContext:
        context = (await self._web()).context
        if context is None:  # never: the watcher keeps TLS on once it was
            raise ssl.SSLError("TLS is off")
        return context

    # --- running ------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._done.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._done.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        self._loop, self._wake = loop, asyncio.Event()
        if self._stopping.is_set():
            return
        handler = web.Server(
            self._handle,
            request_factory=self._request,
            keepalive_timeout=self.idle_timeout,
            # A client gone mid-request takes its handler with it: a password check still queued
            # for it is dropped, not run for nobody.
            handler_cancellation=True,
            access_log=None,
            logger=AiohttpLog(self.episodes),
            # What a request's headers may hold, read before the header deadline cuts a slow one:
            # aiohttp's defaults (a few times these) let a thousand half-sent requests
            # hold a gigabyte. Prometheus sends a few short headers; a browser, a few dozen.
            max_field_size=4096,
            max_headers=40,
        )
        self.connections = Connections(
            handler,
            lambda: self._current().context is not None,
            self._tls_context,
            self.header_timeout,
            self.max_connections,
            self.episodes,
        )
        # asyncio accepts up to ``backlog`` connections at each wake before any is admitted (and
        # can close another for it): few, so a flood cannot hold descriptors past the cap and
        # hit the descriptor limit, where asyncio stops accepting for a second. The kernel's
        # queue stays long (listen again), so a burst of connects waits there, not in SYN retries.
        server = await loop.create_server(self.connections, sock=self.socket, backlog=16)
        self.socket.listen(socket.SOMAXCONN)
        try:
            await self._wake.wait()
        finally:
            server.close()
            await handler.shutdown(1.0)
            self.connections.close_all()  # those aiohttp does not know yet (in their TLS handshake)
            await asyncio.sleep(0)  # their connection_lost runs, closing what they hold

    def shutdown(self) -> None:
        """Stop serve_forever and wait for it (callable from any other thread)."""
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(wake.set)
        self._done.wait()

    def server_close(self) -> None:
        self._stopping.set()
        self.socket.close()
        for pool in (self._auth, self._files, self._work):
            pool.shutdown(wait=False, cancel_futures=True)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """What asyncio reports (accept out of descriptors, above all): one line an episode."""
        exc = context.get("exception")
        err = (exc.strerror if isinstance(exc, OSError) else None) or str(exc or "")
        self.episodes.note("loop", context.get("message", "event loop error"), logging.WARNING, err=err)

    # --- requests -------------------------------------------------------------------------------

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> _Request:
        # RFC 9112: chunked framing in HTTP/1.0 is faulty: answered, then closed (a proxy may have framed
        # it otherwise); "HTTP/2.0" in an HTTP/1 request line gets a 505 in HTTP/1.1, as from Go's servers.
        foreign = message.version.major != 1
        if foreign or (message.chunked and message.version < HttpVersion11):
            message = message._replace(should_close=True, version=min(message.version, HttpVersion11))
        request = _Request(message, payload, protocol, writer, task, asyncio.get_running_loop())
        request.extra, request.foreign = self._current().headers, foreign
        return request

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = self.connections.of(request.protocol) if self.connections is not None else None
        if conn is not None:
            conn.begin()
        try:
            return await self._answer(request, conn)
        finally:
            if conn is not None:
                conn.end()

    async def _answer(self, request: web.BaseRequest, conn: Connection | None) -> web.StreamResponse:
        config = await self._web()
        if config.rate_limit is not None and not config.rate_limit.allow():
            return await self._send(request, 429, TEXT, [b"Too Many Requests\n"])
        header = request.headers.get("Authorization")
        if header is not None and not header.isascii():
            return await self._send(request, 400, TEXT, [b"Bad Request: Authorization is not ASCII\n"])
        known = config.auth.cached(header)
        if known is None:
            assert self.connections is not None
            with self.connections.checking(conn):
                known = await config.auth.verify(header, self._auth)
        if not known:
            challenge = (("WWW-Authenticate", 'Basic realm="whatsgate-exporter"'),)
            return await self._send(request, 401, TEXT, [b"Unauthorized\n"], headers=challenge)
        path, query = request.rel_url.raw_path, request.rel_url.raw_query_string  # absolute-form too
        if getattr(request, "foreign", False):  # answered in HTTP/1.1 (_request)
            return await self._send(request, 505, TEXT, [b"HTTP Version Not Supported\n"])
        allowed = "POST" if path == "/-/reload" else "GET, HEAD" if path in self._paths else ""
        if not allowed:
            return await self._send(request, 404, TEXT, [b"Not found\n"])
        if request.method not in allowed.split(", "):  # any other: RFC 9110's 405, as client_python's
            no = f"Method Not Allowed: use {allowed}\n".encode()
            return await self._send(request, 405, TEXT, [no], headers=(("Allow", allowed),))
        if path == "/-/reload":
            if self.reload is None:
                return await self._send(request, 403, TEXT, [b"Lifecycle API is not enabled.\n"])
            ok, message = await asyncio.get_running_loop().run_in_executor(self._work, self.reload)
            return await self._send(request, 200 if ok else 500, TEXT, [f"{message}\n".encode()])
        gzip = accepts_gzip(request.headers.get("Accept-Encoding"))
        store, metrics = self.store, self.exposition
        if path == self.telemetry_path:
            accounts = urllib.parse.parse_qs(query).get("accounts", ["true"])[-1]
            if accounts == "false":  # its own metrics alone: the accounts' come through /probe
                return await self._metrics(request, gzip, metrics.own_chunks(gzip))
            if accounts != "true":
                return await self._send(request, 400, TEXT, [b"accounts: expected true or false\n"])
            if metrics.failing:  # what it would serve is older than the snapshots: never as current
                return await self._send(request, 503, TEXT, [b"rendering /metrics failed: see the log\n"])
            # Compressed after publishes, not per scrape: a gzip client gets those bytes as they are.
            return await self._metrics(request, gzip, metrics.gzip_chunks() if gzip else metrics.chunks())
        if path == "/probe":
            target = urllib.parse.parse_qs(query).get("target", [""])[0]
            if target and store.knows(target):
                chunks = metrics.gzip_chunks(target) if gzip else metrics.chunks(target)
                return await self._metrics(request, gzip, chunks)
            reason = "unknown target" if target else "no target given: /probe?target=WHATSAPP_ID"
            return await self._send(request, 404, TEXT, [f"{reason} (see /sd for the accounts)\n".encode()])
        if path == "/sd":
            return await self._send(request, 200, "application/json", [self._targets(request)])
        if path == "/":
            # Rendered off the loop: with many accounts the page takes a while to write.
            page = await asyncio.get_running_loop().run_in_executor(self._work, self._landing)
            return await self._send(request, 200, "text/html; charset=utf-8", [page.encode()])
        if path == "/healthz":
            return await self._send(request, 200, TEXT, [b"OK\n"])
        ready, detail = metrics.ready()  # /ready, the last of _paths: ready once /metrics shows it too
        text = f"{'Ready' if ready else 'Not ready'}: {detail}\n"
        return await self._send(request, 200 if ready else 503, TEXT, [text.encode()])

    async def _metrics(self, request: web.BaseRequest, gzip: bool, chunks: Body) -> web.StreamResponse:
        # Vary: the body depends on Accept-Encoding, so caches must not mix the two.
        headers = ((("Content-Encoding", "gzip"),) if gzip else ()) + (("Vary", "Accept-Encoding"),)
        return await self._send(request, 200, CONTENT_TYPE_TEXT, chunks, headers)

    async def _send(
        self,
        request: web.BaseRequest,
        status: int,
        content_type: str,
        chunks: Body,
        headers: Sequence[tuple[str, str]] = (),
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type, **dict(headers)})
        # A plain /metrics is inflated while it is written (its size is known before): never held whole.
        response.content_length = chunks.size if isinstance(chunks, Plain) else sum(map(len, chunks))
        try:
            await asyncio.wait_for(self._write(request, response, chunks), self.write_timeout)
        except asyncio.TimeoutError:
            self.episodes.note("write", "client too slow to read: closed", client=request.remote or "")
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError as exc:
            self.episodes.note(
                "gone", "client went away mid-response", client=request.remote or "", err=type(exc).__name__
            )
        return response

    @staticmethod
    async def _write(request: web.BaseRequest, response: web.StreamResponse, chunks: Body) -> None:
        await response.prepare(request)
        if request.method != "HEAD":
            # The body may go to the socket beside aiohttp's writer (writes.py): headers first.
            request.writer.send_headers()
            rest = chunks if isinstance(chunks, Plain) else handed_over(request.transport, chunks)
            for piece in pieces(rest):
                await response.write(piece)
        await response.write_eof()

    def _targets(self, request: web.BaseRequest) -> bytes:
        """Prometheus HTTP service discovery: one target group per account, scraped through /probe."""
        host = request.headers.get("Host") or self.url.split("://", 1)[1]
        groups = [
            {
                "targets": [host],
                "labels": {"__metrics_path__": "/probe", "__param_target": whatsapp_id, "account": account},
            }
            for whatsapp_id, account in self.store.accounts()
        ]
        return json.dumps(groups, ensure_ascii=False).encode(errors="replace")  # a Host not UTF-8: "?"

    def _landing(self) -> str:
        return status_page(
            self.store.states(),
            self.alerts(),
            time.time(),
            self.telemetry_path,
            __version__,
            discovery=self.store.discovery,
            stale_after=self.store.stale_after,
        )
