"""One gzip member from pieces deflated apart: any mix inflates to the text, as exactly one member."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from exporter.metrics import gzipstream
from exporter.metrics.gzipstream import CrcMemo, Deflated, crc_combine, member


@contextmanager
def patched(implementation: ModuleType) -> Iterator[None]:
    """Deflate and CRC-32 by ``implementation`` (hypothesis runs many examples: no fixture)."""
    saved = gzipstream._DEFLATE
    gzipstream._DEFLATE = implementation
    try:
        yield
    finally:
        gzipstream._DEFLATE = saved


texts = st.one_of(st.binary(max_size=3000), st.text(alphabet="ab\n{}", max_size=20_000).map(str.encode))
pieces = st.lists(st.tuples(texts, st.booleans()), max_size=8)


def build(spec: list[tuple[bytes, bool]]) -> list[Deflated | bytes]:
    """``True``: deflated before (at publish); ``False``: plain text rendered at the scrape."""
    return [Deflated(text, 1) if packed else text for text, packed in spec]


def one_member(body: bytes) -> bytes:
    """Inflate ``body`` as a single member: the text, after checking nothing follows the member."""
    inflate = zlib.decompressobj(31)
    text = inflate.decompress(body)
    assert inflate.eof, "the member is not finished"
    assert inflate.unused_data == b"", "more than one gzip member"
    return text


@settings(max_examples=300, deadline=None)
@given(pieces)
def test_any_mix_of_pieces_is_one_member_of_their_text(spec: list[tuple[bytes, bool]]) -> None:
    """With ISA-L's deflate (the default) and with the standard zlib (the fallback)."""
    for implementation in (isal_zlib, zlib):
        with patched(implementation):
            body = b"".join(member(build(spec), 1))
        text = b"".join(t for t, _ in spec)
        assert one_member(body) == text
        assert gzip.decompress(body) == text  # the trailer's CRC and length are checked here


def test_isal_is_the_deflate_in_use() -> None:
    assert gzipstream._DEFLATE is isal_zlib  # a dependency: its absence is only for other platforms


@given(st.binary(max_size=5000), st.binary(max_size=5000))
def test_crc_combine_is_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    for implementation in (isal_zlib, zlib):
        with patched(implementation):
            assert crc_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=1, max_size=6))
def test_the_memo_gives_what_a_fresh_combination_gives(bodies: list[list[int]]) -> None:
    """Consecutive bodies share, reorder, drop and add pieces; the memo never changes the result."""
    pool = [Deflated(bytes([i]) * (i * 700 + 1), 1) for i in range(6)]
    memo = CrcMemo()
    for indexes in bodies:
        chosen: list[Deflated | bytes] = [pool[i] for i in indexes]
        remembered = b"".join(member(chosen, 1, memo))
        assert remembered == b"".join(member(chosen, 1))
        assert one_member(remembered) == b"".join(bytes([i]) * (i * 700 + 1) for i in indexes)
