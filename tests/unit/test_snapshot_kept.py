"""What a snapshot keeps between polls: the selected chats and the waiting ones, nothing else."""

from __future__ import annotations

import gc

from helpers import strings_held

from exporter.model import Chat, ChatsConfig
from exporter.snapshot.chatids import ChatTable
from exporter.snapshot.state import NAMED_WAITS, ChatData
from exporter.snapshot.summary import TypeSummary


def chat(chat_id: str, unread: int) -> Chat:
    return Chat(chat_id, f"name {chat_id}", False, False, unread, 100, False, False)


def test_capped_snapshot_keeps_selected_and_waiting_chats_in_answer_order() -> None:
    chats = [chat("idle", 0), chat("few", 1), chat("many", 5), chat("idle2", 0)]
    data = ChatData.build(chats, ChatsConfig(max_per_account=1), polled_at=1000.0)
    assert [c.id for c in data.selection.chats] == ["many"]
    # "few" is waiting but over the cap: still kept, for the status page's names.
    assert [c.id for c in data.chats] == ["few", "many"]
    assert data.summary["contact"].chats == 4  # the aggregates still count every chat


def test_uncapped_snapshot_keeps_every_chat() -> None:
    chats = [chat("idle", 0), chat("few", 1)]
    data = ChatData.build(chats, ChatsConfig(max_per_account=0), polled_at=1000.0)
    assert data.chats == tuple(chats)


def test_released_snapshot_keeps_the_counts_and_the_names_of_the_longest_waits_only() -> None:
    """After rendering, without alerts on single chats, a snapshot needs no chat one by one."""
    # 15 waiting chats (the lower the number, the longer the wait) and 5 read ones.
    chats = [Chat(f"w{i}", f"name w{i}", False, False, 1, 100 + i, False, False) for i in range(15)]
    chats += [chat(f"idle{i}", 0) for i in range(5)]
    data = ChatData.build(chats, ChatsConfig(max_per_account=0), polled_at=1000.0)
    released = data.released()
    assert released.selection.chats == () and len(data.selection.chats) == 20
    longest = [w.chat_id for w in data.waiting[:NAMED_WAITS]]
    assert longest == [f"w{i}" for i in range(NAMED_WAITS)]
    assert released.chats == () and released.names() == {cid: f"name {cid}" for cid in longest}
    # The names the status page shows, by the waits' ids: no chat record, no id string of its own,
    # and the names in one string.
    held = strings_held(released)
    assert set(longest).isdisjoint(held) and f"name {longest[0]}" not in held
    assert "".join(f"name {cid}" for cid in longest) in held
    assert released.summary == data.summary and released.waits is data.waits
    assert released.waiting == data.waiting and released.polled_at == data.polled_at
    assert (released.selection.filtered, released.selection.over_limit) == (0, 0)


def fresh(text: str) -> str:
    """An equal string that is a new object, as every decoded answer's ids are."""
    return "".join(list(text))


def test_chat_ids_kept_between_polls_are_joined_not_one_string_per_chat() -> None:
    """Each poll decodes its ids anew: the open waits a snapshot keeps hold them in one string
    (snapshot/chatids.py), so the answer's copies go with the answer and no object per wait stays
    behind between polls."""
    ids = [f"7999{i:07d}@c.us" for i in range(4)]
    first = ChatData.build([chat(fresh(i), 1) for i in ids], ChatsConfig(max_per_account=0), 1000.0)
    second = ChatData.build(
        [chat(fresh(i), 1) for i in ids], ChatsConfig(max_per_account=0), 1060.0, previous=first.waits
    )
    assert dict(second.waits.since) == {i: ("contact", 100.0) for i in ids}  # the first poll's
    assert [w.chat_id for w in second.waiting] == ids  # equally long: by chat id
    assert second.selected == set(ids)
    held = strings_held(second.waits.since, second.waiting, second.selected)
    assert len(held) == 2 and all(sorted(text) == sorted("".join(ids)) for text in held)


def test_accounts_share_their_empty_histograms() -> None:
    """Most accounts of a large fleet never observe a wait: they hold no histogram of their own."""
    a = ChatData.build([chat(fresh("a"), 0)], ChatsConfig(), 1000.0)
    b = ChatData.build([chat(fresh("b"), 0)], ChatsConfig(), 1000.0)
    assert all(a.waits.histograms[t] is b.waits.histograms[t] for t in a.waits.histograms)
    assert a.waits.histograms is b.waits.histograms  # nor a mapping of them


def test_a_snapshot_keeps_no_dict_of_its_own_nor_of_its_summary() -> None:
    """Every account keeps one snapshot between polls: slotted, its summary one record of both
    chat types' counts, a slot each (not a record a type beside it)."""
    data = ChatData.build([chat("a", 1), chat("b", 0)], ChatsConfig(), 1000.0)
    assert not hasattr(data, "__dict__") and not hasattr(data.summary, "__dict__")
    held = [o for o in gc.get_referents(data.summary) if not isinstance(o, type)]
    assert len(held) == 12 and all(type(count) is int for count in held)
    assert dict(data.summary) == {"contact": TypeSummary(2, 1, 1), "group": TypeSummary()}
    assert data.wait_by_chat is data.wait_by_chat and list(data.wait_by_chat) == ["a"]  # made once


def test_open_waits_become_a_view_of_the_events_index_table_of_the_same_poll() -> None:
    """With replies read, the events index lists every chat of the poll: the open waits keep a
    position each in its table, not their ids' text, hashes and ends once more."""
    ids = [f"7999{i:07d}@c.us" for i in range(8)]
    data = ChatData.build([chat(fresh(i), n % 2) for n, i in enumerate(ids)], ChatsConfig(), 1000.0)
    table = ChatTable({fresh(i): "contact" for i in ids})
    shared = data.sharing(table)
    since = shared.waits.since
    assert dict(since) == dict(data.waits.since) and list(shared.waiting) == list(data.waiting)
    assert shared.waiting[1] == data.waiting[1] and dict(shared.wait_by_chat) == dict(data.wait_by_chat)
    assert since[ids[1]] == ("contact", 100.0) and ids[0] not in since and "x" not in since
    assert strings_held(since, shared.waiting) == strings_held(table)  # the table's one string
    later = [chat(fresh(i), 1) for i in ids]
    assert (
        ChatData.build(later, ChatsConfig(), 1060.0, previous=shared.waits).waits
        == ChatData.build(later, ChatsConfig(), 1060.0, previous=data.waits).waits
    )
    assert data.sharing(ChatTable({ids[1]: "contact"})) is data  # a table without every waiting chat


def test_released_names_keep_empty_and_wide_names_apart() -> None:
    chats = [
        Chat(f"w{i}", name, False, False, 1, 100 + i, False, False) for i, name in enumerate(["", "é😀", "x"])
    ]
    released = ChatData.build(chats, ChatsConfig(max_per_account=0), polled_at=1000.0).released()
    assert released.names() == {"w0": "", "w1": "é😀", "w2": "x"}
