"""The chat ids kept between polls (snapshot/chatids.py): what a set and a dict answer, in less memory."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from exporter.config.settings import parse_config
from exporter.model import CHAT_TYPES, Chat, ChatsConfig
from exporter.poller.events import ChatIndex
from exporter.snapshot.chatids import ChatIds, ChatTypes
from exporter.snapshot.state import ChatData

ids = st.text(max_size=6)


@given(st.lists(ids), st.lists(ids))
def test_chat_ids_answer_as_a_set(kept: list[str], asked: list[str]) -> None:
    chat_ids = ChatIds(kept)
    assert chat_ids == set(kept) and len(chat_ids) == len(set(kept))
    for key in asked + kept:
        assert (key in chat_ids) == (key in set(kept))
    assert sorted(chat_ids) == sorted(set(kept))
    assert 1 not in chat_ids and None not in chat_ids


@given(st.dictionaries(ids, st.sampled_from(CHAT_TYPES)), st.lists(ids))
def test_chat_types_answer_as_a_dict(kept: dict[str, str], asked: list[str]) -> None:
    types = ChatTypes(kept)
    assert types == kept and len(types) == len(kept)
    for key in asked + list(kept):
        assert (key in types) == (key in kept)
        assert types.get(key) == kept.get(key)
    assert 1 not in types and types.get(1) is None  # type: ignore[call-overload]


def chats(n: int) -> list[Chat]:
    return [
        Chat(sys.intern(f"7999{i:07d}@c.us"), "n", False, False, i % 2, 100, False, False) for i in range(n)
    ]


def held(build: Callable[[], object]) -> int:
    """The bytes what ``build()`` returns still holds once built."""
    tracemalloc.start()
    try:
        build()  # once before: the free lists it fills (traced) are not what it keeps
        before = tracemalloc.get_traced_memory()[0]
        made = build()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del made
    return kept


def test_the_snapshots_selected_chats_cost_a_tuple_entry_each_not_a_hash_table() -> None:
    """Kept between polls for every chat of every account (a dict's keys cost 21 bytes a chat)."""
    found = chats(10_000)
    selected = held(lambda: ChatData.build(found, ChatsConfig(max_per_account=0), polled_at=1000.0).selected)
    assert selected < 9 * 10_000, selected


def test_the_events_polls_counted_chats_cost_a_tuple_entry_and_a_byte_each() -> None:
    """The chat index holds every counted chat of an account between polls (a dict: 21 bytes a chat)."""
    config = parse_config(
        {"whatsgate": {"url": "http://gw.test", "api_key": "k"}, "accounts": [{"whatsapp_id": "W1"}]}
    )
    found = chats(10_000)
    counted = held(lambda: ChatIndex.build(found, config, 1000.0).counted)
    assert counted < 10 * 10_000, counted
