"""The HTTP side: /metrics from the store's cached bytes, a landing page, health and readiness.

Handlers never call WhatsGate and never wait for a poll: they read the
store's current snapshot and answer at once. The server underneath
(:mod:`.httpd`) bounds threads, connections and time; the optional web config
(:mod:`.webconfig`) adds TLS, basic auth on every endpoint and security headers.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable, Sequence

from .. import __version__
from ..alerting.evaluator import Alert
from ..metrics.store import Store
from . import pages
from .encoding import accepts_gzip
from .httpd import HardenedHTTPServer, PooledHandler
from .watcher import WebConfigWatcher
from .webconfig import WebConfig

log = logging.getLogger(__name__)

# What generate_latest's output is (prometheus-client's own CONTENT_TYPE_LATEST
# moved to version=1.0.0, a format with UTF-8 names this exporter does not use).
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def parse_listen_address(address: str) -> tuple[str, int]:
    """``:9877``, ``0.0.0.0:9877``, ``[::1]:9877`` or ``localhost:9877`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {address!r}: expected [HOST]:PORT, e.g. ':9877'")
    return host.strip("[]"), int(port)


class ExporterServer(HardenedHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        telemetry_path: str = "/metrics",
        landing_extra: Callable[[], str] | None = None,
        web_config: WebConfigWatcher | None = None,
    ) -> None:
        host, port = address
        self.store = store
        self.telemetry_path = telemetry_path
        self.landing_extra = landing_extra
        self.web_config = web_config
        if web_config is not None:
            self.tls = lambda: web_config.get().context
        # The alerting agent's alerts for the status page (firing ones are shown); set by cli.
        self.alerts: Callable[[], Sequence[Alert]] = lambda: ()
        # POST /-/reload, set by cli with --web.enable-lifecycle: (ok, message).
        self.reload: Callable[[], tuple[bool, str]] | None = None
        if ":" in host or host == "":
            # An empty host means every interface: IPv6 and IPv4 alike where the host has IPv6.
            self.address_family = socket.AF_INET6
            try:
                super().__init__((host or "::", port), Handler)
                return
            except OSError as exc:
                # IPv6 compiled in but disabled on this host (common in containers).
                if host or exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
            self.address_family = socket.AF_INET
            address = ("0.0.0.0", port)
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # Dual stack: "[::]:9877" also accepts IPv4 clients.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    @property
    def external_url(self) -> str:
        """How others reach this server: the host name in place of a wildcard address."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"{self.scheme}://{f'[{host}]' if ':' in host else host}:{port}/"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"{self.scheme}://{shown}:{port}"

    @property
    def scheme(self) -> str:
        """https when the web config (as at start-up) serves TLS."""
        return "https" if self.web_config is not None and self.web_config.config.context else "http"

    def current_web_config(self) -> WebConfig:
        return self.web_config.get() if self.web_config is not None else NO_WEB_CONFIG


NO_WEB_CONFIG = WebConfig()


class Handler(PooledHandler):
    server: ExporterServer
    server_version = f"whatsgate-exporter/{__version__}"
    protocol_version = "HTTP/1.1"
    web: WebConfig = NO_WEB_CONFIG

    def end_headers(self) -> None:
        for name, value in self.web.headers:  # on every answer, errors and 401 included
            self.send_header(name, value)
        super().end_headers()

    def _authorized(self) -> bool:
        """Every endpoint is protected, /healthz and /ready too, as in the exporter-toolkit."""
        self.web = self.server.current_web_config()
        if self.web.auth.check(self.headers.get("Authorization")):
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="whatsgate-exporter"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", "13")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"Unauthorized\n")
        return False

    def do_POST(self) -> None:
        if not self._authorized():  # the body, if any, was read (and is not used): see PooledHandler
            return
        if self.path.split("?", 1)[0] != "/-/reload":
            self._send(404, "text/plain; charset=utf-8", [b"Not found\n"])
        elif self.server.reload is None:
            self._send(403, "text/plain; charset=utf-8", [b"Lifecycle API is not enabled.\n"])
        else:
            ok, message = self.server.reload()
            self._send(200 if ok else 500, "text/plain; charset=utf-8", [f"{message}\n".encode()])

    def do_GET(self) -> None:
        if not self._authorized():
            return
        path, _, query = self.path.partition("?")
        if path == self.server.telemetry_path:
            # The body was compressed once per poll: a gzip client gets those members as they are.
            gzip = accepts_gzip(self.headers.get("Accept-Encoding"))
            store = self.server.store
            chunks = store.gzip_chunks() if gzip else store.chunks()
            self._send(200, CONTENT_TYPE_TEXT, chunks, encoding="gzip" if gzip else None, vary=True)
        elif path == "/probe":
            self._probe(urllib.parse.parse_qs(query).get("target", [""])[0])
        elif path == "/sd":
            self._send(200, "application/json", [self._targets()])
        elif path == "/-/reload":
            self._send(405, "text/plain; charset=utf-8", [b"Only POST requests allowed.\n"])
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", [self._landing().encode()])
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", [b"OK\n"])
        elif path == "/ready":
            ready, detail = self.server.store.ready()
            text = f"{'Ready' if ready else 'Not ready'}: {detail}\n"
            self._send(200 if ready else 503, "text/plain; charset=utf-8", [text.encode()])
        else:
            self._send(404, "text/plain; charset=utf-8", [b"Not found\n"])

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(
        self,
        status: int,
        content_type: str,
        chunks: list[bytes],
        encoding: str | None = None,
        vary: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        if vary:  # the body depends on Accept-Encoding: caches must not mix the two
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(sum(map(len, chunks))))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.writelines(chunks)  # one gathering write (see httpd._Writer.writelines)

    def _probe(self, target: str) -> None:
        """One account's cached metrics (the multi-target pattern); no API call is made."""
        store = self.server.store
        if not target or not store.knows(target):
            reason = "no target given: /probe?target=WHATSAPP_ID" if not target else "unknown target"
            self._send(404, "text/plain; charset=utf-8", [f"{reason} (see /sd for the accounts)\n".encode()])
            return
        gzip = accepts_gzip(self.headers.get("Accept-Encoding"))
        chunks = store.gzip_chunks(target) if gzip else store.chunks(target)
        self._send(200, CONTENT_TYPE_TEXT, chunks, encoding="gzip" if gzip else None, vary=True)

    def _targets(self) -> bytes:
        """Prometheus HTTP service discovery: one target group per account, scraped through /probe."""
        host = self.headers.get("Host") or self.server.url.split("://", 1)[1]
        groups = [
            {
                "targets": [host],
                "labels": {"__metrics_path__": "/probe", "__param_target": whatsapp_id, "account": account},
            }
            for whatsapp_id, account in self.server.store.accounts()
        ]
        return json.dumps(groups, ensure_ascii=False).encode()

    def _landing(self) -> str:
        server = self.server
        return pages.status_page(
            server.store.states(),
            server.alerts(),
            time.time(),
            server.telemetry_path,
            __version__,
            discovery=server.store.discovery,
            stale_after=server.store.stale_after,
            extra_html=server.landing_extra() if server.landing_extra else "",
        )

    def log_message(self, format: str, *args: object) -> None:
        if not log.isEnabledFor(logging.DEBUG):  # every request passes here: not even the format
            return
        log.debug(
            "http request", extra={"fields": {"client": self.client_address[0], "request": format % args}}
        )
