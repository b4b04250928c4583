"""``whatsgate-exporter healthcheck``: is the exporter on this host answering? For container HEALTHCHECKs.

It asks ``/healthz`` on the loopback address of ``--web.listen-address``, with
https when ``--web.config.file`` serves TLS. Any HTTP answer within the time
limit, 200 or 401 (basic auth is on: the web config holds only password
hashes, so the check cannot log in), proves the server loop is alive. The
certificate is not verified: the check talks to its own container, by
address, and a certificate names a host.
"""

from __future__ import annotations

import http.client
import ssl
import sys

from ..config.webconfig import load_web_config
from ..web.listen import parse_listen_address

TIMEOUT = 4.0  # under the image's HEALTHCHECK --timeout=5s


def check(listen_address: str, web_config_file: str | None) -> int:
    try:
        host, port = parse_listen_address(listen_address)
        tls = load_web_config(web_config_file).context is not None if web_config_file else False
    except ValueError as exc:  # a ConfigError too
        print(f"whatsgate-exporter: healthcheck: {exc}", file=sys.stderr)
        return 1
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    connection: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"whatsgate-exporter: healthcheck: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status in (200, 401):
        return 0
    print(f"whatsgate-exporter: healthcheck: /healthz answered HTTP {status}", file=sys.stderr)
    return 1
