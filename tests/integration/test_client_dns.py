"""The deadline (whatsgate.timeout) against a name lookup that hangs: getaddrinfo has no timeout.

A resolver that does not answer (a black-holed DNS server) held a poll for the resolver's own
timeouts (seconds per server and attempt), past whatsgate.timeout; meanwhile the account kept
its last whatsgate_up. Here getaddrinfo is made to hang for one host name, in this process.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from exporter.simulator import Simulator
from exporter.whatsgate.client import PollError, WhatsGateClient

HANG = 5.0  # far past the client's deadline below
KEY = "dns-test-key-0123456789"


def test_a_name_lookup_that_hangs_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo
    release = threading.Event()

    def lookup(host: object, *args: object, **kwargs: object) -> object:
        if host == "hanging-dns.example":
            release.wait(HANG)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    client = WhatsGateClient("http://hanging-dns.example:9/api/v1", KEY, timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(PollError) as caught:
            client.get_chats("acc-1")
        took = time.monotonic() - started
    finally:
        release.set()
        client.close()
    assert caught.value.reason == "timeout", caught.value.detail
    assert took < HANG / 2, f"the poll took {took:.1f}s with a 1s deadline"


def test_each_address_a_name_has_is_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """As create_connection does: a name whose first address refuses (``localhost`` as ``::1`` to a
    server on 127.0.0.1 only) is reached on the next."""
    simulator = Simulator.generate(accounts=1, chats=3, api_key=KEY)
    url = simulator.start()
    port = int(url.split(":")[2].split("/")[0])
    real = socket.getaddrinfo

    def lookup(host: object, *args: object, **kwargs: object) -> object:
        if host == "two-addresses.example":  # 127.0.0.2 is loopback too, with nothing listening
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("127.0.0.2", "127.0.0.1")
            ]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    client = WhatsGateClient(url.replace("127.0.0.1", "two-addresses.example"), KEY, timeout=5.0)
    try:
        assert len(client.get_chats("bench-00")) == 3
    finally:
        client.close()
        simulator.stop()
