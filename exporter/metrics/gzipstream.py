"""One gzip member stitched at scrape time from pieces deflated at different polls.

Why one member: RFC 1952 lets a gzip stream hold many members, and Go's reader
(Prometheus) reads them all, but common Python clients do not: httpx and
aiohttp keep only the first member, and urllib3 2.6 to 2.8 (what requests
uses) silently truncates or repeats text when a member ends on one of its read
boundaries (urllib3's GzipDecoder with ``max_length``). A /metrics body sent as
several members was read short by ``requests.get`` in this project's own CI.

How: each piece is raw deflate ended by a sync flush, an empty stored block
that is byte-aligned and not final, so pieces deflated independently
concatenate into one valid deflate stream; an empty final block ends it. The
trailer needs the CRC-32 of the whole text, which is combined from the pieces'
CRCs with ``crc32_combine`` (isal's; Python's zlib does not expose zlib's, so
the fallback computes it as zlib does: continuing a CRC over ``n`` more bytes
multiplies it by x^(8n) modulo the CRC polynomial).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from operator import attrgetter
from types import ModuleType
from typing import cast

_DEFLATE: ModuleType
try:
    # ISA-L's deflate (python-isal): at level 1, several times zlib's speed with slightly smaller
    # output, and a much faster CRC-32 (bench/RESULTS.md). What it writes is plain deflate.
    from isal import isal_zlib as _DEFLATE
except ImportError:  # pragma: no cover - a platform without isal's wheels: the standard library
    _DEFLATE = zlib

# Deflate, no flags, no modification time, no extra flags, OS "unknown" (RFC 1952 section 2.3).
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block with fixed codes: what zlib writes to finish an empty stream.
FINAL_BLOCK = b"\x03\x00"

_POLY = 0xEDB88320  # CRC-32 (IEEE), reflected
_X0 = 1 << 31  # the polynomial 1 in the reflected representation


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial (zlib's multmodp)."""
    m = _X0
    p = 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> tuple[int, ...]:
    """x^(2^k) modulo the polynomial, for k = 0..31 (zlib's x2n_table)."""
    p = _X0 >> 1  # x^1
    table = [p]
    for _ in range(31):
        p = _multmodp(p, p)
        table.append(p)
    return tuple(table)


_X2N = _powers()


def _shift_factor(length: int) -> int:
    """x^(8 * length) modulo the polynomial: what continuing a CRC over ``length`` bytes multiplies it by."""
    p = _X0
    k = 3  # 8 bits per byte: x^(2^3 * length)
    while length:
        if length & 1:
            p = _multmodp(_X2N[k & 31], p)
        length >>= 1
        k += 1
    return p


def crc_combine(crc: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from A's CRC, B's CRC and B's length (zlib's ``crc32_combine``)."""
    if _DEFLATE is not zlib:
        combined: int = _DEFLATE.crc32_combine(crc, crc2, length2)
        return combined
    return _multmodp(_shift_factor(length2), crc) ^ crc2  # slow in Python: the memo makes it rare


class Deflated:
    """Text deflated on its own, ready to be joined with others into one gzip member."""

    __slots__ = ("crc", "data", "size")

    def __init__(self, plain: bytes, level: int) -> None:
        deflate = _DEFLATE.compressobj(level, _DEFLATE.DEFLATED, -15)  # wbits -15: raw deflate, no framing
        # A sync flush, not a finish: the stream stays open for the next piece.
        self.data = deflate.compress(plain) + deflate.flush(_DEFLATE.Z_SYNC_FLUSH)
        self.crc = _DEFLATE.crc32(plain)
        self.size = len(plain)

    def inflate(self) -> bytes:
        return zlib.decompressobj(-15).decompress(self.data)


_DATA = attrgetter("data")


class CrcMemo:
    """The running CRC after each piece of the last body joined.

    Consecutive heads (see :class:`Head`, stitched once per publish) hold mostly the
    same pieces (a poll replaces one account's), so the next resumes combining where
    it first differs: combining all the pieces of a large body is cheap with isal but
    dear with the Python fallback (bench/RESULTS.md). The memo holds the last head's
    pieces until the next one replaces them.
    """

    def __init__(self) -> None:
        self.last: tuple[tuple[Deflated, ...], tuple[tuple[int, int], ...]] = ((), ())

    def resume(self, pieces: Sequence[Deflated]) -> tuple[int, int]:
        """(CRC, length) of the pieces' text, and remember the pieces for next time."""
        old, states = self.last  # one read: other scrapes may replace it meanwhile
        pieces = tuple(pieces)
        if pieces == old:  # the usual case, a scrape between polls: compared in C (identity first)
            return states[-1] if states else (0, 0)
        n = 0
        limit = min(len(old), len(pieces))
        while n < limit and pieces[n] is old[n]:
            n += 1
        crc, size = states[n - 1] if n else (0, 0)
        new = list(states[:n])
        for piece in pieces[n:]:
            crc = crc_combine(crc, piece.crc, piece.size)
            size += piece.size
            new.append((crc, size))
        self.last = (pieces, tuple(new))
        return crc, size


class Head:
    """The start of a member: the header and the data of deflated pieces, with their
    running CRC and length. A body's snapshots part changes only at a publish or when data
    turns stale, so its head is stitched once and reused by the scrapes in between."""

    __slots__ = ("chunks", "crc", "size")

    def __init__(self, pieces: Sequence[Deflated], memo: CrcMemo | None = None) -> None:
        self.chunks = (HEADER, *map(_DATA, pieces))
        self.crc, self.size = (memo if memo is not None else CrcMemo()).resume(pieces)


def leading(pieces: Sequence[Deflated | bytes]) -> int:
    """How many pieces at the start are deflated already."""
    lead = 0
    while lead < len(pieces) and isinstance(pieces[lead], Deflated):
        lead += 1
    return lead


def finish(head: Head, pieces: Sequence[Deflated | bytes], level: int) -> list[bytes]:
    """The whole member: ``head``, then the pieces' text, as byte strings to write in order.

    ``bytes`` pieces (text rendered now) are deflated here, each run of them together.
    """
    rest: list[Deflated] = []
    run: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, Deflated):
            if run:
                rest.append(Deflated(b"".join(run), level))
                run = []
            rest.append(piece)
        else:
            run.append(piece)
    if run:
        rest.append(Deflated(b"".join(run), level))
    out = list(head.chunks)
    crc, size = head.crc, head.size
    for piece in rest:
        out.append(piece.data)
        crc = crc_combine(crc, piece.crc, piece.size)
        size += piece.size
    out.append(FINAL_BLOCK)
    out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return out


def member(pieces: Sequence[Deflated | bytes], level: int, memo: CrcMemo | None = None) -> list[bytes]:
    """One gzip member of the pieces' text in order, as byte strings to write in order.

    The CRC of the leading deflated pieces is resumed from ``memo`` when given.
    """
    lead = leading(pieces)
    return finish(Head(cast("Sequence[Deflated]", pieces[:lead]), memo), pieces[lead:], level)
