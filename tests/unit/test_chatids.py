"""The chat ids kept between polls (snapshot/chatids.py): what a set and a dict answer, in less memory."""

from __future__ import annotations

import gc
import itertools
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from types import FunctionType, ModuleType

from helpers import answering
from hypothesis import given
from hypothesis import strategies as st

from exporter.config.settings import parse_config
from exporter.model import CHAT_TYPES, Chat, ChatsConfig
from exporter.poller import AccountPoller
from exporter.poller.events import ChatIndex, EventsPoller
from exporter.snapshot.chatids import ChatIds, ChatTable, WaitStarts
from exporter.snapshot.state import ChatData
from exporter.snapshot.store import Store
from exporter.snapshot.waiting import WaitList
from exporter.whatsgate.client import WhatsGateClient

ids = st.text(max_size=6)


@given(st.lists(ids), st.lists(ids))
def test_chat_ids_answer_as_a_set(kept: list[str], asked: list[str]) -> None:
    chat_ids = ChatIds(kept)
    assert chat_ids == set(kept) and len(chat_ids) == len(set(kept))
    for key in asked + kept:
        assert (key in chat_ids) == (key in set(kept))
    assert sorted(chat_ids) == sorted(set(kept))
    assert 1 not in chat_ids and None not in chat_ids


@given(st.dictionaries(ids, st.sampled_from([*CHAT_TYPES, None])), st.lists(ids), st.lists(ids))
def test_a_chat_tables_views_answer_as_a_dict_and_sets(
    listed: dict[str, str | None], some: list[str], asked: list[str]
) -> None:
    table = ChatTable(listed)
    counted = {cid: kind for cid, kind in listed.items() if kind is not None}
    excluded = {cid for cid, kind in listed.items() if kind is None}
    assert table.counted() == counted and len(table.counted()) == len(counted)
    assert table.excluded() == excluded and len(table.excluded()) == len(excluded)
    chosen = set(some) & set(listed)
    subset = table.subset(chosen)
    assert subset == chosen and subset is not None and len(subset) == len(chosen)
    for key in asked + list(listed):
        assert table.counted().get(key) == counted.get(key)
        assert (key in table.excluded()) == (key in excluded) and (key in subset) == (key in chosen)
    assert table.subset(chosen | {"not listed"}) is None if "not listed" not in listed else True


def chats(n: int) -> list[Chat]:
    """``n`` chats, each id a new string, as every decoded answer's ids are."""
    return [
        Chat("".join(["7999", f"{i:07d}@c.us"]), "n", False, False, i % 2, 100, False, False)
        for i in range(n)
    ]


def held(build: Callable[[], object]) -> int:
    """The bytes of what ``build()`` returns and every object it reaches (types, modules and
    functions aside). Not a tracemalloc difference: that counts the interpreter's table of
    interned strings too, which grows by megabytes whenever the strings earlier tests interned
    and freed have filled it."""
    seen: set[int] = set()
    todo, size = [build()], 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, ModuleType, FunctionType)):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
        if isinstance(obj, dict):  # the collector does not visit a dict's keys when all are strings
            todo.extend(obj)
    return size


def test_the_snapshots_selected_chats_cost_their_ids_text_not_a_string_and_a_table_entry_each() -> None:
    """Kept between polls for every chat of every account: as a dict of interned ids, a chat cost
    its string (72 bytes here), 21 bytes of dict and an entry of the interned-string table; now
    its text, where it ends and its hash's low 32 bits (24 bytes here; 28 with the whole hash)."""
    selected = held(
        lambda: ChatData.build(chats(10_000), ChatsConfig(max_per_account=0), polled_at=1000.0).selected
    )
    assert selected < 25 * 10_000, selected


def test_the_events_polls_counted_chats_cost_their_ids_text_and_a_byte_each() -> None:
    """The chat index holds every counted chat of an account between polls (it held a dict of
    interned ids, as the snapshot's selected chats)."""
    config = parse_config(
        {"whatsgate": {"url": "http://gw.test", "api_key": "k"}, "accounts": [{"whatsapp_id": "W1"}]}
    )
    counted = held(lambda: ChatIndex.build(chats(10_000), config, 1000.0).counted)
    assert counted < 26 * 10_000, counted


