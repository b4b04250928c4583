"""The WhatsGate client against hostile and slow servers: real sockets on loopback.

Each server here is a few lines of raw socket code scripted for one misbehaviour
(drip, hang, endless chunks, gzip bomb, redirect), bounded in lifetime so a
test cannot hang even when the client under test would. Timeouts are short
(1 s), so each test takes about that long.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from exporter.whatsgate.client import PollError, WhatsGateClient

KEY = "hostile-test-key-0123456789"
OK_BODY = b'{"result": "OK", "data": []}'
TIMEOUT = 1.0
ROOT = Path(__file__).resolve().parents[2]


class Conn:
    """One accepted connection, with the request already read, and the server's stop signal."""

    def __init__(self, sock: socket.socket, stop: threading.Event, headers: dict[str, str]) -> None:
        self.sock = sock
        self.stop = stop
        self.headers = headers

    def send(self, data: bytes) -> bool:
        """Send, unless the server is stopping or the client has gone; says whether it was sent."""
        if self.stop.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def wait(self, seconds: float) -> bool:
        """Sleep, but wake at once when the server stops; True while it is still running."""
        return not self.stop.wait(seconds)


Handler = Callable[[Conn], None]


class Server:
    """A loopback HTTP/1.1 server whose every connection runs ``handler``, stopped after ``lifetime``."""

    def __init__(self, handler: Handler, lifetime: float = 8.0, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.lifetime = lifetime
        self.requests: list[dict[str, str]] = []
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/api/v1"
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self) -> None:
        end = time.monotonic() + self.lifetime
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._handle, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()
        self.stop.set()  # also ends the handlers still running

    def _handle(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(2.0)
            data = b""
            try:
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
                while len(body) < int(headers.get("content-length", 0)):
                    body += sock.recv(4096)
            except OSError:
                return
            self.requests.append(headers)
            self.handler(Conn(sock, self.stop, headers))

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(handler: Handler, lifetime: float = 8.0, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(handler, lifetime, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def headers(status: str = "200 OK", **extra: str | int) -> bytes:
    fields = {"Content-Type": "application/json", **{k.replace("_", "-"): str(v) for k, v in extra.items()}}
    return (f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


def timed_failure(url: str, **kwargs: float | int) -> tuple[PollError, float]:
    client = WhatsGateClient(url, KEY, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        with pytest.raises(PollError) as info:
            client.get_chats("acc-1")
    finally:
        client.close()
    return info.value, time.monotonic() - started


# --- hangs: timeout is the deadline of the whole call --------------------------


def drip_body(conn: Conn) -> None:
    if conn.send(headers(Content_Length=len(OK_BODY))):
        for i in range(len(OK_BODY)):
            if not (conn.wait(0.3) and conn.send(OK_BODY[i : i + 1])):
                return


def drip_headers(conn: Conn) -> None:
    for byte in headers(Content_Length=len(OK_BODY)) + OK_BODY:
        if not (conn.wait(0.2) and conn.send(bytes([byte]))):
            return


def headers_then_hang(conn: Conn) -> None:
    if conn.send(headers(Content_Length=1000) + b'{"result": "OK", '):
        conn.wait(60)


def chunked_forever(conn: Conn) -> None:
    if conn.send(headers(Transfer_Encoding="chunked") + b"1\r\n[\r\n"):
        while conn.wait(0.05) and conn.send(b"2\r\n1,\r\n"):
            pass


def silent(conn: Conn) -> None:
    conn.wait(60)


@pytest.mark.timing
@pytest.mark.parametrize(
    ("handler", "detail"),
    [
        (drip_body, "answer not complete within"),
        (drip_headers, "no answer within"),
        (headers_then_hang, "answer not complete within"),
        (chunked_forever, "answer not complete within"),
        (silent, "no answer within"),
    ],
    ids=["drip-body", "drip-headers", "headers-then-hang", "chunked-forever", "silent"],
)
def test_slow_answer_is_a_timeout_within_the_deadline(
    serve: Callable[..., Server], handler: Handler, detail: str
) -> None:
    exc, elapsed = timed_failure(serve(handler).url)
    assert exc.reason == "timeout", exc
    assert elapsed < TIMEOUT + 1
    assert detail in exc.detail and "(whatsgate.timeout is 1s" in exc.detail


@pytest.mark.timing
def test_drip_over_tls_is_a_timeout_within_the_deadline(
    serve: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline reads through TLS sockets too; and a good answer over TLS still succeeds."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    exc, elapsed = timed_failure(serve(drip_body, tls=context).url)
    assert exc.reason == "timeout", exc
    assert elapsed < TIMEOUT + 1

    def answer_ok(conn: Conn) -> None:
        conn.send(headers(Content_Length=len(OK_BODY)) + OK_BODY)

    client = WhatsGateClient(serve(answer_ok, tls=context).url, KEY, timeout=TIMEOUT)
    try:
        assert client.get_chats("acc-1") == []
    finally:
        client.close()


@pytest.mark.timing
def test_connect_timeout_respects_the_deadline_and_says_so() -> None:
    """A listener whose accept queue is full drops SYNs: connect() hangs, like a black-holed host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        exc, elapsed = timed_failure(f"http://127.0.0.1:{port}/api/v1")
    finally:
        for s in [*fillers, listener]:
            s.close()
    assert exc.reason == "timeout"
    assert elapsed < TIMEOUT + 1  # was 3 attempts and a back-off: over 3 s
    assert "could not connect within 1." in exc.detail
    assert "(whatsgate.timeout is 1s)" in exc.detail


def test_a_quick_answer_on_a_kept_alive_connection_still_succeeds(serve: Callable[..., Server]) -> None:
    """The deadline machinery must not break the ordinary case, nor connection reuse."""

    def ok(conn: Conn) -> None:
        while conn.send(headers(Content_Length=len(OK_BODY)) + OK_BODY):
            try:
                if not conn.sock.recv(65536):
                    return
            except OSError:
                return

    server = serve(ok)
    client = WhatsGateClient(server.url, KEY, timeout=TIMEOUT)
    try:
        for _ in range(3):
            assert client.get_chats("acc-1") == []
            time.sleep(0.1)
    finally:
        client.close()


# --- memory: bounded answers -----------------------------------------------------


def gzip_bomb(copies: int = 128) -> tuple[bytes, int]:
    """A ~2 MB gzip body that inflates to ~2 GiB of zeros, and that size.

    Compressing 2 GiB takes seconds; but zlib's output for a long run of zeros is
    periodic, so three compressed blocks are made and the third repeated.
    """
    zeros = bytes(16 << 20)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    first, second, period = (deflate.compress(zeros) for _ in range(3))
    tail = deflate.flush()
    per_period = len(zlib.decompress(first + second + period * 2 + tail, -15)) - 3 * len(zeros)
    size = 3 * len(zeros) + (copies - 3) * per_period
    crc = 0
    for start in range(0, size, len(zeros)):
        crc = zlib.crc32(zeros[: min(len(zeros), size - start)], crc)
    body = first + second + period * (copies - 2) + tail
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, no time
    return header + body + struct.pack("<II", crc, size & 0xFFFFFFFF), size


_BOMB_PROBE = """
import inspect, json, sys
import trustme

from exporter.whatsgate.client import PollError, WhatsGateClient

def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

kwargs = {"max_response_size": 16 << 20}
if "max_response_size" not in inspect.signature(WhatsGateClient).parameters:
    kwargs = {}  # the old client: shows what the bomb does without a bound
client = WhatsGateClient(sys.argv[1], "k" * 16, timeout=30, **kwargs)
before = peak_kib()
try:
    client.get_chats("acc-1")
    result = {"reason": None, "detail": "accepted"}
except PollError as exc:
    result = {"reason": exc.reason, "detail": exc.detail}
result["growth_mib"] = (peak_kib() - before) / 1024
print(json.dumps(result))
"""


@pytest.mark.timing
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for peak RSS")
def test_gzip_bomb_is_refused_with_memory_bounded(serve: Callable[..., Server]) -> None:
    bomb, inflated = gzip_bomb()
    assert len(bomb) < 3_000_000 and inflated > 2_000_000_000

    def send_bomb(conn: Conn) -> None:
        conn.send(headers(Content_Length=len(bomb), Content_Encoding="gzip") + bomb)

    server = serve(send_bomb, lifetime=60)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", _BOMB_PROBE, server.url], capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["reason"] == "invalid_response", result
    assert result["detail"] == "get-chats: answer larger than max_response_size (16 MiB)"
    assert result["growth_mib"] < 100, result
    print(f"peak RSS growth {result['growth_mib']:.1f} MiB")


def test_error_answer_is_read_only_up_to_a_small_bound(serve: Callable[..., Server]) -> None:
    """A 500 whose endless HTML body would be read whole: only its start is, then the call ends."""

    def endless_error(conn: Conn) -> None:
        if conn.send(headers("500 Internal Server Error", Content_Type="text/html", Content_Length=10**10)):
            block = b"<p>" * 100_000
            while conn.send(block):
                pass

    exc, _ = timed_failure(serve(endless_error).url)
    assert exc.reason == "http_status"
    assert exc.detail == "get-chats: HTTP 500 (text/html)"


# --- secrets: no redirects -----------------------------------------------------------


@pytest.mark.parametrize("status", ["302 Found", "307 Temporary Redirect", "308 Permanent Redirect"])
def test_redirect_to_another_host_is_not_followed(serve: Callable[..., Server], status: str) -> None:
    def answer_ok(conn: Conn) -> None:
        conn.send(headers(Content_Length=len(OK_BODY)) + OK_BODY)

    elsewhere = serve(answer_ok)
    location = elsewhere.url.replace("127.0.0.1", "localhost") + "/get-chats?stolen=1"

    def redirect(conn: Conn) -> None:
        conn.send(headers(status, Location=location, Content_Length=0))

    exc, _ = timed_failure(serve(redirect).url)
    time.sleep(0.2)  # had the client followed, the other host would have been reached by now
    assert elsewhere.requests == []  # no request at all, so no X-Api-Key either
    assert exc.reason == "http_status"
    code = status.split()[0]
    assert exc.detail == f"get-chats: HTTP {code} redirect (not followed)"
    assert "localhost" not in exc.detail and "stolen" not in exc.detail


# --- issue 21, 8: say what happened ------------------------------------------------


def test_a_drip_timeout_counts_the_bytes_that_arrived(serve: Callable[..., Server]) -> None:
    # The body drips a byte at a time: the read waiting for more holds them when the deadline
    # strikes, and the client used to report only what that read had returned: 0 bytes.
    exc, _ = timed_failure(serve(drip_body).url)
    assert exc.reason == "timeout", exc
    match = re.search(r"\((\d+) bytes received\)", exc.detail)
    assert match is not None, exc.detail
    assert int(match.group(1)) >= 1, exc.detail


def test_a_304_is_not_called_a_redirect(serve: Callable[..., Server]) -> None:
    exc, _ = timed_failure(serve(lambda conn: conn.send(b"HTTP/1.1 304 Not Modified\r\n\r\n")).url)
    assert exc.reason == "http_status"
    assert exc.detail == "get-chats: HTTP 304 not modified (never asked for)"


def http2_status_line(conn: Conn) -> None:
    conn.send(b"HTTP/2 200\r\ncontent-type: application/json\r\n\r\n" + OK_BODY)


def many_headers(conn: Conn) -> None:
    fields = b"".join(b"X-Filler-%d: 1\r\n" % i for i in range(150))
    conn.send(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY)


def long_header_line(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n" + OK_BODY)


def long_status_line(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 " + KEY.encode() + b"a" * 70_000 + b"\r\n\r\n" + OK_BODY)


@pytest.mark.parametrize(
    ("handler", "detail"),
    [
        (
            http2_status_line,
            "get-chats: not an HTTP/1.x answer (unknown protocol in the status line, e.g. HTTP/2)",
        ),
        (many_headers, "get-chats: more than 100 headers"),
        (long_header_line, "get-chats: header line longer than 65536 bytes"),
        (long_status_line, "get-chats: status line longer than 65536 bytes"),
    ],
    ids=["http2", "over-100-headers", "long-header-line", "long-status-line"],
)
def test_a_broken_http_answer_says_what_broke(
    serve: Callable[..., Server], handler: Handler, detail: str
) -> None:
    # These used to be a bare "ConnectionError".
    exc, _ = timed_failure(serve(handler).url)
    assert exc.reason == "connection"
    assert exc.detail == detail
