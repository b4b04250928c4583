"""How a response body becomes writes: handed to the kernel whole where it has room, the rest in
pieces through the transport, each waiting for the client to take the one before."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator, Sequence

# What a connection holds unsent stays about this small (aiohttp's writer drains past a smaller limit).
PIECE = 256 * 1024
_IOV_MAX = 1024  # buffers one writev takes: POSIX's minimum is 16, Linux and macOS take 1024


def handed_over(transport: asyncio.BaseTransport | None, chunks: list[bytes]) -> Sequence[bytes | memoryview]:
    """What is left of a body after one ``writev`` of it to a plain TCP socket, when the transport holds
    nothing unsent (asyncio's own write tries a send first too): nothing copied, and the GIL given up
    once, not once per write (getting it back while a poll renders takes up to a switch interval)."""
    if (
        not isinstance(transport, asyncio.WriteTransport)
        or transport.is_closing()
        or transport.get_write_buffer_size()
        or transport.get_extra_info("ssl_object") is not None  # TLS: the transport encrypts
        or (sock := transport.get_extra_info("socket")) is None
    ):
        return chunks
    try:
        sent = os.writev(sock.fileno(), chunks[:_IOV_MAX])
    except (BlockingIOError, InterruptedError):
        return chunks
    done = 0
    while done < len(chunks) and sent >= len(chunks[done]):
        sent, done = sent - len(chunks[done]), done + 1
    return [memoryview(chunks[done])[sent:], *chunks[done + 1 :]] if done < len(chunks) else []


def pieces(chunks: Iterable[bytes | memoryview], size: int = PIECE) -> Iterator[memoryview]:
    """Each chunk in writes of at most ``size`` bytes; small ones are not joined (see handed_over)."""
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), size):
            yield view[start : start + size]
