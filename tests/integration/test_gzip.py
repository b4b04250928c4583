"""/metrics over HTTP with and without gzip, from the exporter as a process against the simulator."""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import KEY, Exporter, accounts, config_for, start_exporter, stop

from exporter.simulator import Simulator


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    sim = Simulator(accounts(), api_key=KEY, dynamic=False)
    sim.start()
    exp = start_exporter(tmp_path, config_for(sim))
    try:
        yield exp
    finally:
        stop(exp.proc)
        sim.stop()


def fetch(exp: Exporter, accept: str | None, method: str = "GET") -> tuple[dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", exp.port, timeout=10)
    conn.request(method, "/metrics", headers={"Accept-Encoding": accept} if accept is not None else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200
    return {k.lower(): v for k, v in response.getheaders()}, body


def series(body: bytes) -> list[bytes]:
    """The exporter's own lines (process_* and python_* change between scrapes)."""
    return [line for line in body.split(b"\n") if b"whatsgate_" in line]


def test_gzip_when_accepted_plain_otherwise(exporter: Exporter) -> None:
    headers, plain = fetch(exporter, None)
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"
    assert b'whatsgate_chat_unread_messages{account="support",chat_id="11@c.us"' in plain

    # Prometheus's header, and a browser's list with q-values.
    for accept in ("gzip", "br;q=1.0, gzip;q=0.8, *;q=0.1"):
        headers, packed = fetch(exporter, accept)
        assert headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept-Encoding"
        assert int(headers["content-length"]) == len(packed)
        assert series(gzip.decompress(packed)) == series(plain)

    for refused in ("gzip;q=0", "identity", "*;q=0"):
        headers, body = fetch(exporter, refused)
        assert "content-encoding" not in headers
        assert series(body) == series(plain)


def test_head_has_the_gzip_headers(exporter: Exporter) -> None:
    headers, body = fetch(exporter, "gzip", method="HEAD")
    assert body == b"" and headers["content-encoding"] == "gzip" and int(headers["content-length"]) > 0
