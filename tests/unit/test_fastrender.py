"""The direct renderer against prometheus-client, byte for byte; the gzip body against the plain one.

exporter.metrics.fastrender writes the per-chat families without prometheus-client;
it is only allowed to because these tests hold it to ``generate_latest`` of the
reference collector (ChatCollector) for generated and hand-picked snapshots.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterable

import pytest
from chat_collector import ChatCollector
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from exporter.metrics import fastrender
from exporter.metrics.exposition import Exposition
from exporter.metrics.render import render_chats, render_plain
from exporter.model import Account, Chat, ChatsConfig, Group
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.store import Store
from exporter.web.encoding import accepts_gzip
from exporter.whatsgate.parse import MAX_NUMBER

# Any text UTF-8 can carry (no lone surrogates: the parser refuses them), weighted to the awkward.
TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(['"', "\\", "\n", '\\"', "\\n", "%s", "%%", "😀", "שלום مرحبا", "a" * 5000, "", "{}="]),
)
NUMBER = st.one_of(
    st.integers(0, MAX_NUMBER),
    st.sampled_from([0, 1, 9, 4095, 4096, 999_999, 1_000_000, 1_700_000_000, 10**15, 2**53 - 1, 2**53]),
)


@st.composite
def chats(draw: st.DrawFn) -> list[Chat]:
    ids = draw(st.lists(TEXT.filter(bool), unique=True, max_size=8))
    out = []
    for chat_id in ids:
        group = None
        is_group = draw(st.booleans())
        if is_group or draw(st.integers(0, 5)) == 0:  # a contact may carry a group (ignored)
            participants = draw(st.none() | NUMBER)
            group = Group(
                created=draw(NUMBER),
                participants=participants,
                admins=None if participants is None else draw(NUMBER),
                size=draw(NUMBER),
            )
        if is_group and draw(st.integers(0, 5)) == 0:
            group = None
        out.append(
            Chat(
                id=chat_id,
                name=draw(TEXT),
                is_group=is_group,
                read_only=draw(st.booleans()),
                unread=draw(NUMBER),
                last_activity=draw(NUMBER),
                pinned=draw(st.booleans()),
                muted=draw(st.booleans()),
                group=group,
            )
        )
    return out


def snapshot(chats: list[Chat]) -> ChatData:
    # Polled at a time after every generated timestamp, so unread chats wait (the waiting families).
    return ChatData.build(chats, ChatsConfig(max_per_account=0), 2.0**53 + 0.5)


def reference(account: Account, chats: list[Chat]) -> list[tuple[str, bytes, bytes]]:
    return list(render_plain(ChatCollector(account, snapshot(chats))))


def direct(account: Account, chats: list[Chat]) -> list[tuple[str, bytes, bytes]]:
    """The direct rendering, its waits given as the snapshot's list (read by its columns), which
    must be what the same waits by chat id, or as a plain tuple, give."""
    data = snapshot(chats)
    by_chat = {wait.chat_id: wait for wait in data.waiting}
    rendered = joined(fastrender.render_chats(account, data.selection.chats, data.waiting))
    assert rendered == joined(fastrender.render_chats(account, data.selection.chats, by_chat))
    assert rendered == joined(fastrender.render_chats(account, data.selection.chats, tuple(data.waiting)))
    return rendered


def joined(families: Iterable[fastrender.Family]) -> list[tuple[str, bytes, bytes]]:
    return [(name, header, b"".join(pieces)) for name, header, pieces in families]


@settings(max_examples=300, deadline=None)
@given(TEXT.filter(bool), TEXT, chats())
def test_direct_renderer_is_byte_identical_to_generate_latest(wid: str, name: str, chats: list[Chat]) -> None:
    account = Account(wid, name)
    fast = direct(account, chats)
    ref = reference(account, chats)
    assert fast == ref
    text = b"".join(h + s for _, h, s in fast).decode()
    parsed = list(text_string_to_metric_families(text))
    assert parsed == list(text_string_to_metric_families(b"".join(h + s for _, h, s in ref).decode()))


@given(st.one_of(NUMBER, st.integers(0, 2**80)))
def test_number_text_is_floattogostring(value: int) -> None:
    assert fastrender.number(value) == floatToGoString(value)


# Columns of whole numbers of one length (Unix times), round ones included, and of any floats.
SAME_LENGTH = st.integers(7, 16).flatmap(
    lambda n: st.lists(
        st.one_of(st.integers(10 ** (n - 1), min(10**n - 1, MAX_NUMBER)), st.just(10 ** (n - 1))),
        max_size=30,
    )
)
FLOATS = st.lists(st.one_of(st.floats(), st.sampled_from([-0.0, 0.0, 1e6, 999_999.99, 1.7e9, 2.0**53])))
# Floats of 1e6 and more with their points in one place: Unix times (whole, or with fractions
# of every length), durations; round ones (1e9, 1.5e9) and ones just under the next power of 10.
SAME_POINT = st.integers(7, 16).flatmap(
    lambda n: st.lists(
        st.one_of(
            st.floats(10.0 ** (n - 1), 10.0**n, exclude_max=True),
            st.integers(10 ** (n - 1), min(10**n - 1, MAX_NUMBER)).map(float),
            st.sampled_from([10.0 ** (n - 1), 1.5 * 10.0 ** (n - 1), 10.0**n - 0.5]),
        ),
        max_size=30,
    )
)


@given(st.one_of(SAME_LENGTH, SAME_POINT, FLOATS, st.lists(st.one_of(NUMBER, st.floats(), st.booleans()))))
def test_number_columns_are_floattogostring(values: list[float]) -> None:
    assert fastrender.numbers(values) == [floatToGoString(v) for v in values]


def test_every_collector_family_has_a_fast_row() -> None:
    """A family added to ChatCollector without a ChatFamily row would vanish from /metrics."""
    chat = Chat("1@g.us", "g", True, False, 1, 2, False, False, Group(3, 4, 1, 4))
    names = [name for name, _, _ in reference(Account("W", "a"), [chat])]
    assert names == [f.definition.name for f in fastrender.CHAT_FAMILIES]


def test_many_chats_identical() -> None:
    chats = [
        Chat(
            f"7900{i}@c.us",
            f'Name {i} "q" \\ {"😀" * (i % 3)}',
            i % 10 == 0,
            i % 7 == 0,
            i % 13,
            1_700_000_000 + i,
            i % 5 == 0,
            i % 3 == 0,
            Group(1_600_000_000 + i, (i % 30) or None, i % 4, i % 50) if i % 10 == 0 else None,
        )
        for i in range(3000)
    ]
    account = Account('7999"\\', "sup\nport")
    assert direct(account, chats) == reference(account, chats)


def test_a_render_never_holds_a_familys_whole_text() -> None:
    """Each family is written, encoded and deflated a slice of lines at a time: at 10,000 chats a
    family's whole text and its bytes, held at once, were most of a poll's render transient (issue 18).
    The render's traced peak stays below the largest family's text (it was over twice that)."""
    chats = [
        Chat(f"7900{i}@c.us", f"Name {i}", False, False, i % 3, 1_700_000_000 + i, False, False)
        for i in range(8192)
    ]
    data = ChatData.build(chats, ChatsConfig(max_per_account=0), 2.0e9)
    # A long account name (in every line) makes the text large beside the columns the render keeps.
    state = AccountState(Account("W1", "a" * 300)).succeeded(data, 0.1)
    largest = max(len(text) for _, _, text in render_plain(ChatCollector(state.account, data)))
    tracemalloc.start()
    try:
        render_chats(state, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert largest > 3_000_000
    assert peak < largest


# --- gzip ---------------------------------------------------------------------------------------------


def test_gzip_body_inflates_to_the_plain_body() -> None:
    store = Store(stale_after=300, clock=lambda: 10.0)
    store.expect("W1")
    chats = [Chat(f"{i}@c.us", f"n{i}", False, False, i, i, False, False) for i in range(20_000)]
    data = ChatData.build(chats, ChatsConfig(max_per_account=0), 10.0)
    store.publish(AccountState(Account("W1", "one")).succeeded(data, 0.1))
    exposition = Exposition(store)
    plain = b"".join(exposition.chunks())
    body = b"".join(exposition.gzip_chunks())
    inflate = zlib.decompressobj(31)
    assert inflate.decompress(body) == plain
    assert inflate.eof and inflate.unused_data == b""  # one gzip member: see exposition for why
    assert gzip.decompress(body) == plain  # and its CRC and length are right
    assert len(body) < len(plain) / 5
    assert plain.count(b"\nwhatsgate_chat_unread_messages{") == 20_000


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=1.0, *;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=0.001", True),
        ("identity", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("br, x-gzip", True),
        ("gzip;q=bogus", False),
        ("gzip;q=2", False),
        ("deflate", False),
    ],
)
def test_accept_encoding(header: str | None, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok
