"""The HTTP side: /metrics from the store's cached bytes, a landing page, health and readiness.

Handlers never call WhatsGate and never wait for a poll: they read the
store's current snapshot and answer at once.
"""

from __future__ import annotations

import errno
import html
import logging
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .. import __version__
from ..metrics.store import Store
from .encoding import accepts_gzip

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


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    # Reuse the port at once after a restart, as every exporter does.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        telemetry_path: str = "/metrics",
        landing_extra: Callable[[], str] | None = None,
    ) -> None:
        host, port = address
        self.store = store
        self.telemetry_path = telemetry_path
        self.landing_extra = landing_extra
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
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = f"whatsgate-exporter/{__version__}"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == self.server.telemetry_path:
            # The body was compressed once per poll: a gzip client gets those members as they are.
            gzip = accepts_gzip(self.headers.get("Accept-Encoding"))
            store = self.server.store
            chunks = store.gzip_chunks() if gzip else store.chunks()
            self._send(200, CONTENT_TYPE_TEXT, chunks, encoding="gzip" if gzip else None, vary=True)
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
        self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        self.end_headers()
        if self.command != "HEAD":
            # One write for a compressed body (a few MB): each write gives up the GIL, and
            # getting it back behind a poll's rendering costs up to a switch interval (5 ms).
            self.wfile.writelines([b"".join(chunks)] if encoding else chunks)

    def _landing(self) -> str:
        rows = []
        now = time.time()
        for state in sorted(self.server.store.states(), key=lambda s: s.account.name):
            age = f"{now - state.last_success:.0f}s ago" if state.last_success else "never"
            rows.append(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                    html.escape(state.account.name),
                    html.escape(state.account.whatsapp_id),
                    "up" if state.up else "<b>down</b>",
                    age,
                    html.escape(state.last_error or "") if not state.up else "",
                )
            )
        metrics = html.escape(self.server.telemetry_path)
        extra = self.server.landing_extra() if self.server.landing_extra else ""
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>WhatsGate Exporter</title></head>
<body>
<h1>WhatsGate Exporter</h1>
<p>Version {html.escape(__version__)}. Prometheus exporter for WhatsApp accounts on the WhatsGate gateway.</p>
<ul>
<li><a href="{metrics}">Metrics</a></li>
<li><a href="/healthz">Health</a></li>
<li><a href="/ready">Readiness</a></li>
</ul>
{extra}
<h2>Accounts</h2>
<table border="1" cellpadding="4">
<tr><th>Account</th><th>WhatsApp ID</th><th>Last poll</th><th>Last success</th><th>Last error</th></tr>
{"".join(rows) or '<tr><td colspan="5">No poll has finished yet.</td></tr>'}
</table>
</body></html>
"""

    def log_message(self, format: str, *args: object) -> None:
        log.debug(
            "http request", extra={"fields": {"client": self.client_address[0], "request": format % args}}
        )
