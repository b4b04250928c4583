"""The request header parser gives what http.client.parse_headers gives, for any bytes; the
handler's parse_request ends where http.server's does; the Date header reads as formatdate's.

The standard library is the reference: whatever a client sends, the handler must see
the same fields (or the same exception, or answer) as http.server would.
"""

from __future__ import annotations

import email.utils
import http.client
import http.server
import io
import logging
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.web import headers
from exporter.web.httpd import PooledHandler
from exporter.web.server import Handler

PROMETHEUS = (
    b"Host: 127.0.0.1:9877\r\nUser-Agent: Prometheus/2.42.0\r\n"
    b"Accept: application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
    b"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"
)


def both(block: bytes) -> tuple[object, object]:
    """(ours, http.client's) for a block: the fields in order, or the exception's type and text;
    and what each left unread."""

    def run(parse: object) -> object:
        stream = io.BufferedReader(io.BytesIO(block))
        try:
            message = parse(stream)  # type: ignore[operator]
        except http.client.HTTPException as exc:
            return (type(exc), str(exc), stream.read())
        return (message.items(), stream.read())

    return run(headers.parse_headers), run(http.client.parse_headers)


def test_prometheus_headers_take_the_fast_way_and_match(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args: object) -> http.client.HTTPMessage:
        raise AssertionError("parsed by the email package")

    monkeypatch.setattr(headers, "_slowly", slow)
    ours, theirs = both(PROMETHEUS)
    assert ours == theirs
    message = headers.parse_headers(io.BytesIO(PROMETHEUS))
    assert message.get("accept-encoding") == "gzip" and message.get("Host") == "127.0.0.1:9877"


@pytest.mark.parametrize(
    "block",
    [
        b"X: a\r\n continued\r\n\r\n",  # a continuation line
        b"X:\tvalue with tab\t\r\n\r\n",
        b"X: trailing  \r\n\r\n",
        b"X: a\rb\r\n\r\n",  # a bare CR: the email parser breaks the line there
        b"X: a\x0bb\r\n\r\n",
        b"X: a\x85b\r\n\r\n",
        b"X: caf\xe9\r\n\r\n",
        b"From someone\r\nX: 1\r\n\r\n",
        b"X: 1\r\nFrom someone\r\nY: 2\r\n\r\n",
        b": no name\r\nX: 1\r\n\r\n",
        b"No colon here\r\nX: 1\r\n\r\n",
        b"Bad Name: 1\r\nX: 2\r\n\r\n",
        b"X: 1\nY: 2\n\n",
        b"X: 1\r\nY: 2",  # the stream ends inside the block
        b"X: 1\r\n",
        b"",
        b"X::y\r\nX: again\r\n\r\nbody: not a header\r\n",
        b"X: " + b"a" * 70_000 + b"\r\n\r\n",
        b"".join(b"H%d: v\r\n" % n for n in range(101)) + b"\r\n",
        b"".join(b"H%d: v\r\n" % n for n in range(99)) + b"\r\n",
    ],
)
def test_unusual_blocks_read_as_http_client_reads_them(block: bytes) -> None:
    ours, theirs = both(block)
    assert ours == theirs


