"""The server's gathering write on a real socket pair: partial sends resume mid-piece; a stall times out."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from exporter.web.httpd import _Writer


def pieces() -> list[bytes]:
    # Sizes around the socket buffer, empty ones included: sends stop mid-piece and between.
    return [bytes([i % 251]) * (i * 997 % 20_000) for i in range(300)]


class Counting(socket.socket):
    """A socket that records what each sendmsg sent."""

    sent: list[int]

    def sendmsg(self, buffers, *args):  # type: ignore[no-untyped-def, override]
        n = super().sendmsg(buffers, *args)
        self.sent.append(n)
        return n


def test_partial_sends_resume_where_they_stopped_and_keep_the_order() -> None:
    first, theirs = socket.socketpair()
    ours = Counting(fileno=first.detach())
    ours.sent = []
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # many partial sends
    received = bytearray()
    expected = b"".join(pieces())

    def read() -> None:
        while len(received) < len(expected):
            received.extend(theirs.recv(1000))
            time.sleep(0.0001)

    reader = threading.Thread(target=read)
    reader.start()
    _Writer(ours, timeout=10).writelines(pieces())
    reader.join(10)
    ours.close()
    theirs.close()
    assert bytes(received) == expected
    assert len(ours.sent) > 100  # the resumption is what was tested, not one big send


def test_a_peer_that_stops_reading_times_out_for_the_whole_write() -> None:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _Writer(ours, timeout=0.5).writelines(pieces())
    assert time.monotonic() - started < 1.5
    ours.close()
    theirs.close()