def test_ids_that_share_their_hashs_low_32_bits_are_told_apart_by_their_text() -> None:
    """Two of an account's ids share them about once in a hundred accounts; found here by trying."""
    seen: dict[int, str] = {}
    for i in itertools.count():
        cid = f"7999{i:07d}@c.us"
        low = hash(cid) & 0xFFFFFFFF
        if low in seen:
            first, second = seen[low], cid
            break
        seen[low] = cid
    ids = ChatIds([first, second, "other@c.us"])
    assert first in ids and second in ids and len(ids) == 3 and set(ids) == {first, second, "other@c.us"}
    assert ChatIds([first]) == {first} and second not in ChatIds([first])
    types = ChatTable({first: "contact", second: None}).counted()
    assert types == {first: "contact"} and second not in types
    # Open waits as a view of a table, found by their hashes: either of two that share one, or
    # both, however each was listed (a view's ids keep the table's order: WaitList.on).
    for listed in ([first, second, "other@c.us"], ["other@c.us", second, first]):
        table = ChatTable(dict.fromkeys(listed, "contact"))
        for waits in ([first], [second], [first, second], [second, first], [second, "other@c.us"]):
            since = {cid: ("contact", float(n)) for n, cid in enumerate(waits)}
            view = WaitStarts(since).within(table)
            assert view is not None and dict(view) == since and list(view) == list(WaitStarts(since))
    assert WaitStarts({second: ("contact", 1.0)}).within(ChatTable({first: "contact"})) is None
    assert WaitStarts({first: ("contact", 1.0)}).within(ChatTable({})) is None  # past the table's end


