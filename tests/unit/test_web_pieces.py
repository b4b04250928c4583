"""How a body's chunks become writes (web/server.pieces): every byte once, in order, in few writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.web.server import pieces


@given(st.lists(st.binary(max_size=300)), st.integers(min_value=1, max_value=256))
def test_every_byte_once_in_order_and_no_write_past_twice_the_size(chunks: list[bytes], size: int) -> None:
    written = [bytes(p) for p in pieces(chunks, size)]
    assert b"".join(written) == b"".join(chunks)
    assert all(0 < len(p) < 2 * size for p in written)


def test_runs_of_small_chunks_are_joined_and_large_ones_cut() -> None:
    chunks = [b"a" * 10] * 100 + [b"b" * 1000] + [b"c" * 5]
    assert [len(p) for p in pieces(chunks, 256)] == [260, 260, 260, 220, 256, 256, 256, 232, 5]
