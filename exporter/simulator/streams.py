"""Hostile delivery: answers that are too slow, never end, never come, or are far too big.

Each turns a normal answer into a ``Stream`` that writes raw bytes on the connection. All of
them wait through ``Wire.wait``, so they end when the client hangs up or the simulator stops,
and none holds a big answer in memory: the gzip bomb and the huge HTML page are generated
block by block as the client reads them.
"""

from __future__ import annotations

import functools
import zlib

from .faults import Fault
from .wire import JSON_TYPE, Reply, Stream, Wire, head

_BLOCK = 1 << 20  # the unit of generated bodies: big enough to be fast, small enough to be cheap
_BOMB_PREFIX = b'{"result":"OK","data":[{"id":"79990000000@c.us","name":"'
_BOMB_SUFFIX = b'","unreadCount":1}]}'
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime, max compression
_HTML_LINE = b"<p>Service temporarily unavailable. Please try again later.</p>\n"


def stream(fault: Fault, reply: Reply) -> Stream:
    """The stream for a fault in ``faults.STREAMS``, delivering ``reply`` (or ignoring it)."""
    status, body, content_type, headers = reply
    framed = head(status, {"Content-Type": content_type, "Content-Length": str(len(body)), **headers})
    params = fault.params
    if fault.name == "drip":
        return functools.partial(_drip, framed, body, fault.delay, params["whole"])
    if fault.name == "headers_then_hang":
        hang_head = head(params["status"], {"Content-Type": content_type, "Content-Length": str(len(body))})
        return functools.partial(_hang, hang_head)
    if fault.name == "chunked_forever":
        return functools.partial(_chunked_forever, fault.delay)
    if fault.name == "silent":
        return _silent
    if fault.name == "gzip_bomb":
        return functools.partial(_gzip_bomb, params["size"])
    if fault.name == "huge_html":
        return functools.partial(_huge_html, params["status"], params["size"])
    raise ValueError(f"{fault.name!r} is not a stream fault")


def _drip(framed_head: bytes, body: bytes, delay: float, whole: bool, wire: Wire) -> None:
    """One byte every ``delay`` seconds: every read succeeds, so only a deadline ends it."""
    if not whole:
        wire.write(framed_head)
    data = framed_head + body if whole else body
    for i in range(len(data)):
        if i and not wire.wait(delay):
            return
        wire.write(data[i : i + 1])


def _hang(framed_head: bytes, wire: Wire) -> None:
    wire.write(framed_head)
    wire.wait(None)


def _silent(wire: Wire) -> None:
    wire.wait(None)


def _chunked_forever(delay: float, wire: Wire) -> None:
    """A JSON answer that never ends, a small chunk at a time (a chat each)."""
    wire.write(head(200, {"Content-Type": JSON_TYPE, "Transfer-Encoding": "chunked"}))
    chunk = b'{"result":"OK","data":['
    n = 0
    while True:
        wire.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if not wire.wait(delay):
            return
        n += 1
        chunk = b'{"id":"7999%07d@c.us","name":"Endless","unreadCount":1},' % (n % 10**7)


@functools.lru_cache(maxsize=8)
def _deflated(data: bytes) -> bytes:
    """Raw deflate of ``data`` after a full flush: the same bytes wherever it lands in a stream.

    A full flush resets the compressor's history, so these pieces can be concatenated in any
    number: that is how an answer inflating a thousandfold costs one compression of one block.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def _gzip_bomb(size: int, wire: Wire) -> None:
    """A gzip answer of about size/1000 bytes that inflates to ``size`` bytes of one JSON chat."""
    filler = max(0, size - len(_BOMB_PREFIX) - len(_BOMB_SUFFIX))
    blocks, rest = divmod(filler, _BLOCK)
    tail = b"A" * rest + _BOMB_SUFFIX
    end = b"\x03\x00"  # an empty final deflate block
    pieces = (_deflated(_BOMB_PREFIX), _deflated(b"A" * _BLOCK), _deflated(tail))
    length = len(_GZIP_HEADER) + len(pieces[0]) + blocks * len(pieces[1]) + len(pieces[2]) + len(end) + 8
    wire.write(
        head(
            200,
            {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip", "Content-Length": str(length)},
        )
        + _GZIP_HEADER
        + pieces[0]
    )
    crc = zlib.crc32(_BOMB_PREFIX)
    block = b"A" * _BLOCK
    for _ in range(blocks):
        if wire.stopping.is_set():
            return
        wire.write(pieces[1])
        crc = zlib.crc32(block, crc)  # computed as sent: only a client that reads it all pays
    crc = zlib.crc32(tail, crc)
    size_field = (len(_BOMB_PREFIX) + blocks * _BLOCK + len(tail)) & 0xFFFFFFFF
    wire.write(pieces[2] + end + crc.to_bytes(4, "little") + size_field.to_bytes(4, "little"))


def _huge_html(status: int, size: int, wire: Wire) -> None:
    """An HTML error page of ``size`` bytes, as a broken proxy might send."""
    block = _HTML_LINE * (_BLOCK // len(_HTML_LINE))
    opening, closing = b"<html><body>\n", b"</body></html>\n"
    middle = max(0, size - len(opening) - len(closing))
    blocks, rest = divmod(middle, len(block))
    length = len(opening) + middle + len(closing)
    wire.write(head(status, {"Content-Type": "text/html", "Content-Length": str(length)}) + opening)
    for _ in range(blocks):
        if wire.stopping.is_set():
            return
        wire.write(block)
    wire.write(block[:rest] + closing)