def test_a_poll_keeps_the_selected_and_the_counted_chats_ids_once() -> None:
    """The events poll's chat index and the snapshot's selected chats list the same ids (all of
    them under ``max_per_account: 0``): one joined table between them, each a byte an id beside it
    (they held a table each: 49 bytes an id here)."""
    config = parse_config(
        {
            "whatsgate": {"url": "http://127.0.0.1:9/api/v1", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
            "chats": {"max_per_account": 0},
        }
    )
    client = WhatsGateClient(config.whatsgate.url, "k")
    answer = chats(10_000)
    answering(client, lambda _whatsapp_id: answer)
    poller = AccountPoller(config.accounts[0], client, lambda: config, Store(300), lambda: 1000.0)
    state = poller.poll_once()
    assert state.up and state.data is not None and poller.chat_index is not None
    index, selected = poller.chat_index, state.data.selected
    assert selected == {c.id for c in answer} and len(index.counted) == 10_000 and not index.excluded
    assert held(lambda: (index.counted, index.excluded, selected)) < 30 * 10_000
    # The 5,000 open waits: a position in the same table each, with a type, a start, and the
    # current waits' order and seconds (not their ids' text, hashes and ends once more).
    data = state.data
    waits = held(lambda: (index.counted, index.excluded, selected, data.waits.since, data.waiting))
    waits -= held(lambda: (index.counted, index.excluded, selected))
    assert len(data.waiting) == 5_000 and waits < 26 * 5_000, waits
    assert not hasattr(poller, "__dict__")  # one per account, as its events job (poller/events.py)
    assert not hasattr(EventsPoller(poller, client), "__dict__")


def test_when_every_chat_is_selected_the_selected_and_excluded_chats_cost_no_byte_an_id() -> None:
    """The selected chats of an account whose chats all get series (every small account's) are
    its chat table itself, and the chats that do not count are read from the table's chat types:
    neither keeps a flag an id beside the table between polls (they did: a byte an id each)."""
    config = parse_config(
        {
            "whatsgate": {"url": "http://127.0.0.1:9/api/v1", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
            "chats": {"max_per_account": 0},
        }
    )
    client = WhatsGateClient(config.whatsgate.url, "k")
    answer = chats(10_000)
    answering(client, lambda _whatsapp_id: answer)
    poller = AccountPoller(config.accounts[0], client, lambda: config, Store(300), lambda: 1000.0)
    state = poller.poll_once()
    index = poller.chat_index
    assert state.data is not None and index is not None and index.table is not None
    selected = state.data.selected
    assert selected == {c.id for c in answer} and not index.excluded
    table = held(lambda: index.table)
    assert held(lambda: (index.table, selected, index.excluded)) - table < 1_000


def test_a_small_accounts_chat_table_costs_its_ids_text_and_a_few_hundred_bytes() -> None:
    """Every account keeps its table between polls: at 20 ids the hashes and the ends (80 bytes
    each) are kept in one array, not in two, each with a header costing as much as its data."""
    table = ChatTable({c.id: "contact" for c in chats(20)})
    assert held(lambda: table) - sys.getsizeof(table._text) < 400


def test_released_snapshots_share_their_selection_and_a_known_accounts_index_keeps_no_urgent_array() -> None:
    """Kept by every account between polls: the selection's counts (one record for all the
    accounts whose chats were neither filtered nor over the limit, not a record each) and the
    events index's urgent chats (none once the tracker knows every chat: no empty array)."""
    big = ChatData.build(chats(30), ChatsConfig(max_per_account=20), polled_at=1000.0)
    first, second = (ChatData.build(chats(20), ChatsConfig(), polled_at=1000.0) for _ in range(2))
    assert first.released().selection is second.released().selection
    assert first.released().selection == replace(first.selection, chats=())
    assert big.released().selection == replace(big.selection, chats=()) and big.selection.over_limit == 10
    config = parse_config(
        {"whatsgate": {"url": "http://gw.test", "api_key": "k"}, "accounts": [{"whatsapp_id": "W1"}]}
    )
    index = ChatIndex.build(chats(20), config, 1000.0, known=lambda _chat_id: True)
    assert len(index.counted) == 20 and index.urgent == () and index.urgency == ()


def test_a_small_accounts_positions_cost_a_byte_each() -> None:
    """Kept between polls by every account: its urgent chats' positions in its table, its open
    waits' positions there, the current waits' order and where the longest waits' names end. For
    a table of up to 256 chats each fits a byte, in one block: not an array each, whose header
    costs as much again as a 20-chat account's data."""
    config = parse_config(
        {
            "whatsgate": {"url": "http://127.0.0.1:9/api/v1", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
        }
    )
    client = WhatsGateClient(config.whatsgate.url, "k")
    answer = chats(20)
    answering(client, lambda _whatsapp_id: answer)
    store = Store(300)
    store.subscribe(threading.Event(), render=lambda _state: "rendered")  # so the chats are released
    poller = AccountPoller(config.accounts[0], client, lambda: config, store, lambda: 1000.0)
    data, index = poller.poll_once().data, poller.chat_index
    assert data is not None and index is not None and data.named_ends and len(data.waiting) == 10
    assert isinstance(data.waits.since, WaitStarts) and isinstance(data.waiting, WaitList)
    kept = (index.urgent, data.waits.since._where, data.waiting._order, data.named_ends)
    assert [len(k) for k in kept] == [20, 10, 10, 10]
    assert held(lambda: kept) - sys.getsizeof(kept) < 4 * 40 + 50, [sys.getsizeof(k) for k in kept]


def test_the_events_index_keeps_its_table_and_its_urgent_chats_and_little_beside() -> None:
    """Its counted and excluded chats are views of its table made when read, not objects kept by
    every account between polls (two of them: 176 bytes here)."""
    config = parse_config(
        {"whatsgate": {"url": "http://gw.test", "api_key": "k"}, "accounts": [{"whatsapp_id": "W1"}]}
    )
    index = ChatIndex.build(chats(20), config, 1000.0)
    assert len(index.counted) == 20 and not index.excluded and len(index.urgent) == 20
    assert held(lambda: index) - held(lambda: index.table) - held(lambda: index.urgent) < 200


def test_without_a_schedule_the_current_waits_keep_their_order_alone() -> None:
    """A wait's seconds, with no schedule, are the poll's time less its start: worked out when
    read, not kept (8 bytes a wait, beside the order's 4, as they still are under a schedule)."""
    data = ChatData.build(chats(2_000), ChatsConfig(max_per_account=0), polled_at=1000.0)
    waiting, since = data.waiting, data.waits.since
    assert isinstance(waiting, WaitList) and len(waiting) == 1_000
    assert all(wait.seconds == 1000.0 - wait.since for wait in waiting)
    assert held(lambda: (waiting, since)) - held(lambda: since) < 6 * 1_000


def test_open_waits_read_their_chat_types_in_the_chat_table_of_their_poll() -> None:
    """As a view of the events index's table, a wait keeps its position and its start: its chat
    type is the table's for its chat, not a byte of its own beside."""
    config = parse_config(
        {
            "whatsgate": {"url": "http://127.0.0.1:9/api/v1", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
            "chats": {"max_per_account": 0},
        }
    )
    client = WhatsGateClient(config.whatsgate.url, "k")
    groups = [Chat(f"{i}@g.us", "g", True, False, i % 2, 100, False, False) for i in range(1_000)]
    answer = [*chats(1_000), *groups]
    answering(client, lambda _whatsapp_id: answer)
    poller = AccountPoller(config.accounts[0], client, lambda: config, Store(300), lambda: 1000.0)
    data, index = poller.poll_once().data, poller.chat_index
    assert data is not None and index is not None
    since = data.waits.since
    expected = {c.id: (c.chat_type, float(c.last_activity)) for c in answer if c.unread}
    assert dict(since) == expected and {w.chat_type for w in data.waiting} == {"contact", "group"}
    assert held(lambda: (since, index.table)) - held(lambda: index.table) < 12.5 * 1_000
