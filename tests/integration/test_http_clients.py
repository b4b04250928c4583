"""Sessions from http_config against real TLS servers and a real proxy on loopback.

The servers are Python's own HTTP server wrapped in TLS with certificates made
by trustme; each records what arrived (headers, the client certificate, the SNI
name), so the tests check what the other side saw, not what the session holds.
"""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from urllib3.util.retry import Retry

from exporter.config.http import BasicAuth, HttpClientConfig, TlsConfig, parse_http_config
from exporter.config.session import describe_error, new_session

PASSWORD = "SECRET-pass-with-ünïcode"
TOKEN = "SECRET-token-a9f3"


@dataclass
class Seen:
    """What one server received."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


class Server:
    """A loopback HTTP(S) server answering 200 to everything and recording each request."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.seen = Seen()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                seen.requests.append(
                    {
                        "line": self.requestline,
                        "authorization": self.headers.get("Authorization"),
                        "proxy_authorization": self.headers.get("Proxy-Authorization"),
                        "peer": peer,
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed handshakes are what some tests are about

        self.server = Quiet(("127.0.0.1", 0), Handler)
        if context is not None:
            context.sni_callback = lambda sock, name, ctx: seen.sni.append(name)  # type: ignore[assignment]
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path
    ca_obj: trustme.CA


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, other = trustme.CA(), trustme.CA()
    client = ca.issue_cert("agent@example")
    files = Pki(tmp_path / "ca.pem", tmp_path / "other.pem", tmp_path / "c.pem", tmp_path / "c.key", ca)
    ca.cert_pem.write_to_path(str(files.ca))
    other.cert_pem.write_to_path(str(files.other_ca))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files


def tls_server(pki: Pki, *names: str) -> Server:
    """A TLS server with a certificate for ``names``, asking for (not requiring) a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.ca_obj.issue_cert(*names).configure_cert(context)
    pki.ca_obj.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    return Server(context)


@pytest.fixture
def loopback(pki: Pki) -> Iterator[Server]:
    server = tls_server(pki, "127.0.0.1", "localhost")
    yield server
    server.close()


def get(config: HttpClientConfig, url: str) -> requests.Response:
    with new_session(config, "test") as session:
        return session.get(url, timeout=5)


def test_ca_file_is_trusted_and_an_untrusted_ca_fails(loopback: Server, pki: Pki) -> None:
    assert get(HttpClientConfig(tls=TlsConfig(ca_file=str(pki.ca))), loopback.url).status_code == 200
    with pytest.raises(requests.exceptions.SSLError) as info:
        get(HttpClientConfig(tls=TlsConfig(ca_file=str(pki.other_ca))), loopback.url)
    assert describe_error(info.value).startswith("TLS: "), describe_error(info.value)
    with pytest.raises(requests.exceptions.SSLError):  # nor does the system store know trustme's CA
        get(HttpClientConfig(), loopback.url)


def test_ca_file_wins_over_requests_ca_bundle(
    loopback: Server, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain requests lets REQUESTS_CA_BUNDLE replace a session's verify; the config file must win."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca))
    assert get(HttpClientConfig(tls=TlsConfig(ca_file=str(pki.ca))), loopback.url).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):  # the variable still applies when nothing is set
        get(HttpClientConfig(), loopback.url)


def test_insecure_skip_verify(loopback: Server) -> None:
    assert get(HttpClientConfig(tls=TlsConfig(insecure_skip_verify=True)), loopback.url).status_code == 200


def test_client_certificate_is_sent(loopback: Server, pki: Pki) -> None:
    tls = TlsConfig(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    assert get(HttpClientConfig(tls=tls), loopback.url).status_code == 200
    get(HttpClientConfig(tls=TlsConfig(ca_file=str(pki.ca))), loopback.url)
    with_cert, without = loopback.seen.requests
    assert not without["peer"]  # CERT_OPTIONAL: none sent, none verified
    sans = with_cert["peer"]["subjectAltName"]
    assert ("email", "agent@example") in sans, with_cert["peer"]


def test_server_name_is_sent_and_verified_instead_of_the_url_host(pki: Pki) -> None:
    server = tls_server(pki, "alertmanager.internal")  # not valid for 127.0.0.1
    try:
        ca = str(pki.ca)
        with pytest.raises(requests.exceptions.SSLError) as info:
            get(HttpClientConfig(tls=TlsConfig(ca_file=ca)), server.url)
        assert "127.0.0.1" in str(info.value)  # hostname mismatch, not an unknown CA
        config = HttpClientConfig(tls=TlsConfig(ca_file=ca, server_name="alertmanager.internal"))
        assert get(config, server.url).status_code == 200
        assert server.seen.sni[-1] == "alertmanager.internal"
        with pytest.raises(requests.exceptions.SSLError):
            get(HttpClientConfig(tls=TlsConfig(ca_file=ca, server_name="other.internal")), server.url)
    finally:
        server.close()


def test_basic_auth_and_bearer_headers_arrive(loopback: Server, pki: Pki, tmp_path: Path) -> None:
    tls = TlsConfig(ca_file=str(pki.ca))
    get(HttpClientConfig(basic_auth=BasicAuth("ops", PASSWORD), tls=tls), loopback.url)
    (tmp_path / "token").write_text(TOKEN + "\n")
    raw = {"authorization": {"credentials_file": "token"}, "tls_config": {"ca_file": str(pki.ca)}}
    get(parse_http_config(raw, "alertmanager.", tmp_path), loopback.url)
    basic, bearer = (r["authorization"] for r in loopback.seen.requests)
    # RFC 7617 with UTF-8, as the exporter-toolkit and Alertmanager expect.
    assert basic == "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    assert bearer == f"Bearer {TOKEN}"


@pytest.fixture
def plain() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


@pytest.fixture
def proxies() -> Iterator[tuple[Server, Server]]:
    """Two plain HTTP proxies that answer themselves and record the request line (absolute URI)."""
    a, b = Server(), Server()
    yield a, b
    a.close()
    b.close()


def test_proxy_url_is_used_and_wins_over_the_environment(
    plain: Server, proxies: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    configured, from_env = proxies
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", from_env.url)
    monkeypatch.setenv("http_proxy", from_env.url)
    host = configured.url.removeprefix("http://")
    config = parse_http_config({"proxy_url": f"http://agent:{TOKEN}@{host}"}, "whatsgate.", Path("."))
    assert get(config, f"{plain.url}/api/v1/get-chats").status_code == 200
    assert [r["line"] for r in configured.seen.requests] == [f"GET {plain.url}/api/v1/get-chats HTTP/1.1"]
    assert configured.seen.requests[0]["proxy_authorization"] == (
        "Basic " + base64.b64encode(f"agent:{TOKEN}".encode()).decode()
    )
    assert from_env.seen.requests == [] and plain.seen.requests == []

    # Unset, the standard variables keep working, NO_PROXY included.
    assert get(HttpClientConfig(), f"{plain.url}/x").status_code == 200
    assert [r["line"] for r in from_env.seen.requests] == [f"GET {plain.url}/x HTTP/1.1"]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert get(HttpClientConfig(), f"{plain.url}/y").status_code == 200
    assert [r["line"] for r in plain.seen.requests] == ["GET /y HTTP/1.1"]


def test_adapter_settings_pass_through_with_server_name(pki: Pki) -> None:
    """The WhatsGate client hands its retry policy and pool sizes to new_session; TLS still applies."""
    server = tls_server(pki, "gw.internal")
    try:
        tls = TlsConfig(ca_file=str(pki.ca), server_name="gw.internal")
        retry = Retry(total=2, read=False, status_forcelist=(503,))
        with new_session(
            HttpClientConfig(tls=tls), "whatsgate", max_retries=retry, pool_maxsize=4
        ) as session:
            assert session.get(server.url, timeout=5).status_code == 200
            adapter = session.get_adapter(server.url)
            assert adapter.max_retries is retry  # type: ignore[attr-defined]
        assert server.seen.sni == ["gw.internal"]
    finally:
        server.close()