LINE_BYTES = st.sampled_from(
    [
        *(b"a", b"Z", b"-", b"0", b":", b": ", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\x0b", b"\x0c"),
        *(b"\x1c", b"\x85", b"\xa0", b"\xe9", b"\x00", b"\x7f", b"From ", b"Host", b";q=0"),
    ]
)
PLAIN_LINE = st.builds(
    lambda name, value: name + b": " + value,
    st.text("abcXYZ-_0", min_size=1, max_size=8).map(str.encode),
    st.text("ab ;=/*.,0", max_size=12).map(str.encode),
)
ANY_LINE = st.lists(LINE_BYTES | st.binary(max_size=3), max_size=12).map(b"".join)


ENDING = st.sampled_from([b"\r\n", b"\n", b"\r", b""])


@settings(max_examples=600, deadline=None)
@given(
    lines=st.lists(st.tuples(PLAIN_LINE | ANY_LINE, ENDING), max_size=8),
    end=st.sampled_from([b"\r\n", b"\n", b"", b"\r\nGET / HTTP/1.1\r\n"]),
)
def test_any_block_reads_as_http_client_reads_it(lines: list[tuple[bytes, bytes]], end: bytes) -> None:
    block = b"".join(line + ending for line, ending in lines) + end
    ours, theirs = both(block)
    assert ours == theirs


@pytest.mark.parametrize("byte", [bytes([n]) for n in range(256)])
def test_every_byte_in_a_name_a_value_or_a_line_of_its_own(byte: bytes) -> None:
    for block in (
        b"X: a" + byte + b"\r\nY: z\r\n\r\n",
        byte + b": v\r\n\r\n",
        b"X" + byte + b"v\r\n\r\n",
        b"H: 1\r\n" + byte + b"\r\n\r\n",
    ):
        ours, theirs = both(block)
        assert ours == theirs, block


class _Quiet:
    """No log lines; one Date, so the two handlers' answers compare byte for byte."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def log_error(self, format: str, *args: object) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Thu, 26 Nov 2026 03:00:00 GMT"


class Stock(_Quiet, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"


class Ours(_Quiet, PooledHandler):
    pass


def parsed(handler_class: type[http.server.BaseHTTPRequestHandler], request: bytes) -> tuple[object, ...]:
    """What parse_request leaves of a request: its result, the request's parts, the fields,
    and the answer it wrote (an error, or 100 Continue)."""
    handler = handler_class.__new__(handler_class)  # no socket: the streams are set by hand
    line, _, rest = request.partition(b"\n")
    handler.raw_requestline = line + b"\n" if _ else line
    handler.rfile = io.BufferedReader(io.BytesIO(rest))
    handler.wfile = io.BytesIO()
    handler.client_address = ("192.0.2.1", 1234)
    handler.request_version = "HTTP/0.9"
    ok = handler.parse_request()
    fields = handler.headers.items() if ok else None
    return (
        ok,
        handler.command,
        getattr(handler, "path", None),
        handler.request_version,
        handler.close_connection,
        fields,
        handler.wfile.getvalue(),
        handler.rfile.read(),
    )


REQUEST_LINES = st.tuples(
    st.sampled_from(["GET", "POST", "HEAD", "BREW", "get", ""]),
    st.sampled_from(["/metrics", "//evil.example/x", "///a", "/probe?target=1", ""]),
    st.sampled_from(
        [
            *("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1.1", "HTTP/01.01", "HTTP/a.b"),
            *("HTTP/1", "FOO/1.1", "HTTP/12345678901.1", "", "HTTP/1.1 extra"),
        ]
    ),
).map(lambda parts: " ".join(p for p in parts if p))
HEADER_LINES = st.sampled_from(
    [
        b"Host: x",
        b"Connection: close",
        b"Connection: Keep-Alive",
        b"connection: CLOSE",
        b"Expect: 100-continue",
        b"Accept-Encoding: gzip",
        b"X: a\rb",
        b" folded",
        b"Bad Name: 1",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    line=REQUEST_LINES,
    fields=st.lists(HEADER_LINES, max_size=5),
    end=st.sampled_from([b"\r\n", b"", b"\r\nGET /next HTTP/1.1\r\n\r\n"]),
)
def test_a_request_is_parsed_as_http_server_parses_it(line: str, fields: list[bytes], end: bytes) -> None:
    """CPython's parse_request is the reference: the same outcome, state and answer bytes."""
    request = line.encode() + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + end
    assert parsed(Ours, request) == parsed(Stock, request)


@pytest.mark.parametrize(
    "request_",
    [
        b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % n for n in range(101)) + b"\r\n",
        b"GET /metrics HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        b"\r\n",
    ],
)
def test_oversized_blocks_and_expect_answer_as_http_server_does(request_: bytes) -> None:
    assert parsed(Ours, request_) == parsed(Stock, request_)


def test_the_date_header_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Made once a second, but never a second late: each new second gives its own text."""
    handler = PooledHandler.__new__(PooledHandler)
    for now in (1_795_000_000.2, 1_795_000_000.9, 1_795_000_001.0, 1_795_003_600.5):
        monkeypatch.setattr(time, "time", lambda now=now: now)
        assert handler.date_time_string() == email.utils.formatdate(now, usegmt=True)
    assert handler.date_time_string(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-(2**31), max_value=2**36, allow_nan=False)
    | st.integers(min_value=-(2**31), max_value=2**36).map(lambda n: n + 0.9999996)
    | st.sampled_from([0.9999995, 1_795_000_000.9999996, math.nextafter(1_795_000_001.0, 0), -0.5])
)
def test_the_date_header_reads_as_email_utils_writes_it(timestamp: float) -> None:
    """Including the last half microsecond of a second, which formatdate rounds up."""
    handler = PooledHandler.__new__(PooledHandler)
    assert handler.date_time_string(timestamp) == email.utils.formatdate(timestamp, usegmt=True)


def test_requests_are_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    handler = Handler.__new__(Handler)
    handler.client_address = ("192.0.2.7", 4321)
    with caplog.at_level(logging.INFO, logger="exporter.web.server"):
        handler.log_message('"%s" %s %s', "GET /metrics HTTP/1.1", "200", "-")
    assert not caplog.records
    with caplog.at_level(logging.DEBUG, logger="exporter.web.server"):
        handler.log_message('"%s" %s %s', "GET /metrics HTTP/1.1", "200", "-")
    [record] = caplog.records
    assert record.fields == {"client": "192.0.2.7", "request": '"GET /metrics HTTP/1.1" 200 -'}  # type: ignore[attr-defined]
