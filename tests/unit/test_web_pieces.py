"""How a body's chunks become writes (web/writes): handed to the kernel in one writev where the
transport holds nothing unsent, the rest cut into pieces; every byte once, in order."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.web.writes import handed_over, pieces


@given(st.lists(st.binary(max_size=300)), st.integers(min_value=1, max_value=256))
def test_every_byte_once_in_order_and_no_write_past_the_size(chunks: list[bytes], size: int) -> None:
    written = [bytes(p) for p in pieces(chunks, size)]
    assert b"".join(written) == b"".join(chunks)
    assert all(0 < len(p) <= size for p in written)


def _hand_over(chunks: list[bytes], before: bytes = b"") -> tuple[list[bytes], bytes]:
    """handed_over on a real transport (``before`` written through it first) whose peer has read
    nothing yet: what is left, and what the peer then reads."""

    async def run() -> tuple[list[bytes], bytes]:
        ours, theirs = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
        transport.write(before)
        rest = [bytes(chunk) for chunk in handed_over(transport, chunks)]
        theirs.setblocking(False)
        received = b""
        while True:
            try:
                received += theirs.recv(1 << 20)
            except BlockingIOError:
                break
        transport.abort()
        theirs.close()
        return rest, received

    return asyncio.run(run())


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    writev: Callable[..., int] = os.writev

    def counting(fd: int, buffers: Any) -> int:
        calls.append(len(buffers))
        return writev(fd, buffers)

    monkeypatch.setattr(os, "writev", counting)
    return calls


def test_a_body_the_kernel_has_room_for_is_one_system_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a gzip /metrics of 2.8 MB was 11 to 17 writes, each giving up the GIL."""
    calls = _counting(monkeypatch)
    chunks = [bytes([n]) * 1000 for n in range(100)]
    rest, received = _hand_over(chunks)
    assert rest == [] and received == b"".join(chunks)
    assert calls == [100]


def test_what_the_kernel_has_no_room_for_is_left_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    chunks = [bytes([n]) * 100_000 for n in range(50)]  # more than a socket's buffers hold
    rest, received = _hand_over(chunks)
    assert len(calls) == 1 and 0 < len(received) < 5_000_000
    assert received + b"".join(rest) == b"".join(chunks)


def test_nothing_is_handed_over_while_the_transport_holds_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _counting(monkeypatch)
    before = b"x" * 10_000_000  # the transport keeps what the socket does not take
    rest, received = _hand_over([b"a", b"b"], before)
    assert calls == [] and rest == [b"a", b"b"] and before.startswith(received)
